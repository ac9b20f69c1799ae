//! One label set against the methods that may be compared with it (a step of
//! [`evaluate`](super::stage::evaluate)): which methods, their predictions in label order, and
//! their point or ranking entries, sample groups and paired comparisons.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{
    EvaluateConfig, LabelSet, PredictionSet, candidate_groups, comparable, paired_section, point_entry, ranking_entry,
    same_data, sample_group,
};
use crate::MetricsError;
use crate::align::align;
use crate::bootstrap::BootstrapConfig;
use crate::labelnoise::{LabelNoise, two_level_spearman};
use crate::summary::{
    Comparison, Estimation, EstimationExtras, Granularity, MethodEntry, MethodEstimation, NanReason, assumption_of,
    opt_all,
};
use qval_core::Signal;

/// A label set being evaluated, with what every method's comparison needs of it.
pub(super) struct Reference<'a> {
    set: &'a LabelSet,
    /// The label values, in label order.
    values: Vec<f64>,
    /// Every label has a point id: predictions pair by id (else by position).
    by_id: bool,
    /// Labels of ranking candidates (some have `candidate_of`): per-state ranking figures.
    is_ranking: bool,
}

/// A method's predictions in label order.
struct AlignedPredictions {
    /// The values (NaN where failed or missing).
    values: Vec<f64>,
    /// Labelled points without a prediction.
    missing: usize,
    /// The NaN predictions the method gave a reason for.
    nan_reasons: Vec<NanReason>,
}

impl<'a> Reference<'a> {
    pub(super) fn new(set: &'a LabelSet) -> Self {
        Reference {
            set,
            values: set.labels.iter().map(|l| l.value).collect(),
            by_id: set.labels.iter().all(|l| !l.point_id.is_empty()),
            is_ranking: set.labels.iter().any(|l| l.candidate_of.is_some()),
        }
    }

    /// Ranking candidates, trajectories (shaped-reward labels: the returns) or points.
    fn granularity(&self) -> Granularity {
        if self.is_ranking {
            Granularity::Ranking
        } else if self.set.signal == Signal::ShapedReward {
            Granularity::Trajectory
        } else {
            Granularity::Point
        }
    }

    /// The label set's entry before any method: its assumption and granularity.
    fn estimation(&self) -> Estimation {
        Estimation {
            assumption: assumption_of(self.set.signal).to_string(),
            granularity: self.granularity(),
            ..Default::default()
        }
    }

    /// qval's additions before any method: the signal, the point ids (when pairing by id)
    /// and the count of aborted labels.
    fn extras(&self) -> EstimationExtras {
        let labels = &self.set.labels;
        EstimationExtras {
            signal: Some(self.set.signal),
            point_ids: if self.by_id {
                labels.iter().map(|l| l.point_id.clone()).collect()
            } else {
                Vec::new()
            },
            aborted: labels
                .iter()
                .filter(|l| l.aborted.is_some() || l.value.is_nan())
                .count(),
            ..Default::default()
        }
    }

