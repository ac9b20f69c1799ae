//! Shared by the method tests: ranking candidates of the quickstart data with exact labels.

use std::sync::Arc;

use qval_core::{EvaluationPoint, Label, LabelConfig, MvmcConfig, MvmcLabeler, StageOptions, label};
use qval_envs::frozenlake::OptimalPolicy;
use qval_methods::prompting::expand_candidates;
use qval_testkit::QuickstartData;

/// The candidates (every move) of the first `n` states of `d`, and their exact Q labels
/// (MVMC, one rollout of the optimal policy on deterministic maps), in the same order.
pub async fn labelled_candidates(d: &QuickstartData, n: usize) -> (Vec<EvaluationPoint>, Vec<Label>) {
    let first: Vec<EvaluationPoint> = d.points.iter().take(n).cloned().collect();
    let candidates = expand_candidates(&*d.env, &first, 1, None).unwrap();
    let labeler = MvmcLabeler::new(
        d.env.clone(),
        Arc::new(OptimalPolicy::for_env(&d.env)),
        MvmcConfig::builder().rollouts(1).build().unwrap(),
    );
    let labels = label(&labeler, &candidates, &LabelConfig::default(), &StageOptions::default())
        .await
        .unwrap();
    (candidates, labels)
}
