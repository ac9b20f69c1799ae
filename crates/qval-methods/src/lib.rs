//! # qval-methods
//!
//! Dense-signal methods under test, each a [`qval_core::DenseSignalMethod`]:
//!
//! - [`RandomBaseline`]: seeded uniform scores, the floor every method must beat;
//! - [`FrozenLakeDistance`]: a hand-written FrozenLake heuristic, the template to copy for
//!   your own environment-specific signal;
//! - [`prompting`]: LLM methods (direct, GVL, verifier, ranking) over any [`llm::Backend`].
#![deny(missing_docs)]

pub mod code;
pub mod embedding;
pub mod error;
pub mod frozenlake;
pub mod llm;
pub mod prompting;
pub mod random;
pub mod terminal;

pub use error::MethodsError;
pub use frozenlake::{FrozenLakeDistance, FrozenLakeManhattan};
pub use random::RandomBaseline;
pub use terminal::ShellHeuristic;
