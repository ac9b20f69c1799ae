//! The evaluate stage: pair labels with predictions, compute every figure under the
//! published rules, and build the [`Summary`](crate::Summary) (the published layout, see [`crate::summary`]).
//!
//! The published rules, as `scripts/pipeline/evaluate.py` and `src/qval/correlation.py` of
//! the published testbed apply them:
//! - pairs are compared on their common prefix (capped at the dataset's point count) when
//!   they come from published files; qval's own files pair by point id;
//! - optionally (`exclude_zero_points`) pairs with a zero on either side are dropped first,
//!   counted in `num_dropped_zero`;
//! - with fewer than `min_usable_correlation_points` (50) usable pairs a figure is null with
//!   `num_points` the usable count; a constant side gives null with `num_points` kept;
//! - Pearson, Spearman, Kendall's tau-b as scipy computes them; sign agreement is the share
//!   of usable pairs with `sign(label) == sign(prediction)`, with a two-sided binomial test;
//! - ranking: per state, skip with fewer than 2 candidates, a NaN prediction, or all labels
//!   equal; a state with all predictions equal follows [`RankingTies`]; mean and sample std
//!   (n - 1, 0.0 for one state);
//! - sample groups: mean, sample std (n - 1), min, max, median of the members' defined
//!   coefficients, with the count of null ones.
//!
//! Beyond them: bootstrap intervals, pairwise accuracy, paired comparisons and tiers
//! ([`crate::paired`]), the two-level bootstrap ([`crate::labelnoise`]), relabelling (Q
//! methods against V labels and the reverse) and label sets compared with each other.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::MetricsError;
use crate::bootstrap::{BootstrapConfig, Statistic, bootstrap};
use crate::correlation::{
    Correlation, CorrelationConfig, LengthPolicy, kendall, pairwise_accuracy, pearson, sign_agreement, spearman,
};
use crate::group::group_summary;
use crate::paired::{PairedComparison, paired_spearman, tiers};
use crate::ranking::{RankingTies, StateCandidates, per_state_ranking};
use crate::summary::{
    Aggregate, Correlations, Figure, Granularity, MethodEstimation, MethodExtras, PairedEntry, PairwiseFigure,
    RankingFigure, SampleGroup, opt, opt_all,
};
use qval_core::io::{Kind, read_jsonl};
use qval_core::{Label, Prediction, Signal};

pub(crate) mod label_set;
pub mod stage;

/// The correlations the published testbed computes by default, in its order.
pub const CORRELATION_METHODS: [&str; 4] = ["pearson", "spearman", "kendall_tau", "sign_agreement"];

/// How to evaluate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvaluateConfig {
    /// Minimum pairs and length policy.
    pub correlation: CorrelationConfig,
    /// Bootstrap for the intervals, paired comparisons and label noise; `None` skips them.
    pub bootstrap: Option<BootstrapConfig>,
    /// Which correlations to compute (published names), in order.
    pub correlation_methods: Vec<String>,
    /// Drop pairs with a zero on either side (published `exclude_zero_points`).
    pub exclude_zero_points: bool,
    /// States whose predictions are all equal.
    pub ranking_ties: RankingTies,
    /// Also evaluate Q methods against V labels and V methods against Q labels.
    pub relabel: bool,
    /// Paired comparisons and tiers (needs `bootstrap`).
    pub paired: bool,
    /// The two-level bootstrap where labels keep their rollout returns (needs `bootstrap`).
    pub label_noise: bool,
    /// Compare label sets of the same signal and points with each other.
    pub gt_vs_gt: bool,
}

impl Default for EvaluateConfig {
    /// The published rules (50 pairs minimum, four correlations, no zero filter, published
    /// ties) with 95% bootstrap intervals from 10,000 resamples, seed 0, paired comparisons,
    /// label noise and label sets compared with each other.
    fn default() -> Self {
        EvaluateConfig {
            correlation: CorrelationConfig::default(),
            bootstrap: Some(
                BootstrapConfig::builder()
                    .resamples(10_000)
                    .seed(0)
                    .build()
                    .expect("valid defaults"),
            ),
            correlation_methods: CORRELATION_METHODS.iter().map(|s| s.to_string()).collect(),
            exclude_zero_points: false,
            ranking_ties: RankingTies::Published,
            relabel: false,
            paired: true,
            label_noise: true,
            gt_vs_gt: true,
        }
    }
}

