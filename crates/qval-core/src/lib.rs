//! # qval-core
//!
//! The foundation of qval, a toolkit that answers one question: *does a dense reward signal
//! rank agent actions the way their true value does?*
//!
//! This crate holds the data types, the plugin traits and the stages; it knows no concrete
//! environment or method and makes no HTTP call. The five stages:
//!
//! 1. [`collect`](stage::collect) trajectories: a [`Policy`] acting in an [`Environment`];
//! 2. [`sample_points`] along them: the [`EvaluationPoint`]s;
//! 3. [`label`](stage::label) each point with a reference value from a [`Labeler`], such as
//!    the Max-Value Monte Carlo [`MvmcLabeler`];
//! 4. [`predict`](stage::predict): run each [`DenseSignalMethod`] under test;
//! 5. evaluate: rank-correlate predictions with labels (the `qval-metrics` crate).
//!
//! Every random choice descends from a seed ([`seed`]), so the same seed gives the same
//! bytes whatever the thread count. Every stage can write JSON Lines ([`io`]) with
//! checkpoints, so an interrupted run resumes without redoing finished work.
//!
//! ```
//! use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal};
//!
//! /// A user's method: score a step by the reward it earned.
//! struct RewardSoFar;
//!
//! #[async_trait::async_trait]
//! impl DenseSignalMethod for RewardSoFar {
//!     fn name(&self) -> String { "reward".into() }
//!     fn signal(&self) -> Signal { Signal::Q }
//!     async fn evaluate(&self, p: &EvaluationPoint, _: &MethodContext) -> Result<f64> {
//!         Ok(p.reward)
//!     }
//! }
//! ```
#![deny(missing_docs)]

pub mod acting;
pub mod check;
pub mod encoder;
pub mod env;
pub mod error;
pub mod io;
pub mod label;
pub mod mcts;
pub mod method;
pub mod policy;
pub mod profile;
pub mod rollout;
pub mod sample;
pub mod seed;
pub mod stage;
pub mod types;

pub use check::{check_environment, check_environment_on};
pub use env::{EnvSpec, Environment, StepOutcome};
pub use error::{CoreError, Result};
pub use label::{Labeler, MvmcConfig, MvmcConfigBuilder, MvmcLabeler};
pub use mcts::{MctsConfig, MctsConfigBuilder, MctsLabeler};
pub use method::{DenseSignalMethod, MethodContext, PolicyAssumption};
pub use policy::{Policy, PolicyInput};
pub use profile::{EnvProfile, ExpertLabels, GoalTexts, MinChars, ScoringWording};
pub use sample::{SampleConfig, SampleConfigBuilder, Strategy, sample_points};
pub use seed::QRng;
pub use stage::{CollectConfig, LabelConfig, Share, StageOptions, collect, collect_share, label, predict, sample};
pub use types::{
    Aggregation, EvaluationPoint, ExpertRollout, Image, Label, Observation, Prediction, Signal, Task, Trajectory,
    Transition, Turn,
};

pub use async_trait::async_trait;

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        send_sync::<EvaluationPoint>();
        send_sync::<Trajectory>();
        send_sync::<Label>();
        send_sync::<Prediction>();
        send_sync::<MethodContext>();
        send_sync::<EnvProfile>();
        send_sync::<CoreError>();
        send_sync::<Box<dyn DenseSignalMethod>>();
        send_sync::<Box<dyn Labeler>>();
    }

    #[test]
    fn aggregation_takes_the_max_or_the_mean() {
        assert_eq!(Aggregation::Max.apply(&[0.1, 0.9, 0.5]), 0.9);
        assert_eq!(Aggregation::Mean.apply(&[0.25, 0.75]), 0.5);
        assert!(Aggregation::Max.apply(&[]).is_nan());
    }
}
