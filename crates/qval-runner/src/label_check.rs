//! Checks of label settings that need more than the file: the MCTS parameters of a label
//! set (by `MctsConfig`'s own builder) and a `[passk]` section against the label sets and the
//! environment. Apart from the plan so that the sections as written import nothing of it.

use crate::envs::{EnvPlugin, RunServices};
use crate::passk_spec::{PasskSource, PasskSpec, ResolvedPassk};
use crate::spec::{LabelMethod, LabelSpec, SpecProblem, at, unknown};
use qval_core::MctsConfig;

/// The MCTS settings of a label set, checked (a problem at its key in the set).
pub(crate) fn mcts_config(l: &LabelSpec, seed: u64) -> Result<MctsConfig, SpecProblem> {
    let mut b = MctsConfig::builder()
        .aggregation(l.aggregation)
        .signal(l.signal)
        .step_penalty(l.step_penalty)
        .seed(seed)
        .concurrency(l.concurrency);
    if let Some(n) = l.mcts_iterations {
        b = b.iterations(n);
    }
    if let Some(w) = l.mcts_expansion_width {
        b = b.width(w);
    }
    if let Some(c) = l.mcts_exploration_constant {
        b = b.exploration(c);
    }
    if let Some(g) = l.gamma {
        b = b.gamma(g);
    }
    b.build().map_err(|e| match &e {
        qval_core::CoreError::InvalidParameter { name, value, reason } => {
            SpecProblem::at(at![*name], format!("{value}: give {reason}"))
        }
        _ => SpecProblem::at(vec![], e.to_string()),
    })
}

/// The most k values and the largest k, and the most episodes per task.
const MAX_K: usize = 10_000;

/// Checks `spec` against the label sets and the environment.
///
/// # Errors
/// A problem at its key under `passk`.
pub(crate) fn passk(
    spec: &PasskSpec,
    labels: &[(&str, &LabelSpec)],
    env: &dyn EnvPlugin,
    services: &dyn RunServices,
) -> Result<ResolvedPassk, SpecProblem> {
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
    let rollout_sets: Vec<&str> = labels
        .iter()
        .filter(|(_, l)| l.method == LabelMethod::Mvmc && l.signal != qval_core::Signal::ShapedReward)
        .map(|(name, _)| *name)
        .collect();
    let only = |key: &str, source: &str| {
        SpecProblem::at(
            at!["passk", key],
            format!("`{key}` is read only with `source = \"{source}\"`"),
        )
    };
    let label_set = match (spec.source, &spec.label_set) {
        (PasskSource::Labels, Some(name)) => match rollout_sets.iter().find(|l| **l == name) {
            Some(l) => Some(l.to_string()),
            None => {
                return Err(SpecProblem::at(
                    at!["passk", "label_set"],
                    format!(
                        "{} (pass@k reads the rollouts of an `mvmc` label set)",
                        unknown("label set", name, &rollout_sets)
                    ),
                ));
            }
        },
        (PasskSource::Labels, None) => match rollout_sets.first() {
            Some(l) => Some(l.to_string()),
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
                .or_else(|| labels.first().and_then(|(_, l)| l.reference.clone()))
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
