//! Which points each method scores: its `points` limit, the ranking candidates of its
//! states, a shard's share.

use std::collections::{BTreeMap, HashMap};

use super::plan::Plan;
use crate::methods::{PointSet, ResolvedMethod};
use qval_core::{EvaluationPoint, Share};

/// The ranking candidates of a run and the fingerprint of their dataset.
pub(crate) struct Candidates {
    /// Every candidate action of the first points' states, as points.
    pub(crate) points: Vec<EvaluationPoint>,
    /// The fingerprint of `points`.
    pub(crate) dataset: String,
}

/// The `points` limit of every prediction set whose method entry sets one, by the set's name.
pub(crate) fn points_limits(plan: &Plan) -> BTreeMap<String, usize> {
    plan.methods
        .iter()
        .filter_map(|m| Some((m, m.settings.points?)))
        .flat_map(|(m, n)| outputs_of(plan, m).into_iter().map(move |o| (o, n)))
        .collect()
}

/// The names of the prediction sets a method produces.
pub fn outputs_of(plan: &Plan, m: &ResolvedMethod) -> Vec<String> {
    plan.method_type(m).outputs(m)
}

/// All points a method scores in an unsharded run (`candidates`: the run's, if any).
pub fn points_of(
    plan: &Plan,
    m: &ResolvedMethod,
    points: &[EvaluationPoint],
    candidates: &[EvaluationPoint],
) -> Vec<EvaluationPoint> {
    let c = Candidates {
        points: candidates.to_vec(),
        dataset: String::new(),
    };
    method_points(plan, m, points, "", Some(&c)).0
}

/// The points a method scores (the first `points` of them, or the candidates of those) and
/// the fingerprint of their dataset.
pub(crate) fn method_points(
    plan: &Plan,
    m: &ResolvedMethod,
    points: &[EvaluationPoint],
    dataset: &str,
    candidates: Option<&Candidates>,
) -> (Vec<EvaluationPoint>, String) {
    let n = m.settings.points.unwrap_or(points.len()).min(points.len());
    match plan.method_type(m).point_set(m) {
        PointSet::Points => (points[..n].to_vec(), dataset.to_string()),
        PointSet::Candidates => {
            let Candidates { points: c, dataset: fp } =
                candidates.expect("candidates are made when a ranking method is planned");
            let states: std::collections::HashSet<&str> = points[..n].iter().map(|p| p.id.as_str()).collect();
            let mine = c
                .iter()
                .filter(|p| p.candidate_of.as_deref().is_some_and(|s| states.contains(s)))
                .cloned()
                .collect();
            (mine, fp.clone())
        }
    }
}

/// A shard's part of a method's points: point j of the run is shard j mod N's; a ranking
/// candidate goes with its state, so one shard asks about all candidates of a state.
pub(crate) fn share_of_method(
    share: Share,
    on: &[EvaluationPoint],
    points: &[EvaluationPoint],
) -> Vec<EvaluationPoint> {
    let index: HashMap<&str, usize> = points.iter().enumerate().map(|(i, p)| (p.id.as_str(), i)).collect();
    on.iter()
        .filter(|p| {
            let id = p.candidate_of.as_deref().unwrap_or(&p.id);
            index.get(id).is_some_and(|&i| share.contains(i))
        })
        .cloned()
        .collect()
}
