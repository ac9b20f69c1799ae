//! Stage 5 itself: [`evaluate`] and [`evaluate_in`] over sets in memory, [`evaluate_run`]
//! over a run folder, and the comparison of label sets with each other.

use serde_json::Value;
use std::path::Path;

use super::label_set::{Reference, evaluate_label_set};
use super::{EvaluateConfig, LabelSet, PredictionSet, described, point_entry, read_run, same_data};
use crate::MetricsError;
use crate::align::{Aligned, align};
use crate::run_info::RunInfo;
use crate::summary::{
    Estimation, EstimationExtras, ExperimentInfo, Granularity, GtComparison, MethodEntry, MethodEstimation, Summary,
    SummaryExtras, assumption_of, opt_all,
};
use qval_core::{Prediction, Signal};

/// Stage 5, in memory: evaluates every prediction set against every label set of the same
/// signal (or, with `relabel`, of Q and V alike) made from the same dataset, and compares
/// label sets with each other. qval's records pair by point id; records without ids (from
/// published files) by position on the common prefix. A label set of ranking candidates
/// (labels with `candidate_of`) gets the per-state ranking figure of the methods that scored
/// its candidates. For sets whose run is unknown; [`evaluate_in`] for a run's.
///
/// # Errors
/// [`MetricsError::OtherPoints`] when a prediction set has label sets of its signal but none
/// made from its dataset (labels copied from another run); a statistic's own errors.
pub fn evaluate(
    labels: &[LabelSet],
    predictions: &[PredictionSet],
    cfg: &EvaluateConfig,
) -> Result<Summary, MetricsError> {
    evaluate_in(labels, predictions, cfg, None)
}

/// [`evaluate`] of a run's sets: the summary records what `run` says of the run (the
/// environment, the dataset's sizes, the run's keys and each method's `points` limit).
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_in(
    labels: &[LabelSet],
    predictions: &[PredictionSet],
    cfg: &EvaluateConfig,
    run: Option<&RunInfo>,
) -> Result<Summary, MetricsError> {
    cfg.validate()?;
    check_same_points(labels, predictions)?;
    let mut info = experiment_info(labels, predictions, cfg);
    let derived = shaped_sets(predictions, run);
    let predictions = derived.as_deref().unwrap_or(predictions);
    let mut summary = Summary::default();
    for r in labels {
        let est = evaluate_label_set(&Reference::new(r), predictions, cfg, &mut info.comparisons)?;
        summary.estimations.insert(r.name.clone(), est);
    }
    if cfg.gt_vs_gt {
        compare_label_sets(labels, cfg, &mut summary, &mut info.gt_vs_gt_comparisons)?;
    }
    info.num_evaluation_points = num_evaluation_points(labels);
    let mut extras = SummaryExtras {
        version: env!("CARGO_PKG_VERSION").to_string(),
        config: serde_json::to_value(cfg).unwrap_or(Value::Null),
        other: Default::default(),
    };
    if let Some(run) = run {
        run.describe(&mut info);
        run.extras(&mut extras);
        summary.set_points_limits(&run.points_limits);
    }
    summary.experiment_info = info;
    summary.qval = Some(extras);
    Ok(summary)
}

/// With the run's point layout, every shaped-reward prediction set in the two forms the
/// evaluation compares (its potentials and its sums per trajectory) in place of the raw one,
/// which no label set is compared with; `None` when nothing changes.
fn shaped_sets(predictions: &[PredictionSet], run: Option<&RunInfo>) -> Option<Vec<PredictionSet>> {
    let layout = run?.layout.as_ref()?;
    if !predictions.iter().any(|m| m.signal == Signal::ShapedReward) {
        return None;
    }
    Some(
        predictions
            .iter()
            .flat_map(|m| match m.signal {
                Signal::ShapedReward => layout.shaped_sets(m).to_vec(),
                _ => vec![m.clone()],
            })
            .collect(),
    )
}

/// Refuses a prediction set that has label sets of its signal but none made from its
/// dataset (labels copied from another run).
fn check_same_points(labels: &[LabelSet], predictions: &[PredictionSet]) -> Result<(), MetricsError> {
    for m in predictions {
        let of_signal: Vec<&LabelSet> = labels.iter().filter(|r| r.signal == m.signal).collect();
        if let Some(r) = of_signal.first()
            && !of_signal.iter().any(|r| same_data(r, m))
        {
            return Err(MetricsError::OtherPoints {
                predictions: described(&m.name, &m.source),
                labels: described(&r.name, &r.source),
                found: m.dataset.clone().unwrap_or_default(),
                expected: r.dataset.clone().unwrap_or_default(),
            });
        }
    }
    Ok(())
}

