//! What an evaluation is told about the run its sets come from: the environment, the sizes
//! of the dataset and the run's own keys. [`crate::evaluate_in`] writes them into the
//! summary as it builds it, so `qval run` and `qval evaluate RUN` give the same bytes.

use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::summary::{ExperimentInfo, SummaryExtras};
use crate::transforms::PointLayout;

/// The run behind an evaluation (published keys: the environment and the dataset's sizes;
/// qval's: the run's name, environment spec and seed, and each method's `points` limit).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunInfo {
    /// The experiment's name.
    pub name: String,
    /// Its root seed.
    pub seed: u64,
    /// The environment type (`frozenlake`, ...).
    pub env_kind: String,
    /// The environment's spec, as the run records it.
    pub environment: Value,
    /// Points in the dataset.
    pub points: usize,
    /// Trajectories in the dataset.
    pub trajectories: usize,
    /// The `points` limit of each prediction set whose method entry sets one.
    pub points_limits: BTreeMap<String, usize>,
    /// Where each point sits in its trajectory: with it, shaped-reward methods are compared
    /// with potential labels (their running sums) and with trajectory returns (their sums).
    pub layout: Option<PointLayout>,
}

impl RunInfo {
    /// The published keys it sets (`dataset_source` is `points.jsonl`, relative to the
    /// summary, so a run gives the same bytes wherever its folder is).
    pub(crate) fn describe(&self, info: &mut ExperimentInfo) {
        info.dataset_source = "points.jsonl".into();
        info.env_name = self.env_kind.clone();
        info.num_evaluation_points = self.points;
        info.num_trajectories = self.trajectories;
    }

    /// qval's keys it sets.
    pub(crate) fn extras(&self, extras: &mut SummaryExtras) {
        extras.other.insert("name".into(), json!(self.name));
        extras.other.insert("environment".into(), self.environment.clone());
        extras.other.insert("seed".into(), json!(self.seed));
    }
}