impl EvaluateConfig {
    /// Checks the correlation names.
    ///
    /// # Errors
    /// [`MetricsError::InvalidParameter`] naming an unknown correlation.
    pub fn validate(&self) -> Result<(), MetricsError> {
        match self
            .correlation_methods
            .iter()
            .find(|m| !CORRELATION_METHODS.contains(&m.as_str()))
        {
            Some(m) => Err(unknown_correlation(m)),
            None => Ok(()),
        }
    }
}

fn unknown_correlation(name: &str) -> MetricsError {
    MetricsError::InvalidParameter {
        name: "correlation_methods",
        value: name.to_string(),
        reason: format!("expected one of {}", CORRELATION_METHODS.join(", ")),
    }
}

fn figure(c: &Correlation) -> Figure {
    Figure {
        correlation: opt(c.value),
        p_value: opt(c.p_value),
        num_points: c.n,
    }
}

/// Every point figure of `predictions` against `labels` (same length, paired by position):
/// the zero filter, the configured correlations, and qval's intervals and pairwise accuracy.
/// `predicted_values` is left to the caller.
///
/// # Errors
/// A statistic's own errors.
pub fn point_entry(
    labels: &[f64],
    predictions: &[f64],
    cfg: &EvaluateConfig,
) -> Result<MethodEstimation, MetricsError> {
    let n = labels.len().min(predictions.len());
    let (mut y, mut x) = (labels[..n].to_vec(), predictions[..n].to_vec());
    let mut dropped = 0;
    if cfg.exclude_zero_points {
        let keep: Vec<usize> = (0..n).filter(|&i| y[i] != 0.0 && x[i] != 0.0).collect();
        dropped = n - keep.len();
        y = keep.iter().map(|&i| y[i]).collect();
        x = keep.iter().map(|&i| x[i]).collect();
    }
    let c = CorrelationConfig {
        lengths: LengthPolicy::TruncateToShorter,
        ..cfg.correlation.clone()
    };
    let mut corr = Correlations::default();
    let mut extras = MethodExtras::default();
    let ci = |stat: Statistic| -> Result<Option<[Option<f64>; 2]>, MetricsError> {
        match &cfg.bootstrap {
            Some(b) => {
                let i = bootstrap(&x, &y, stat, &c, b)?;
                Ok(Some([opt(i.low), opt(i.high)]))
            }
            None => Ok(None),
        }
    };
    for name in &cfg.correlation_methods {
        let (value, stat) = match name.as_str() {
            "pearson" => (pearson(&x, &y, &c)?, Some(Statistic::Pearson)),
            "spearman" => (spearman(&x, &y, &c)?, Some(Statistic::Spearman)),
            "kendall_tau" => (kendall(&x, &y, &c)?, Some(Statistic::Kendall)),
            "sign_agreement" => {
                let s = sign_agreement(&x, &y, &c)?;
                (
                    Correlation {
                        value: s.value,
                        p_value: s.p_value,
                        n: s.n as usize,
                        note: s.note,
                    },
                    None,
                )
            }
            other => return Err(unknown_correlation(other)),
        };
        if let Some(note) = &value.note {
            extras.notes.insert(name.clone(), note.clone());
        }
        if let Some(stat) = stat
            && !value.value.is_nan()
            && let Some(i) = ci(stat)?
        {
            extras.intervals.insert(name.clone(), i);
        }
        let f = Some(figure(&value));
        match name.as_str() {
            "pearson" => corr.pearson = f,
            "spearman" => corr.spearman = f,
            "kendall_tau" => corr.kendall_tau = f,
            _ => corr.sign_agreement = f,
        }
    }
    let pa = pairwise_accuracy(&x, &y, &c)?;
    extras.pairwise_accuracy = Some(PairwiseFigure {
        value: opt(pa.value),
        concordant: pa.concordant,
        pairs: pa.pairs,
    });
    if !pa.value.is_nan()
        && let Some(i) = ci(Statistic::PairwiseAccuracy)?
    {
        extras.intervals.insert("pairwise_accuracy".into(), i);
    }
    Ok(MethodEstimation {
        correlations: corr,
        predicted_values: None,
        predicted_trajectory_sums: None,
        num_dropped_zero: Some(dropped),
        per_point_correlations: None,
        qval: Some(extras),
    })
}

