//! # qval
//!
//! Does a dense reward signal rank agent actions the way their true value does? qval
//! measures it before anyone spends GPU-weeks on training: it collects trajectories, samples
//! evaluation points, labels them with Max-Value Monte Carlo reference Q-values, runs the
//! methods under test, and reports rank correlations.
//!
//! This crate re-exports the workspace's crates:
//! - [`core`] (`qval-core`): data types, traits, stages, formats;
//! - [`envs`] (`qval-envs`): FrozenLake, TerminalBench and their reference policies;
//! - [`llm`] (`qval-llm`): the LLM client (backends, layers, HTTP encoders);
//! - [`methods`] (`qval-methods`): the methods under test;
//! - [`metrics`] (`qval-metrics`): correlations and reports;
//! - [`sandbox`] (`qval-sandbox`): the bubblewrap containment shared by the code family and
//!   TerminalBench;
//! - [`cli`] (`qval-cli`): experiment files, the runner and the `qval` command.
//!
//! The whole pipeline runs from an experiment file (`qval run experiments/quickstart.toml`);
//! `examples/custom_method.rs` and `examples/custom_environment.rs` show the plugin points.
#![deny(missing_docs)]

/// Experiment files, the runner and the `qval` command.
pub use qval_cli as cli;
pub use qval_core as core;
/// The all-MiniLM-L6-v2 encoder (feature `minilm`).
#[cfg(feature = "minilm")]
pub use qval_encoders as encoders;
pub use qval_envs as envs;
pub use qval_llm as llm;
/// The methods under test (`qval-methods`).
pub mod methods {
    /// The environments' hand-written heuristics, at their former paths (they live with their
    /// environments: [`crate::envs::frozenlake`], [`crate::envs::terminalbench`]).
    pub use qval_envs::{
        frozenlake::{FrozenLakeDistance, FrozenLakeManhattan},
        terminalbench::ShellHeuristic,
    };
    pub use qval_methods::*;
}
pub use qval_metrics as metrics;
pub use qval_runner as runner;
pub use qval_sandbox as sandbox;

pub use qval_core::*;
