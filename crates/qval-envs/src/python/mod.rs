//! Environments written in Python, through a bridge to long-lived worker processes.
//!
//! A Python environment reaches qval through an *adapter*: a subclass of
//! `qval_bridge.Adapter` (the package in `python/qval_bridge/` of this repository) in a short
//! file. [`PythonEnv`] starts a pool of workers (`python -m qval_bridge.worker --adapter
//! SPEC`) and implements [`Environment`](qval_core::Environment) by talking to them, one JSON object per line over
//! stdin/stdout. Any stage can use it: collection, MVMC labels from any stored state (the
//! state carries what restores it), ranking candidates, every method.
//!
//! ## Purity
//! qval's `step(state, action, rng)` must be pure. The adapter declares how a state is restored:
//! - `snapshot`: the adapter serialises its environment to bytes; qval's [`PythonState`]
//!   carries them, content-addressed by sha256 so that equal snapshots share one buffer in the
//!   process (serialised states carry the bytes, base64, so stored points can be restored);
//! - `replay`: qval's state is the task, the action history and every random draw; it is
//!   restored by `reset` and replaying the history (slower; for environments that cannot
//!   snapshot).
//!
//! Randomness comes only from qval's generator: the adapter's `rng.integers(n)` and
//! `rng.random()` are answered from the `rng` passed to [`Environment::step`](qval_core::Environment::step). A worker
//! remembers the state it holds after a step, so walking forward costs no restore.
//! [`qval_core::check_environment`] catches an adapter whose step is not pure.
//!
//! ## The protocol (version 1)
//! qval writes `{"id": N, "op": OP, ...}`; the worker answers with one final line
//! `{"id": N, "ok": true, "result": R}` or `{"id": N, "ok": false, "error": {"kind",
//! "message", "traceback", "pip"?}}`. While serving a request it may ask for draws,
//! `{"id": N, "rng": "int", "n": K}` or `{"id": N, "rng": "float"}`, answered with
//! `{"id": N, "value": X}`.
//!
//! | op | request fields | result |
//! |---|---|---|
//! | `hello` | `adapter`, `args` | `protocol`, `name`, `max_steps`, `gamma`, `reward_description`, `notes`, `purity`, `reference`, `exact`, `profile?` |
//! | `tasks` | | `[{id, instruction, params}]` |
//! | `reset` | `task` | `{observation, legal, success?, snapshot?}` |
//! | `step` | `restore`, `action` | `{observation, legal, success?, reward, terminated, snapshot?}` |
//! | `parse` | `text` | an action (any JSON) |
//! | `render` | `action` | its text |
//! | `reference` | `restore` | the reference policy's action |
//! | `exact` | `restore`, `gamma`, `horizon`, `action` | the reference policy's expected discounted return with `horizon` steps left (after forcing `action` if not null) |
//!
//! `restore` is `null` (the state the worker holds), `{"task", "snapshot": base64}` or
//! `{"task", "reset_draws", "history": [{"action", "draws"}]}` with draws `{"i": k}` /
//! `{"f": x}`. `success` is the adapter's optional `succeeded()` (whether the episode reached
//! its goal), sent when it is not `None`; [`Environment::succeeded`](qval_core::Environment::succeeded) reads it from the last
//! state. `profile` is the adapter's optional `profile()`, what the environment tells methods
//! about itself ([`qval_core::EnvProfile`] as JSON, every field optional; absent: the generic
//! profile), which [`Environment::profile`](qval_core::Environment::profile) gives. Anything the adapter prints goes to the
//! worker's stderr.
//!
//! ## Failures
//! An adapter that raises gives [`PyError::Python`] with the Python traceback. A worker that
//! exits, hangs past the time limit (it is killed) or breaks the protocol is replaced by a new
//! one and the request retried once with the same random draws; a second failure gives
//! [`PyError::Worker`] with both reasons (and the worker's last stderr lines, which hold
//! the traceback of a crash). A missing Python package gives [`PyError::MissingPackage`]
//! naming the pip command. Workers are killed and reaped when the [`PythonEnv`] drops.
//!
//! ```no_run
//! use qval_core::Environment;
//! use qval_envs::python::PythonEnv;
//!
//! let env = PythonEnv::builder("qval_bridge.adapters.gym_toytext:TaxiAdapter")
//!     .workers(2)
//!     .build()
//!     .unwrap();
//! assert_eq!(env.spec().name, "gym-taxi");
//! ```

mod policy;
pub use policy::{EpsilonGreedy, ExactLabeler, ReferencePolicy, UniformPolicy};
pub use qval_python::{Draw, PyError};
mod env;
pub use env::*;