/// The ranking figures of one method over the states of a ranking label set.
pub fn ranking_entry(states: &[StateCandidates], cfg: &EvaluateConfig) -> MethodEstimation {
    let r = per_state_ranking(states, cfg.ranking_ties, cfg.bootstrap.as_ref());
    let mut extras = MethodExtras::default();
    if let Some(ci) = &r.ci {
        extras
            .intervals
            .insert("ranking_spearman".into(), [opt(ci.low), opt(ci.high)]);
    }
    for (k, v) in [
        ("fewer than 2 candidates", r.skipped_too_few),
        ("a NaN prediction", r.skipped_nan),
        ("all labels equal", r.skipped_constant_reference),
        ("all predictions equal (counted)", r.tied_predictions),
    ] {
        if v > 0 {
            extras.skipped.insert(k.to_string(), v);
        }
    }
    let skipped = states.len() - r.used;
    MethodEstimation {
        correlations: Correlations {
            ranking_spearman: Some(RankingFigure {
                mean: opt(r.mean),
                std: opt(r.std),
                num_valid: r.used,
                num_skipped: skipped,
                num_points: states.len(),
            }),
            ..Default::default()
        },
        predicted_values: None,
        predicted_trajectory_sums: None,
        num_dropped_zero: None,
        per_point_correlations: Some(opt_all(&r.per_state)),
        qval: Some(extras),
    }
}

fn aggregate(coefs: &[f64]) -> Aggregate {
    let g = group_summary(coefs);
    Aggregate {
        mean: opt(g.mean),
        std: opt(g.std),
        min: opt(g.min),
        max: opt(g.max),
        median: opt(g.median),
        num_samples: g.n,
        num_nan: g.nan,
    }
}

/// A sample group from its members' entries (in sample order): the published aggregates of
/// every correlation the members carry.
pub fn sample_group(members: Vec<MethodEstimation>, num_samples: Option<usize>) -> SampleGroup {
    let mut aggregate_correlations = indexmap::IndexMap::new();
    let names: Vec<&'static str> = members
        .first()
        .map(|m| m.correlations.figures().into_iter().map(|(k, _)| k).collect())
        .unwrap_or_default();
    for name in names {
        let coefs: Vec<f64> = members
            .iter()
            .map(|m| m.correlations.get(name).and_then(|f| f.correlation).unwrap_or(f64::NAN))
            .collect();
        aggregate_correlations.insert(name.to_string(), aggregate(&coefs));
    }
    SampleGroup {
        num_samples: num_samples.unwrap_or(members.len()),
        aggregate_correlations,
        per_sample: members,
    }
}

