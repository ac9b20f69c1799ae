//! The code family: the model writes a Python `signal_function`, qval runs it on every point
//! in a [`sandbox`].
//!
//! - [`generate_samples`] asks for N samples (default 16, seeds 0..N) and extracts the fenced
//!   code of each;
//! - [`CodeSample`] is one sample as a method (its own prediction set; its source is kept);
//! - [`CodegenAvg`] is codegen-avg: per point, the NaN-skipping mean over the samples;
//! - [`group`] links samples so that scoring one runs them all at once, up to
//!   [`parallelism`] (the machine's cores) at a time;
//! - [`run_eureka`]: iterative improvement with an LLM judge; its winner is a [`CodeSample`].
//!
//! The published figure for codegen is the mean +- std [min, max] of the per-sample
//! correlations: `qval_metrics::group_summary` of the samples' rho.

pub mod eureka;
mod group;
pub mod sandbox;
pub use eureka::{
    CandidateStats, EurekaConfig, EurekaResult, EurekaRound, JudgeCandidate, generation_messages, judge_labels,
    judge_messages, parse_winner, reflection, run_eureka, sample_point_indices,
};
pub use group::parallelism;
pub use sandbox::{ALLOWED_MODULES, CallResult, Isolation, Sandbox, SandboxConfig, SandboxError};
mod sample;
pub use sample::*;