/// `experiment_info` before any comparison: the label sets, the methods, the rules and the
/// run's signal (the first method's, `q_value` without methods).
fn experiment_info(labels: &[LabelSet], predictions: &[PredictionSet], cfg: &EvaluateConfig) -> ExperimentInfo {
    ExperimentInfo {
        gt_methods: labels.iter().map(|r| r.name.clone()).collect(),
        eval_methods: predictions.iter().map(|m| m.name.clone()).collect(),
        correlation_methods: cfg.correlation_methods.clone(),
        exclude_zero_points: cfg.exclude_zero_points,
        min_usable_correlation_points: cfg.correlation.min_pairs,
        signal_type: predictions
            .first()
            .map(|m| assumption_of(m.signal))
            .unwrap_or("q_value")
            .to_string(),
        ..Default::default()
    }
}

/// The points of the largest label set that is not of ranking candidates.
fn num_evaluation_points(labels: &[LabelSet]) -> usize {
    labels
        .iter()
        .filter(|r| r.labels.iter().all(|l| l.candidate_of.is_none()))
        .map(|r| r.labels.len())
        .max()
        .unwrap_or(0)
}

/// Label sets compared with each other: each pair of point label sets of the same signal and
/// dataset once, the first as the reference and the second in the place of a method; the
/// pairs are recorded in `comparisons`.
fn compare_label_sets(
    labels: &[LabelSet],
    cfg: &EvaluateConfig,
    summary: &mut Summary,
    comparisons: &mut Vec<GtComparison>,
) -> Result<(), MetricsError> {
    for (i, lhs) in labels.iter().enumerate() {
        for rhs in &labels[i + 1..] {
            if lhs.signal != rhs.signal || !by_point(lhs) || !by_point(rhs) || lhs.dataset != rhs.dataset {
                continue;
            }
            let a = align(&lhs.labels, &as_predictions(rhs));
            let e = label_set_entry(&a, rhs.signal, cfg)?;
            let est = summary
                .gt_vs_gt_estimations
                .entry(lhs.name.clone())
                .or_insert_with(|| reference_estimation(lhs, &a));
            est.methods.insert(rhs.name.clone(), MethodEntry::Method(e));
            comparisons.push(GtComparison {
                lhs: lhs.name.clone(),
                rhs: rhs.name.clone(),
            });
        }
    }
    Ok(())
}

/// Whether a label set is of points (no ranking candidates) that all have ids.
fn by_point(r: &LabelSet) -> bool {
    r.labels
        .iter()
        .all(|l| l.candidate_of.is_none() && !l.point_id.is_empty())
}

/// A label set in the place of a method's predictions (an aborted label is a failure).
fn as_predictions(r: &LabelSet) -> Vec<Prediction> {
    r.labels
        .iter()
        .map(|l| Prediction {
            point_id: l.point_id.clone(),
            value: l.value,
            error: l.aborted.clone(),
            transient: false,
        })
        .collect()
}

/// The entry of a label set of `signal` compared with a reference label set, aligned in `a`.
fn label_set_entry(a: &Aligned, signal: Signal, cfg: &EvaluateConfig) -> Result<MethodEstimation, MetricsError> {
    let mut e = point_entry(&a.labels, &a.predictions, cfg)?;
    e.predicted_values = Some(opt_all(&a.predictions));
    let x = e.qval.get_or_insert_with(Default::default);
    x.signal = Some(signal);
    x.missing = a.missing;
    Ok(e)
}

/// The entry of a label set taken as the reference of the comparisons between label sets.
fn reference_estimation(r: &LabelSet, a: &Aligned) -> Estimation {
    Estimation {
        assumption: assumption_of(r.signal).to_string(),
        granularity: Granularity::Point,
        ground_truth_values: Some(opt_all(&a.labels)),
        candidate_counts: None,
        methods: Default::default(),
        qval: Some(EstimationExtras {
            signal: Some(r.signal),
            point_ids: a.ids.clone(),
            ..Default::default()
        }),
    }
}

/// Stage 5 over a run folder: reads every label set in `run/labels/` and every prediction
/// set in `run/predictions/` (qval's `.jsonl`) and calls [`evaluate`].
///
/// # Errors
/// A missing or malformed file (naming file and line), a file without a known signal, a
/// folder with no labels, or predictions made from other points than the labels.
pub fn evaluate_run(run: &Path, cfg: &EvaluateConfig) -> Result<Summary, MetricsError> {
    let (refs, methods) = read_run(run)?;
    let mut summary = evaluate(&refs, &methods, cfg)?;
    // Relative to the summary written in the run folder.
    summary.experiment_info.dataset_source = "points.jsonl".into();
    Ok(summary)
}
