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

/// The most k values and the largest k, and the most episodes per task.
const MAX_K: usize = 10_000;

/// Checks `spec` against the label sets and the environment.
///
/// # Errors
/// A problem at its key under `passk`.
pub(crate) fn resolve(
    spec: &PasskSpec,
    labels: &[crate::runner::ResolvedLabels],
    env: &dyn crate::envs::EnvPlugin,
    services: &dyn crate::envs::RunServices,
) -> Result<ResolvedPassk, crate::spec::SpecProblem> {
    use crate::spec::{SpecProblem, at};
    if spec.k.is_empty() {
        return Err(SpecProblem::at(at!["passk", "k"], "an empty list: give at least one k"));
    }
    for (i, &k) in spec.k.iter().enumerate() {
        if !(1..=MAX_K).contains(&k) {
            return Err(SpecProblem::at(
                at!["passk", "k", i],
                format!("{k}: give a k in 1..={MAX_K}"),
            ));
        }
    }
    if !(1..=MAX_K).contains(&spec.samples_per_task) {
        return Err(SpecProblem::at(
            at!["passk", "samples_per_task"],
            format!("{}: give 1..={MAX_K} episodes per task", spec.samples_per_task),
        ));
    }
    if !spec.threshold.is_finite() {
        return Err(SpecProblem::at(at!["passk", "threshold"], "give a finite number"));
    }
    if !(0.0..=1.0).contains(&spec.warn_below) {
        return Err(SpecProblem::at(
            at!["passk", "warn_below"],
            format!("{}: give a share in [0, 1]", spec.warn_below),
        ));
    }
    let rollout_sets: Vec<&crate::runner::ResolvedLabels> = labels
        .iter()
        .filter(|l| l.spec.method == crate::spec::LabelMethod::Mvmc)
        .collect();
    let only = |key: &str, source: &str| {
        SpecProblem::at(
            at!["passk", key],
            format!("`{key}` is read only with `source = \"{source}\"`"),
        )
    };
    let label_set = match (spec.source, &spec.label_set) {
        (PasskSource::Labels, Some(name)) => match rollout_sets.iter().find(|l| &l.name == name) {
            Some(l) => Some(l.name.clone()),
            None => {
                let names: Vec<&str> = rollout_sets.iter().map(|l| l.name.as_str()).collect();
                return Err(SpecProblem::at(
                    at!["passk", "label_set"],
                    format!(
                        "{} (pass@k reads the rollouts of an `mvmc` label set)",
                        crate::spec::unknown("label set", name, &names)
                    ),
                ));
            }
        },
        (PasskSource::Labels, None) => match rollout_sets.first() {
            Some(l) => Some(l.name.clone()),
            None => {
                return Err(SpecProblem::at(
                    at!["passk", "source"],
                    "no `mvmc` label set keeps rollouts: use `source = \"fresh\"` or add one",
                ));
            }
        },
        (_, Some(_)) => return Err(only("label_set", "labels")),
        (_, None) => None,
    };
    let policy = match (spec.source, &spec.policy) {
        (PasskSource::Fresh, p) => {
            let p = p
                .clone()
                .or_else(|| labels.first().and_then(|l| l.spec.reference.clone()))
                .unwrap_or_else(|| env.default_reference());
            env.check_policy(&p, services).map_err(|e| {
                let mut path = at!["passk", "policy"];
                path.extend(e.path.clone());
                SpecProblem::at(path, e.message)
            })?;
            Some(p)
        }
        (_, Some(_)) => return Err(only("policy", "fresh")),
        (_, None) => None,
    };
    Ok(ResolvedPassk {
        spec: spec.clone(),
        label_set,
        policy,
    })
}
