//! # qval-envs
//!
//! Environments for qval, each implementing [`qval_core::Environment`] with a pure `step`,
//! and each shipping its reference policies.
//!
//! - [`frozenlake`]: gymnasium's FrozenLake grid world, with an exact transition model, value
//!   iteration (infinite and finite horizon) and the published reference policy.
//! - [`python`]: environments written in Python (gymnasium and others) through a pool of
//!   worker processes and a line protocol, with snapshot or replay purity.
//! - [`terminalbench`]: shell tasks in Harbor's or the Terminal-Bench layout, run in a
//!   bubblewrap sandbox or a podman container with content-addressed snapshots, so steps are
//!   pure and states can be branched.
//!
//! Each environment owns what it knows: its hand-written heuristics
//! ([`frozenlake::FrozenLakeDistance`], [`terminalbench::ShellHeuristic`]) and its
//! [`qval_core::EnvProfile`] ([`qval_core::Environment::profile`]: the wording of the scoring
//! family's prompts, the embedding family's goal texts, prompt minimums), which methods read
//! from their context instead of asking which environment they are in.
//!
//! ```
//! use qval_envs::frozenlake::FrozenLake;
//! use qval_core::Environment;
//!
//! let env = FrozenLake::builder().random_maps(8, 8, 42).build().unwrap();
//! assert_eq!(env.tasks().len(), 8);
//! assert_eq!(env.spec().max_steps, 30);
//! ```
#![deny(missing_docs)]

pub mod error;
pub mod frozenlake;
pub mod python;
pub mod terminalbench;

pub use error::EnvsError;
