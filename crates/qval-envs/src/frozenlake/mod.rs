//! FrozenLake, as in gymnasium, with a pure step.
//!
//! ## Description
//! The agent crosses a frozen lake from the start `S` to the goal `G` without falling into a
//! hole `H`. On slippery ice it may slide sideways.
//!
//! ## Actions
//! Four moves: 0 `left`, 1 `down`, 2 `right`, 3 `up`. Text that is none of them (nor the
//! digits 0-3) is [`FrozenLakeAction::Invalid`]: the turn is wasted (the step counter
//! advances) and the next observation starts with an error line.
//!
//! ## Observations
//! Text: the grid, tiles `S F H G` separated by spaces, one row per line, `@` in place of the
//! agent's tile. Optionally a PNG rendering (512 x 512 by default).
//!
//! ## Starting state
//! The agent on `S`.
//!
//! ## Rewards
//! 1.0 for entering `G`, 0 otherwise.
//!
//! ## Episode end
//! Terminated on entering `H` or `G`; truncated by the stages after `max_steps` steps
//! (default 30, the published 8x8 budget; the shortest path on the 8x8 maps is 14).
//!
//! ## Arguments
//! See [`FrozenLakeBuilder`]: maps (gymnasium's presets, given rows, qval's seeded random
//! maps, or the published maps with or without the published task order), `slippery`,
//! `max_steps`, `gamma`, observation mode and image size.
//!
//! ```
//! use qval_core::{Environment, seed::rng_for};
//! use qval_envs::frozenlake::{FrozenLake, FrozenLakeAction};
//!
//! let env = FrozenLake::builder().preset_4x4().build().unwrap();
//! let task = &env.tasks()[0];
//! let mut rng = rng_for(0, &[]);
//! let s = env.reset(task, &mut rng).unwrap();
//! let out = env.step(&s, &FrozenLakeAction::Right, &mut rng).unwrap();
//! assert_eq!(env.observe(&out.state).text, "S @ F F\nF H F H\nF F F H\nH F F G");
//! ```

mod exact;
pub mod heuristic;
mod map;
pub mod policy;
mod profile;
mod render;
pub mod solver;
pub use exact::ExactLabeler;
pub use heuristic::{FrozenLakeDistance, FrozenLakeManhattan};
pub use map::{Grid, MOVES, Tile};
pub use policy::{EpsilonGreedy, OptimalPolicy, UniformPolicy};
pub use profile::{goal_texts, scoring_wording, vision_goal_texts};
pub use render::{render, render_png};
mod lake;
pub use lake::*;
