//! The `[passk]` section: pass@k of the reference policy, so a reader knows how competent
//! the policy behind the labels is.
//!
//! ```toml
//! [passk]
//! source = "labels"        # "labels" (the label stage's rollouts: free after labelling),
//!                          # "fresh" (new episodes from each task's start) or
//!                          # "trajectories" (the run's collected trajectories)
//! label_set = "mvmc-q"     # source = "labels": which set (default: the first made of rollouts)
//! samples_per_task = 20    # source = "fresh": episodes per task
//! k = [1, 5, 10, 20]
//! threshold = 1.0          # success: undiscounted return >= threshold
//! warn_below = 0.5         # a line in the summary when pass@1 is below it
//! ```
//!
//! The stage writes `passk.json` (the published layout: `aggregate` and `per_task`, with
//! `by_point` beside `per_task` for the labels source) and a line in `summary.md`.

use serde::{Deserialize, Serialize};

use crate::typed::Typed;

/// Where pass@k's attempts come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasskSource {
    /// The rollouts of a label set, grouped by task (and by point).
    Labels,
    /// `samples_per_task` new episodes of the reference policy from each task's start.
    Fresh,
    /// The run's collected trajectories (the collector's competence).
    Trajectories,
}

/// The `[passk]` section as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskSpec {
    /// Where the attempts come from.
    #[serde(default = "labels")]
    pub source: PasskSource,
    /// `labels`: the label set (default: the first made of rollouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_set: Option<String>,
    /// `fresh`: the policy (default: the first label set's reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Typed>,
    /// `fresh`: episodes per task.
    #[serde(default = "twenty")]
    pub samples_per_task: usize,
    /// The k values.
    #[serde(default = "default_ks")]
    pub k: Vec<usize>,
    /// The undiscounted return that counts as a success.
    #[serde(default = "one")]
    pub threshold: f64,
    /// The pass@1 below which the summary warns.
    #[serde(default = "half")]
    pub warn_below: f64,
}

fn labels() -> PasskSource {
    PasskSource::Labels
}
fn twenty() -> usize {
    20
}
fn default_ks() -> Vec<usize> {
    vec![1, 5, 10, 20]
}
fn one() -> f64 {
    1.0
}
fn half() -> f64 {
    0.5
}

/// A `[passk]` section checked against the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolvedPassk {
    /// The section, as written.
    pub spec: PasskSpec,
    /// `labels`: the label set read.
    pub label_set: Option<String>,
    /// `fresh`: the policy.
    pub policy: Option<Typed>,
}
