//! The `[acting]` section as written (see [`crate::acting`] for what it means and how it is
//! checked).

use serde::{Deserialize, Serialize};

use crate::typed::Typed;

/// The `[acting]` section as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActingSpec {
    /// The policy proposing candidates (default: the dataset's collector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Typed>,
    /// Candidates per step: a scaling curve.
    #[serde(default = "default_ks")]
    pub k: Vec<usize>,
    /// Method entries guiding, by name.
    #[serde(default)]
    pub guided: Vec<String>,
    /// Self-consistency by majority vote.
    #[serde(default)]
    pub vote: bool,
    /// A uniform draw among the candidates.
    #[serde(default = "yes")]
    pub random: bool,
    /// Universal self-consistency: a selector model names the most consistent candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usc: Option<UscSpec>,
    /// Which tasks (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<String>>,
    /// Episodes per task.
    #[serde(default = "one")]
    pub samples_per_task: usize,
    /// The undiscounted return that counts as a success.
    #[serde(default = "one_f")]
    pub success_threshold: f64,
    /// The root seed of acting (default: the experiment's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Episodes at once.
    #[serde(default = "sixteen")]
    pub concurrency: usize,
}

/// `usc = { backend = "NAME" }`: the selector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UscSpec {
    /// The selector's backend, by name.
    pub backend: String,
    /// How much of each candidate it reads (published: 4,000 characters).
    #[serde(default = "max_candidate_chars")]
    pub max_candidate_chars: usize,
}

fn max_candidate_chars() -> usize {
    qval_methods::prompting::MAX_CANDIDATE_CHARS
}

fn default_ks() -> Vec<usize> {
    vec![1, 2, 4, 8]
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}
fn sixteen() -> usize {
    16
}
