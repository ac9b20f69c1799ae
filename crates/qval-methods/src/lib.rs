//! # qval-methods
//!
//! Dense-signal methods under test, each a [`qval_core::DenseSignalMethod`]:
//!
//! - [`RandomBaseline`]: seeded uniform scores, the floor every method must beat;
//! - [`prompting`]: LLM methods (direct, GVL, verifier, ranking, the scoring family) over
//!   any [`llm::Backend`];
//! - [`code`] and [`embedding`]: the code and embedding families.
//!
//! No method knows which environment it scores: what an environment tells methods about
//! itself (prompt wording, goal texts, prompt minimums) comes with the points' context, in
//! [`qval_core::MethodContext::profile`]. An environment's hand-written heuristics live with
//! the environment (`qval_envs::frozenlake::FrozenLakeDistance`, the template to copy for your
//! own environment-specific signal).
#![deny(missing_docs)]

pub mod code;
pub mod embedding;
pub mod error;
pub mod llm;
pub mod prompting;
pub mod python;
pub mod random;

pub use error::MethodsError;
pub use random::RandomBaseline;
