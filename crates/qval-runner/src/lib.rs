//! # qval-runner
//!
//! Experiment files, the plugin registry and the resumable runner behind `qval run`, as a
//! library: load an experiment, add your own environment and method types, run it and get
//! the summary back, without the command line.
//!
//! ```no_run
//! use qval_runner::{Plan, Registry, RunOptions, methods::simple, spec};
//! use std::sync::Arc;
//!
//! # async fn go() -> qval_runner::Result<()> {
//! let registry = Registry::builtin().method(
//!     "my-method",
//!     simple("mine", |signal| Arc::new(qval_methods::RandomBaseline::new(7, signal))),
//! );
//! let (experiment, source) = spec::load("experiments/quickstart.toml".as_ref())?;
//! let plan = Plan::new(experiment, &source, &registry, RunOptions::default())?;
//! let report = qval_runner::run(&plan).await?;
//! println!("{}", report.markdown);
//! # Ok(())
//! # }
//! ```
//!
//! The pieces: [`spec`] (the file format and its checks), [`runner`] (the plan, the run
//! folder, resumption), [`envs`] and [`methods`] (the plugin points), [`catalog`] (the
//! published benchmark's methods), [`shards`] (sharded runs and their merge).
#![deny(missing_docs)]

pub mod acting;
mod acting_spec;
pub mod catalog;
pub mod encoders;
pub mod envs;
pub mod error;
mod label_check;
pub mod limits;
mod method_settings;
pub mod methods;
mod net;
pub mod passk_spec;
pub mod resume;
pub mod runner;
pub mod shards;
pub mod spec;
mod typed;

pub use error::{Result, RunnerError};
pub use runner::{
    BackendOverride, Manifest, Plan, Registry, RunMetadata, RunOptions, RunReport, read_run_metadata, run,
};