    /// The methods to compare with the label set: of a comparable signal, made from the same
    /// dataset, and of its granularity (a method is a ranking one when declared so or, if
    /// undeclared, when it scored a candidate that is not its state's own point).
    fn selected<'p>(&self, predictions: &'p [PredictionSet], cfg: &EvaluateConfig) -> Vec<&'p PredictionSet> {
        let candidate_ids: HashSet<&str> = self
            .set
            .labels
            .iter()
            .filter(|l| l.candidate_of.as_deref().is_some_and(|c| c != l.point_id))
            .map(|l| l.point_id.as_str())
            .collect();
        let ranks_candidates = |m: &PredictionSet| match m.granularity {
            Some(g) => g == Granularity::Ranking,
            None => m
                .predictions
                .iter()
                .any(|p| candidate_ids.contains(p.point_id.as_str())),
        };
        predictions
            .iter()
            .filter(|m| comparable(self.set.signal, m.signal, cfg.relabel) && same_data(self.set, m))
            .filter(|m| match self.granularity() {
                Granularity::Ranking => ranks_candidates(m),
                Granularity::Trajectory => m.granularity == Some(Granularity::Trajectory),
                Granularity::Point => !matches!(m.granularity, Some(Granularity::Ranking | Granularity::Trajectory)),
            })
            .collect()
    }

    /// A method's predictions in label order: by point id when both sides have ids (with
    /// the missing count and the reasons for NaN), else as they come.
    fn aligned(&self, m: &PredictionSet) -> AlignedPredictions {
        if !(self.by_id && m.predictions.iter().all(|p| !p.point_id.is_empty())) {
            return AlignedPredictions {
                values: m.predictions.iter().map(|p| p.value).collect(),
                missing: 0,
                nan_reasons: Vec::new(),
            };
        }
        let a = align(&self.set.labels, &m.predictions);
        let reasons: HashMap<&str, &str> = m
            .predictions
            .iter()
            .filter_map(|p| p.error.as_deref().map(|e| (p.point_id.as_str(), e)))
            .collect();
        let nan_reasons = a
            .ids
            .iter()
            .zip(&a.predictions)
            .filter(|(_, v)| v.is_nan())
            .filter_map(|(id, _)| {
                reasons.get(id.as_str()).map(|reason| NanReason {
                    point_id: id.clone(),
                    reason: reason.to_string(),
                })
            })
            .collect();
        AlignedPredictions {
            values: a.predictions,
            missing: a.missing,
            nan_reasons,
        }
    }
}

/// One label set against every method that may be compared with it; the point comparisons
/// made are recorded in `comparisons`.
pub(super) fn evaluate_label_set(
    r: &Reference,
    predictions: &[PredictionSet],
    cfg: &EvaluateConfig,
    comparisons: &mut Vec<Comparison>,
) -> Result<Estimation, MetricsError> {
    let mut est = r.estimation();
    let mut extras = r.extras();
    let selected = r.selected(predictions, cfg);
    if r.is_ranking {
        rank_methods(r, &selected, cfg, &mut est, &mut extras);
    } else {
        score_methods(r, &selected, cfg, &mut est, &mut extras, comparisons)?;
    }
    est.qval = Some(extras);
    Ok(est)
}

/// A ranking label set: the candidates per state, and each method's ranking entry.
fn rank_methods(
    r: &Reference,
    selected: &[&PredictionSet],
    cfg: &EvaluateConfig,
    est: &mut Estimation,
    extras: &mut EstimationExtras,
) {
    let counts: Vec<usize> = candidate_groups(&r.set.labels, &r.values)
        .iter()
        .map(|g| g.labels.len())
        .collect();
    extras.ground_truth_values = Some(opt_all(&r.values));
    for m in selected {
        let e = ranking_method(r, m, &counts, cfg);
        est.methods.insert(m.name.clone(), MethodEntry::Method(e));
        if m.signal != r.set.signal {
            extras.relabelled.push(m.name.clone());
        }
    }
    est.candidate_counts = Some(counts);
}

/// One method's ranking entry over the states it covers, with its predictions and failures.
fn ranking_method(r: &Reference, m: &PredictionSet, counts: &[usize], cfg: &EvaluateConfig) -> MethodEstimation {
    let a = r.aligned(m);
    let preds = &a.values;
    let cover = if r.by_id {
        r.set.labels.len()
    } else {
        covered(counts, r.set.labels.len(), preds.len())
    };
    let mut e = ranking_entry(
        &candidate_groups(&r.set.labels[..cover], &preds[..cover.min(preds.len())]),
        cfg,
    );
    let x = e.qval.get_or_insert_with(Default::default);
    x.signal = Some(m.signal);
    x.missing = a.missing;
    x.failed = preds.iter().filter(|v| v.is_nan()).count().saturating_sub(a.missing);
    x.nan_reasons = a.nan_reasons;
    x.predicted_values = Some(opt_all(preds));
    e
}