fn io_err(op: &'static str, path: &Path, e: impl std::fmt::Display) -> MetricsError {
    MetricsError::Io {
        op,
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn files_with(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, MetricsError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err("listing", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    Ok(out)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Parses a signal name: qval's (`q`, `v`, `advantage`) or the published testbed's
/// assumptions (`q_value`, `state_value`, `advantage`).
pub fn parse_signal(name: &str) -> Option<Signal> {
    match name.to_ascii_lowercase().as_str() {
        "q" | "q_value" | "qv" => Some(Signal::Q),
        "v" | "value" | "state_value" | "sv" => Some(Signal::V),
        "a" | "advantage" => Some(Signal::Advantage),
        "potential" | "phi" => Some(Signal::Potential),
        "shaped-reward" | "shaped_reward" | "f" => Some(Signal::ShapedReward),
        _ => None,
    }
}

/// A set of reference labels to evaluate methods against.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelSet {
    /// The name (e.g. `mvmc-q`).
    pub name: String,
    /// What the labels estimate.
    pub signal: Signal,
    /// The labels. qval's pair with predictions by point id; those from published files
    /// (empty point ids) by position, with prefix truncation.
    pub labels: Vec<Label>,
    /// The fingerprint of the dataset the labels were made from, if known.
    pub dataset: Option<String>,
    /// Where the labels were read from (for messages), if from a file.
    pub source: Option<PathBuf>,
}

/// One method's predictions.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictionSet {
    /// The method's name.
    pub name: String,
    /// What the method estimates.
    pub signal: Signal,
    /// The predictions (empty point ids: paired by position, as published files are).
    pub predictions: Vec<Prediction>,
    /// The fingerprint of the dataset the predictions were made from, if known.
    pub dataset: Option<String>,
    /// The sample group the method belongs to (codegen's N samples), if any.
    pub group: Option<String>,
    /// Point or ranking; `None`: inferred (a method that scores ranking candidates is
    /// compared with ranking label sets).
    pub granularity: Option<Granularity>,
    /// Where the predictions were read from, if from a file.
    pub source: Option<PathBuf>,
}

fn described(name: &str, source: &Option<PathBuf>) -> String {
    match source {
        Some(p) => p.display().to_string(),
        None => format!("`{name}`"),
    }
}

impl LabelSet {
    /// Reads a qval label file (`labels/<name>.jsonl`): the signal from the metadata (or the
    /// records, which must agree), the dataset fingerprint from the metadata.
    ///
    /// # Errors
    /// An unreadable or malformed file, or one whose signal is missing or mixed.
    pub fn read(path: &Path) -> Result<Self, MetricsError> {
        let (meta, labels) = read_jsonl::<Label>(path, Kind::Labels)?;
        let declared = meta
            .params
            .pointer("/labeler/signal")
            .or_else(|| meta.params.get("signal"))
            .and_then(|s| s.as_str());
        let signal = match declared {
            Some(s) => parse_signal(s).ok_or_else(|| MetricsError::Format {
                path: path.to_path_buf(),
                message: format!("the metadata's signal `{s}` is not q, v, advantage, potential or shaped-reward"),
            })?,
            None => {
                let first = labels.first().map(|l| l.signal).ok_or_else(|| MetricsError::Format {
                    path: path.to_path_buf(),
                    message: "no labels, and no signal in the metadata".into(),
                })?;
                if let Some(other) = labels.iter().find(|l| l.signal != first) {
                    return Err(MetricsError::Format {
                        path: path.to_path_buf(),
                        message: format!("labels of two signals ({first} and {})", other.signal),
                    });
                }
                first
            }
        };
        Ok(LabelSet {
            name: stem(path),
            signal,
            labels,
            dataset: dataset_of(&meta.params),
            source: Some(path.to_path_buf()),
        })
    }
}

impl PredictionSet {
    /// Reads a qval prediction file (`predictions/<method>.jsonl`).
    ///
    /// # Errors
    /// An unreadable or malformed file, or metadata without a known `signal`.
    pub fn read(path: &Path) -> Result<Self, MetricsError> {
        let (meta, predictions) = read_jsonl::<Prediction>(path, Kind::Predictions)?;
        let signal = match meta.params.get("signal").and_then(|s| s.as_str()) {
            Some(s) => parse_signal(s).ok_or_else(|| MetricsError::Format {
                path: path.to_path_buf(),
                message: format!("the metadata's signal `{s}` is not q, v, advantage, potential or shaped-reward"),
            })?,
            None => {
                return Err(MetricsError::Format {
                    path: path.to_path_buf(),
                    message: "the metadata has no `params.signal` (q, v, advantage, potential or shaped-reward)".into(),
                });
            }
        };
        Ok(PredictionSet {
            name: meta.producer.clone(),
            signal,
            predictions,
            dataset: dataset_of(&meta.params),
            group: meta
                .params
                .pointer("/method/sample_group")
                .and_then(|g| g.as_str())
                .map(str::to_string),
            granularity: None,
            source: Some(path.to_path_buf()),
        })
    }
}

/// The dataset fingerprint of a file's parameters: `dataset`, else `points`.
fn dataset_of(params: &Value) -> Option<String> {
    params
        .get("dataset")
        .or_else(|| params.get("points"))
        .and_then(|d| d.as_str())
        .map(str::to_string)
}

/// Groups ranking candidates by the point they belong to ([`Label::candidate_of`]), in label
/// order, with the method's aligned predictions.
pub fn candidate_groups(labels: &[Label], predictions: &[f64]) -> Vec<StateCandidates> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, StateCandidates> = BTreeMap::new();
    for (l, p) in labels.iter().zip(predictions) {
        let key = l.candidate_of.clone().unwrap_or_else(|| l.point_id.clone());
        let g = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            StateCandidates {
                state: key,
                labels: Vec::new(),
                predictions: Vec::new(),
            }
        });
        g.labels.push(l.value);
        g.predictions.push(*p);
    }
    order.into_iter().filter_map(|k| groups.remove(&k)).collect()
}