/// Positional files: the labels of the states a method covers with `predictions` values, a
/// prefix of the `labels` (whole states of `counts` candidates each).
fn covered(counts: &[usize], labels: usize, predictions: usize) -> usize {
    if predictions >= labels {
        return labels;
    }
    let mut n = 0;
    for c in counts {
        if n + c > predictions {
            break;
        }
        n += c;
    }
    n
}

/// A point label set: each method's point entry (members of a sample group gathered into
/// the group, after the other methods), and the paired comparisons and tiers of the others.
fn score_methods(
    r: &Reference,
    selected: &[&PredictionSet],
    cfg: &EvaluateConfig,
    est: &mut Estimation,
    extras: &mut EstimationExtras,
    comparisons: &mut Vec<Comparison>,
) -> Result<(), MetricsError> {
    est.ground_truth_values = Some(opt_all(&r.values));
    let mut groups: BTreeMap<String, Vec<(String, MethodEstimation)>> = BTreeMap::new();
    let mut ungrouped: Vec<(String, Vec<f64>)> = Vec::new();
    for m in selected {
        let (mut e, preds) = point_method(r, m, cfg)?;
        comparisons.push(Comparison {
            gt: r.set.name.clone(),
            eval: m.name.clone(),
        });
        if m.signal != r.set.signal {
            extras.relabelled.push(m.name.clone());
        }
        match &m.group {
            Some(g) => {
                e.qval.get_or_insert_with(Default::default).name = Some(m.name.clone());
                groups.entry(g.clone()).or_default().push((m.name.clone(), e));
            }
            None => {
                ungrouped.push((m.name.clone(), padded(&preds, r.values.len())));
                est.methods.insert(m.name.clone(), MethodEntry::Method(e));
            }
        }
    }
    for (g, mut members) in groups {
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let entries = members.into_iter().map(|(_, e)| e).collect();
        est.methods.insert(g, MethodEntry::Group(sample_group(entries, None)));
    }
    if cfg.paired
        && ungrouped.len() >= 2
        && let Some(b) = &cfg.bootstrap
    {
        let names: Vec<String> = ungrouped.iter().map(|(n, _)| n.clone()).collect();
        let preds: Vec<Vec<f64>> = ungrouped.into_iter().map(|(_, p)| p).collect();
        let (paired, t) = paired_section(&names, &preds, &r.values, b)?;
        extras.paired = paired;
        extras.tiers = t;
    }
    Ok(())
}

/// One method's point entry against a point label set, with its predictions in label order.
fn point_method(
    r: &Reference,
    m: &PredictionSet,
    cfg: &EvaluateConfig,
) -> Result<(MethodEstimation, Vec<f64>), MetricsError> {
    let a = r.aligned(m);
    let preds = a.values;
    let mut e = point_entry(&r.values, &preds, cfg)?;
    e.predicted_values = Some(opt_all(&preds));
    let x = e.qval.get_or_insert_with(Default::default);
    x.signal = Some(m.signal);
    x.missing = a.missing;
    let n = r.values.len().min(preds.len());
    x.failed = preds[..n]
        .iter()
        .filter(|v| v.is_nan())
        .count()
        .saturating_sub(a.missing);
    x.nan_reasons = a.nan_reasons;
    x.label_noise = label_noise(r, &preds, cfg);
    Ok((e, preds))
}

/// The two-level bootstrap of a method's rho (at most 2,000 resamples), when asked for and
/// the labels pair by id and kept more than one rollout return.
fn label_noise(r: &Reference, preds: &[f64], cfg: &EvaluateConfig) -> Option<LabelNoise> {
    let b = cfg.bootstrap.as_ref()?;
    if !cfg.label_noise || !r.by_id || !r.set.labels.iter().any(|l| l.returns.len() > 1) {
        return None;
    }
    let boot = BootstrapConfig {
        resamples: b.resamples.min(2_000),
        ..b.clone()
    };
    Some(two_level_spearman(&padded(preds, r.values.len()), &r.set.labels, &boot))
}

/// `preds` cut or padded with NaN to `len` values.
fn padded(preds: &[f64], len: usize) -> Vec<f64> {
    let mut p = preds.to_vec();
    p.resize(len, f64::NAN);
    p
}