/// Whether two signals may be compared: equal, or Q and V under relabelling.
pub fn comparable(label: Signal, method: Signal, relabel: bool) -> bool {
    let q_or_v = |s| matches!(s, Signal::Q | Signal::V);
    label == method || (relabel && q_or_v(label) && q_or_v(method))
}

/// The rho of each method and the comparisons the tiers needed (each pair once, A the
/// better-ranked method).
fn paired_section(
    names: &[String],
    preds: &[Vec<f64>],
    labels: &[f64],
    boot: &BootstrapConfig,
) -> Result<(Vec<PairedEntry>, Vec<Vec<String>>), MetricsError> {
    let rhos: Vec<(String, Option<f64>)> = names
        .iter()
        .zip(preds)
        .map(|(n, p)| {
            let c = CorrelationConfig {
                min_pairs: 3,
                lengths: LengthPolicy::TruncateToShorter,
            };
            (n.clone(), spearman(p, labels, &c).ok().and_then(|r| opt(r.value)))
        })
        .collect();
    let mut cache: BTreeMap<(usize, usize), Option<PairedComparison>> = BTreeMap::new();
    let mut err = None;
    let t = tiers(&rhos, |i, j| {
        cache
            .entry((i, j))
            .or_insert_with(|| match paired_spearman(&preds[i], &preds[j], labels, boot) {
                Ok(c) => Some(c),
                Err(e) => {
                    err = Some(e);
                    None
                }
            })
            .clone()
    });
    if let Some(e) = err {
        return Err(e);
    }
    let entries = cache
        .into_iter()
        .filter_map(|((i, j), c)| {
            c.map(|comparison| PairedEntry {
                a: names[i].clone(),
                b: names[j].clone(),
                comparison,
            })
        })
        .collect();
    Ok((entries, t))
}

/// Whether a label set and a prediction set were made from the same dataset (an unknown
/// fingerprint on either side does not tell them apart).
pub(crate) fn same_data(r: &LabelSet, m: &PredictionSet) -> bool {
    match (&r.dataset, &m.dataset) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// A run folder's label sets (`labels/*.jsonl`, at least one) and prediction sets
/// (`predictions/*.jsonl`), in file name order.
///
/// # Errors
/// A missing or malformed file (naming file and line), or a folder with no labels.
pub fn read_run(run: &Path) -> Result<(Vec<LabelSet>, Vec<PredictionSet>), MetricsError> {
    let mut refs = Vec::new();
    for path in files_with(&run.join("labels"), "jsonl")? {
        refs.push(LabelSet::read(&path)?);
    }
    if refs.is_empty() {
        return Err(MetricsError::Format {
            path: run.join("labels"),
            message: "no label files (`labels/*.jsonl`); for a folder of the published testbed's prediction \
                      files give the folder holding `gt/` and `eval/`"
                .into(),
        });
    }
    let mut methods = Vec::new();
    for path in files_with(&run.join("predictions"), "jsonl")? {
        methods.push(PredictionSet::read(&path)?);
    }
    Ok((refs, methods))
}
