//! The evaluate stage: pair labels with predictions, compute every statistic, and write
//! `summary.json` (the published layout, extended), a Markdown table and plots.
//!
//! ## `summary.json`
//! ```text
//! {
//!   "experiment": { "qval_version", "source", "config", "labels": [...], "predictions": [...] },
//!   "estimations": {
//!     "<reference>": {
//!       "signal": "q", "point_ids": [...], "values": [...], "aborted": 0,
//!       "methods": {
//!         "<method>": {
//!           "signal": "q", "values": [...], "missing": 0, "failed": 0,
//!           "correlations": {
//!             "pearson":     { "correlation", "p_value", "num_points", "ci95": [lo, hi], "note" },
//!             "spearman":    { ... },
//!             "kendall_tau": { ... }
//!           },
//!           "pairwise_accuracy": { "value", "concordant", "pairs", "ci95" },
//!           "sign_agreement": { "value", "agree", "n", "p_value" }
//!         } } } } }
//! ```
//! NaN is written as `null`. `estimations -> reference -> methods -> method -> correlations
//! -> pearson / spearman / kendall_tau -> correlation, p_value, num_points` is the published
//! testbed's layout, so tools written for it read qval's summaries; the other keys are
//! qval's additions.
//!
//! ## Reading the published testbed's files
//! [`recompute_published`] reads a published `summary_*.json`: per reference,
//! `estimations.<ref>.values` (or `reference_values`, `labels`) and per method
//! `methods.<m>.values` (or `predictions`), nulls as NaN. It recomputes every figure under
//! the published rules (prefix truncation of unequal lengths, at least 50 usable pairs) and
//! lists where the stored figures differ. A run folder may also hold published prediction
//! JSONs (`predictions/<method>.json` with `values`) and label JSONs (`labels/<ref>.json`
//! with `values`): those are paired by position with prefix truncation.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::MetricsError;
use crate::align::align;
use crate::bootstrap::{BootstrapConfig, Statistic, bootstrap};
use crate::correlation::{
    Correlation, CorrelationConfig, LengthPolicy, kendall, pairwise_accuracy, pearson, sign_agreement, spearman,
};
use crate::ranking::{PerStateRanking, StateCandidates, per_state_ranking};
use qval_core::io::{Kind, read_jsonl};
use qval_core::{Label, Prediction, Signal};

/// How to evaluate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluateConfig {
    /// Minimum pairs and length policy.
    pub correlation: CorrelationConfig,
    /// Bootstrap for the confidence intervals; `None` skips them.
    pub bootstrap: Option<BootstrapConfig>,
}

impl Default for EvaluateConfig {
    /// The published rules (50 pairs minimum) with 95% bootstrap intervals from 10,000
    /// resamples, seed 0.
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
        }
    }
}

/// One correlation in the published layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The coefficient (null when NaN).
    pub correlation: Option<f64>,
    /// Its two-sided p-value.
    pub p_value: Option<f64>,
    /// Usable pairs.
    pub num_points: usize,
    /// The bootstrap interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[Option<f64>; 2]>,
    /// Why the figure is NaN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn opt(v: f64) -> Option<f64> {
    if v.is_finite() { Some(v) } else { None }
}

fn unopt(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

impl Figure {
    fn from(c: &Correlation, ci: Option<[f64; 2]>) -> Self {
        Figure {
            correlation: opt(c.value),
            p_value: opt(c.p_value),
            num_points: c.n,
            ci95: ci.map(|[a, b]| [opt(a), opt(b)]),
            note: c.note.clone(),
        }
    }
}

/// The three correlations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Correlations {
    /// Pearson's r.
    pub pearson: Figure,
    /// Spearman's rho.
    pub spearman: Figure,
    /// Kendall's tau-b.
    pub kendall_tau: Figure,
    /// For ranking label sets: the per-state Spearman summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking_spearman: Option<RankingFigure>,
}

/// The per-state ranking figure in the published layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankingFigure {
    /// Mean of the per-state rho (null when no state is usable).
    pub mean: Option<f64>,
    /// Sample standard deviation (n - 1; 0.0 for one usable state).
    pub std: Option<f64>,
    /// States used.
    pub num_valid: usize,
    /// States skipped.
    pub num_skipped: usize,
    /// States.
    pub num_points: usize,
    /// Bootstrap interval of the mean (resampling states).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[Option<f64>; 2]>,
    /// Per state, its rho (null when skipped).
    pub per_point_correlations: Vec<Option<f64>>,
}

impl RankingFigure {
    fn from(r: &PerStateRanking) -> Self {
        let std = if r.used == 1 { 0.0 } else { r.std };
        RankingFigure {
            mean: opt(r.mean),
            std: opt(std),
            num_valid: r.used,
            num_skipped: r.per_state.len() - r.used,
            num_points: r.per_state.len(),
            ci95: r.ci.as_ref().map(|i| [opt(i.low), opt(i.high)]),
            per_point_correlations: r.per_state.iter().map(|v| opt(*v)).collect(),
        }
    }
}

/// Pairwise accuracy in the summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairwiseFigure {
    /// Concordant / pairs with different reference values.
    pub value: Option<f64>,
    /// Concordant pairs.
    pub concordant: u64,
    /// Pairs with different reference values.
    pub pairs: u64,
    /// Bootstrap interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[Option<f64>; 2]>,
}

/// Sign agreement in the summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignFigure {
    /// Share of signed pairs whose signs agree.
    pub value: Option<f64>,
    /// Agreements.
    pub agree: u64,
    /// Signed pairs.
    pub n: u64,
    /// Two-sided binomial p-value.
    pub p_value: Option<f64>,
}

/// One method evaluated against one reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodEstimation {
    /// The signal the method estimates.
    pub signal: Signal,
    /// Its predictions aligned to the reference's points (null for NaN or missing).
    pub values: Vec<Option<f64>>,
    /// Labelled points without a prediction.
    #[serde(default)]
    pub missing: usize,
    /// Predictions that are NaN (the method failed on the point).
    #[serde(default)]
    pub failed: usize,
    /// The correlations.
    pub correlations: Correlations,
    /// Pairwise accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairwise_accuracy: Option<PairwiseFigure>,
    /// Sign agreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_agreement: Option<SignFigure>,
}

/// Whether a label set's points are compared across all points, or within the candidate
/// groups of ranking methods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One point per state-action pair, compared over all points.
    #[default]
    Point,
    /// Ranking candidates, compared within each state.
    Ranking,
}

/// One reference (a label set) and every method compared with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimation {
    /// The signal of the labels.
    pub signal: Signal,
    /// Point or ranking.
    #[serde(default)]
    pub granularity: Granularity,
    /// For ranking: candidates per state, in state order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidate_counts: Vec<usize>,
    /// The points, in order (empty for published files, which pair by position).
    #[serde(default)]
    pub point_ids: Vec<String>,
    /// The reference values (null where aborted).
    pub values: Vec<Option<f64>>,
    /// Aborted points.
    #[serde(default)]
    pub aborted: usize,
    /// The methods, by name.
    pub methods: BTreeMap<String, MethodEstimation>,
    /// Sampled methods (codegen's N samples): the summary of their members' Spearman rho,
    /// the published "mean +- std [min, max]" figure, by group.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sample_groups: BTreeMap<String, SampleGroup>,
}

/// A sampled method's figure: its members and the summary of their rho.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleGroup {
    /// The member methods, in name order.
    pub members: Vec<String>,
    /// Mean, std (ddof 0), min, max, median of the members' Spearman rho.
    pub spearman: crate::group::GroupSummary,
}

/// Everything an evaluation produced: enough to recompute any figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// What was evaluated and how.
    pub experiment: Value,
    /// Per reference.
    pub estimations: BTreeMap<String, Estimation>,
}

/// Computes every figure of `predictions` against `labels` (already aligned).
pub fn evaluate_method(
    signal: Signal,
    labels: &[f64],
    predictions: &[f64],
    missing: usize,
    cfg: &EvaluateConfig,
) -> Result<MethodEstimation, MetricsError> {
    let c = &cfg.correlation;
    let ci = |stat: Statistic| -> Result<Option<[f64; 2]>, MetricsError> {
        match &cfg.bootstrap {
            Some(b) => {
                let i = bootstrap(predictions, labels, stat, c, b)?;
                Ok(Some([i.low, i.high]))
            }
            None => Ok(None),
        }
    };
    let p = pearson(predictions, labels, c)?;
    let s = spearman(predictions, labels, c)?;
    let k = kendall(predictions, labels, c)?;
    let pa = pairwise_accuracy(predictions, labels, c)?;
    let sa = sign_agreement(predictions, labels, c)?;
    let defined = |x: &Correlation| !x.value.is_nan();
    let n = predictions.len().min(labels.len());
    Ok(MethodEstimation {
        signal,
        values: predictions.iter().map(|v| opt(*v)).collect(),
        missing,
        failed: predictions[..n]
            .iter()
            .filter(|v| v.is_nan())
            .count()
            .saturating_sub(missing),
        correlations: Correlations {
            pearson: Figure::from(&p, if defined(&p) { ci(Statistic::Pearson)? } else { None }),
            spearman: Figure::from(&s, if defined(&s) { ci(Statistic::Spearman)? } else { None }),
            kendall_tau: Figure::from(&k, if defined(&k) { ci(Statistic::Kendall)? } else { None }),
            ranking_spearman: None,
        },
        pairwise_accuracy: Some(PairwiseFigure {
            value: opt(pa.value),
            concordant: pa.concordant,
            pairs: pa.pairs,
            ci95: if pa.value.is_nan() {
                None
            } else {
                ci(Statistic::PairwiseAccuracy)?.map(|[a, b]| [opt(a), opt(b)])
            },
        }),
        sign_agreement: Some(SignFigure {
            value: opt(sa.value),
            agree: sa.agree,
            n: sa.n,
            p_value: opt(sa.p_value),
        }),
    })
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

/// Reads a published-style JSON file holding `values` (nulls as NaN) and its signal.
fn read_values_json(path: &Path) -> Result<(Vec<f64>, Signal, Option<String>), MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err("reading", path, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| MetricsError::Format {
        path: path.to_path_buf(),
        message: format!("line {}: {e}", e.line()),
    })?;
    let format = |message: String| MetricsError::Format {
        path: path.to_path_buf(),
        message,
    };
    let values = values_of(&v, &["values", "predictions", "reference_values", "labels"]).map_err(format)?;
    let signal = strict_signal_of(&v).map_err(format)?;
    let dataset = v
        .pointer("/metadata/dataset_fingerprint")
        .and_then(|d| d.as_str())
        .map(str::to_string);
    Ok((values, signal, dataset))
}

fn values_of(v: &Value, keys: &[&str]) -> Result<Vec<f64>, String> {
    let (key, arr) = keys
        .iter()
        .find_map(|k| v.get(*k).and_then(|a| a.as_array()).map(|a| (*k, a)))
        .ok_or_else(|| format!("no `{}` array", keys.join("` / `")))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| match x {
            Value::Null => Ok(f64::NAN),
            Value::Number(n) => n.as_f64().ok_or_else(|| format!("`{key}[{i}]` is not a number")),
            other => Err(format!("`{key}[{i}]` is {other}, expected a number or null")),
        })
        .collect()
}

/// Parses a signal name: qval's (`q`, `v`, `advantage`) or the published testbed's
/// assumptions (`q_value`, `state_value`, `advantage`).
pub fn parse_signal(name: &str) -> Option<Signal> {
    match name.to_ascii_lowercase().as_str() {
        "q" | "q_value" | "qv" => Some(Signal::Q),
        "v" | "value" | "state_value" | "sv" => Some(Signal::V),
        "a" | "advantage" => Some(Signal::Advantage),
        _ => None,
    }
}

/// The signal a published-style object declares (`signal`, `target`, `config.signal_type` or
/// `config.assumption`); missing or unknown is an error, never a silent Q.
fn strict_signal_of(v: &Value) -> Result<Signal, String> {
    let found = [
        "/signal",
        "/target",
        "/config/signal_type",
        "/config/assumption",
        "/assumption",
    ]
    .iter()
    .find_map(|p| v.pointer(p).and_then(|s| s.as_str()).map(|s| (*p, s)));
    match found {
        Some((key, s)) => parse_signal(s)
            .ok_or_else(|| format!("`{key}` is `{s}`: expected q, v or advantage (or q_value, state_value)")),
        None => Err("no signal: add `signal` (q, v or advantage) or `config.signal_type`".into()),
    }
}

/// Lenient: published summaries' estimations without a declared signal are Q.
fn signal_of(v: &Value) -> Signal {
    strict_signal_of(v).unwrap_or(Signal::Q)
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
                message: format!("the metadata's signal `{s}` is not q, v or advantage"),
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
                message: format!("the metadata's signal `{s}` is not q, v or advantage"),
            })?,
            None => {
                return Err(MetricsError::Format {
                    path: path.to_path_buf(),
                    message: "the metadata has no `params.signal` (q, v or advantage)".into(),
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

/// Stage 5, in memory: evaluates every prediction set against every label set of the same
/// signal made from the same dataset. qval's records pair by point id; records without ids
/// (from published files) by position with prefix truncation. A label set of ranking
/// candidates (labels with `candidate_of`) also gets the per-state ranking figure.
///
/// # Errors
/// [`MetricsError::OtherPoints`] when a prediction set has label sets of its signal but none
/// made from its dataset (labels copied from another run); a statistic's own errors.
pub fn evaluate(
    labels: &[LabelSet],
    predictions: &[PredictionSet],
    cfg: &EvaluateConfig,
) -> Result<Summary, MetricsError> {
    let same_data = |r: &LabelSet, m: &PredictionSet| match (&r.dataset, &m.dataset) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
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
    let mut estimations = BTreeMap::new();
    for r in labels {
        let ranking = r.labels.iter().any(|l| l.candidate_of.is_some());
        let values: Vec<f64> = r.labels.iter().map(|l| l.value).collect();
        let by_id = r.labels.iter().all(|l| !l.point_id.is_empty());
        let groups_of = |preds: &[f64]| candidate_groups(&r.labels, preds);
        let mut est = Estimation {
            signal: r.signal,
            granularity: if ranking {
                Granularity::Ranking
            } else {
                Granularity::Point
            },
            point_ids: if by_id {
                r.labels.iter().map(|l| l.point_id.clone()).collect()
            } else {
                Vec::new()
            },
            values: values.iter().map(|v| opt(*v)).collect(),
            aborted: r
                .labels
                .iter()
                .filter(|l| l.aborted.is_some() || l.value.is_nan())
                .count(),
            candidate_counts: if ranking {
                groups_of(&values).iter().map(|g| g.labels.len()).collect()
            } else {
                Vec::new()
            },
            methods: BTreeMap::new(),
            sample_groups: BTreeMap::new(),
        };
        for m in predictions.iter().filter(|m| m.signal == r.signal && same_data(r, m)) {
            let paired_by_id = by_id && m.predictions.iter().all(|p| !p.point_id.is_empty());
            let mut result = if paired_by_id {
                let a = align(&r.labels, &m.predictions);
                evaluate_method(m.signal, &a.labels, &a.predictions, a.missing, cfg)?
            } else {
                let mut c = cfg.clone();
                c.correlation.lengths = LengthPolicy::TruncateToShorter;
                let preds: Vec<f64> = m.predictions.iter().map(|p| p.value).collect();
                evaluate_method(m.signal, &values, &preds, 0, &c)?
            };
            if ranking {
                let preds: Vec<f64> = result.values.iter().map(|v| unopt(*v)).collect();
                let r = per_state_ranking(&groups_of(&preds), cfg.bootstrap.as_ref());
                result.correlations.ranking_spearman = Some(RankingFigure::from(&r));
            }
            est.methods.insert(m.name.clone(), result);
            if let Some(g) = &m.group {
                est.sample_groups
                    .entry(g.clone())
                    .or_insert_with(|| SampleGroup {
                        members: Vec::new(),
                        spearman: crate::group::group_summary(&[]),
                    })
                    .members
                    .push(m.name.clone());
            }
        }
        for g in est.sample_groups.values_mut() {
            g.members.sort();
            let rhos: Vec<f64> = g
                .members
                .iter()
                .map(|m| unopt(est.methods[m].correlations.spearman.correlation))
                .collect();
            g.spearman = crate::group::group_summary(&rhos);
        }
        estimations.insert(r.name.clone(), est);
    }
    let experiment = serde_json::json!({
        "qval_version": env!("CARGO_PKG_VERSION"),
        "config": cfg,
        "labels": labels.iter().map(|r| &r.name).collect::<Vec<_>>(),
        "predictions": predictions.iter().map(|m| &m.name).collect::<Vec<_>>(),
    });
    Ok(Summary {
        experiment,
        estimations,
    })
}

/// Stage 5 over a run folder: reads every label set in `run/labels/` and every prediction
/// set in `run/predictions/` (qval's `.jsonl`, or published-style `.json` with `values` and
/// a declared signal) and calls [`evaluate`].
///
/// # Errors
/// A missing or malformed file (naming file and line), a file without a known signal, a
/// folder with no labels, or predictions made from other points than the labels.
pub fn evaluate_run(run: &Path, cfg: &EvaluateConfig) -> Result<Summary, MetricsError> {
    let mut refs = Vec::new();
    for path in files_with(&run.join("labels"), "jsonl")? {
        refs.push(LabelSet::read(&path)?);
    }
    for path in files_with(&run.join("labels"), "json")? {
        let (values, signal, dataset) = read_values_json(&path)?;
        refs.push(LabelSet {
            name: stem(&path),
            signal,
            labels: values
                .iter()
                .map(|v| Label {
                    point_id: String::new(),
                    signal,
                    value: *v,
                    aggregation: Default::default(),
                    returns: Vec::new(),
                    baseline_returns: Vec::new(),
                    aborted: None,
                    candidate_of: None,
                })
                .collect(),
            dataset,
            source: Some(path.clone()),
        });
    }
    if refs.is_empty() {
        return Err(MetricsError::Format {
            path: run.join("labels"),
            message: "no label files (`labels/*.jsonl` from qval, or `labels/*.json` with `values`)".into(),
        });
    }
    let mut methods = Vec::new();
    for path in files_with(&run.join("predictions"), "jsonl")? {
        methods.push(PredictionSet::read(&path)?);
    }
    for path in files_with(&run.join("predictions"), "json")? {
        let (values, signal, dataset) = read_values_json(&path)?;
        methods.push(PredictionSet {
            name: stem(&path),
            signal,
            predictions: values
                .iter()
                .map(|v| Prediction {
                    point_id: String::new(),
                    value: *v,
                    error: None,
                })
                .collect(),
            dataset,
            group: None,
            source: Some(path.clone()),
        });
    }
    let mut summary = evaluate(&refs, &methods, cfg)?;
    summary.experiment["source"] = Value::from(run.display().to_string());
    Ok(summary)
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "NaN".into(),
    }
}

fn fmt_p(v: Option<f64>) -> String {
    match v {
        // Below the smallest double: scipy prints 0.0 too, but it is an underflow, not a zero.
        Some(0.0) => "<1e-300".into(),
        Some(x) if x < 1e-3 => format!("{x:.1e}"),
        Some(x) => format!("{x:.3}"),
        None => "NaN".into(),
    }
}

impl Summary {
    /// The Markdown report: per reference, a table of method, signal, n, rho [95% CI], p,
    /// tau, r, pairwise accuracy; notes below.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for (name, est) in &self.estimations {
            out.push_str(&format!(
                "### Reference `{name}` ({} labels, signal {}, {} aborted)\n\n",
                est.values.len(),
                est.signal,
                est.aborted
            ));
            let mut notes = Vec::new();
            if est.granularity == Granularity::Ranking {
                out.push_str("| method | signal | states used | per-state rho mean [95% CI] | std | skipped |\n");
                out.push_str("|---|---|---:|---|---:|---:|\n");
                for (m, e) in &est.methods {
                    if let Some(r) = &e.correlations.ranking_spearman {
                        let ci = match r.ci95 {
                            Some([a, b]) => format!(" [{}, {}]", fmt(a, 3), fmt(b, 3)),
                            None => String::new(),
                        };
                        out.push_str(&format!(
                            "| {m} | {} | {} | {}{ci} | {} | {} |\n",
                            e.signal,
                            r.num_valid,
                            fmt(r.mean, 3),
                            fmt(r.std, 3),
                            r.num_skipped
                        ));
                    }
                }
                if est.methods.is_empty() {
                    out.push_str("| (no ranking method) | | | | | |\n");
                }
                out.push('\n');
                continue;
            }
            out.push_str("| method | signal | n | rho [95% CI] | p | tau | r | pairwise acc. |\n");
            out.push_str("|---|---|---:|---|---:|---:|---:|---:|\n");
            for (m, e) in &est.methods {
                let s = &e.correlations.spearman;
                let ci = match s.ci95 {
                    Some([a, b]) => format!(" [{}, {}]", fmt(a, 3), fmt(b, 3)),
                    None => String::new(),
                };
                out.push_str(&format!(
                    "| {m} | {} | {} | {}{ci} | {} | {} | {} | {} |\n",
                    e.signal,
                    s.num_points,
                    fmt(s.correlation, 3),
                    fmt_p(s.p_value),
                    fmt(e.correlations.kendall_tau.correlation, 3),
                    fmt(e.correlations.pearson.correlation, 3),
                    fmt(e.pairwise_accuracy.as_ref().and_then(|p| p.value), 3),
                ));
                if let Some(n) = &s.note {
                    notes.push(format!("- `{m}`: {n}"));
                }
                if e.failed > 0 || e.missing > 0 {
                    notes.push(format!(
                        "- `{m}`: {} failed (NaN) and {} missing predictions",
                        e.failed, e.missing
                    ));
                }
            }
            if est.methods.is_empty() {
                out.push_str("| (no method estimates this signal) | | | | | | | |\n");
            }
            for (g, sg) in &est.sample_groups {
                let f = &sg.spearman;
                notes.push(format!(
                    "- `{g}` ({} samples): rho {:.3} +- {:.3} [{:.3}, {:.3}]{}",
                    sg.members.len(),
                    f.mean,
                    f.std,
                    f.min,
                    f.max,
                    if f.nan > 0 {
                        format!(", {} NaN", f.nan)
                    } else {
                        String::new()
                    }
                ));
            }
            if !notes.is_empty() {
                out.push('\n');
                out.push_str(&notes.join("\n"));
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// Writes `<stem>.json`, `<stem>.md` and plots (`<stem>_plots/*.svg` and `.png`) into
    /// `dir`; returns the files written. Plots that cannot be drawn are reported in the
    /// returned list of warnings, never fatal.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(Vec<PathBuf>, Vec<String>), MetricsError> {
        let mut written = Vec::new();
        let json = serde_json::to_string_pretty(self).map_err(|e| MetricsError::Format {
            path: dir.join(stem),
            message: e.to_string(),
        })?;
        let p = dir.join(format!("{stem}.json"));
        qval_core::io::write_atomic(&p, (json + "\n").as_bytes())?;
        written.push(p);
        let p = dir.join(format!("{stem}.md"));
        qval_core::io::write_atomic(&p, self.markdown().as_bytes())?;
        written.push(p);
        let (plots, warnings) = crate::plots::write_plots(self, &dir.join(format!("{stem}_plots")))?;
        written.extend(plots);
        Ok((written, warnings))
    }
}

/// A figure where qval and a stored summary disagree.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    /// `reference / method / statistic / field`.
    pub what: String,
    /// The stored value.
    pub stored: Value,
    /// qval's value.
    pub recomputed: Value,
}

/// Reads a published testbed `summary_*.json`, recomputes every figure from its stored
/// values under the published rules (prefix truncation, `cfg`'s minimum of pairs), and
/// returns qval's summary with the differences from the stored figures (statistics and
/// p-values compared to 1e-9 relative, counts exactly).
///
/// # Errors
/// The file cannot be read, is not JSON, or lacks `estimations` / values (the message
/// names the JSON path).
pub fn recompute_published(path: &Path, cfg: &EvaluateConfig) -> Result<(Summary, Vec<Difference>), MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err("reading", path, e))?;
    let fmt_err = |message: String| MetricsError::Format {
        path: path.to_path_buf(),
        message,
    };
    let root: Value = serde_json::from_str(&text).map_err(|e| fmt_err(format!("line {}: {e}", e.line())))?;
    let ests = root
        .get("estimations")
        .and_then(|e| e.as_object())
        .ok_or_else(|| fmt_err("no `estimations` object".into()))?;
    let mut cfg = cfg.clone();
    cfg.correlation.lengths = LengthPolicy::TruncateToShorter;
    let mut estimations = BTreeMap::new();
    let mut diffs = Vec::new();
    for (rname, r) in ests {
        let labels = values_of(r, &["values", "reference_values", "labels"])
            .map_err(|m| fmt_err(format!("estimations.{rname}: {m}")))?;
        let signal = signal_of(r);
        let methods = r
            .get("methods")
            .and_then(|m| m.as_object())
            .ok_or_else(|| fmt_err(format!("estimations.{rname}: no `methods` object")))?;
        let mut est = Estimation {
            signal,
            granularity: Granularity::Point,
            candidate_counts: Vec::new(),
            sample_groups: BTreeMap::new(),
            point_ids: Vec::new(),
            values: labels.iter().map(|v| opt(*v)).collect(),
            aborted: labels.iter().filter(|v| v.is_nan()).count(),
            methods: BTreeMap::new(),
        };
        for (mname, m) in methods {
            let preds = values_of(m, &["values", "predictions"])
                .map_err(|e| fmt_err(format!("estimations.{rname}.methods.{mname}: {e}")))?;
            let ours = evaluate_method(signal_of(m), &labels, &preds, 0, &cfg)?;
            if let Some(stored) = m.get("correlations") {
                for (key, fig) in [
                    ("pearson", &ours.correlations.pearson),
                    ("spearman", &ours.correlations.spearman),
                    ("kendall_tau", &ours.correlations.kendall_tau),
                ] {
                    let Some(s) = stored.get(key) else { continue };
                    for (field, mine) in [("correlation", fig.correlation), ("p_value", fig.p_value)] {
                        let theirs = s.get(field).map(|v| v.as_f64());
                        let Some(theirs) = theirs else { continue };
                        let same = match (theirs, mine) {
                            (None, None) => true,
                            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300),
                            _ => false,
                        };
                        if !same {
                            diffs.push(Difference {
                                what: format!("{rname} / {mname} / {key} / {field}"),
                                stored: s[field].clone(),
                                recomputed: mine.map(Value::from).unwrap_or(Value::Null),
                            });
                        }
                    }
                    if let Some(n) = s.get("num_points").and_then(|v| v.as_u64())
                        && n as usize != fig.num_points
                    {
                        diffs.push(Difference {
                            what: format!("{rname} / {mname} / {key} / num_points"),
                            stored: Value::from(n),
                            recomputed: Value::from(fig.num_points),
                        });
                    }
                }
            }
            est.methods.insert(mname.clone(), ours);
        }
        estimations.insert(rname.clone(), est);
    }
    let experiment = serde_json::json!({
        "qval_version": env!("CARGO_PKG_VERSION"),
        "source": path.display().to_string(),
        "recomputed_from": "published summary",
        "config": cfg,
        "stored_experiment": root.get("experiment").or_else(|| root.get("experiment_info")).cloned().unwrap_or(Value::Null),
    });
    Ok((
        Summary {
            experiment,
            estimations,
        },
        diffs,
    ))
}

/// The reference values and predictions of one method in a summary, as numbers (NaN for
/// null), to recompute any figure.
pub fn values_of_method(summary: &Summary, reference: &str, method: &str) -> Option<(Vec<f64>, Vec<f64>)> {
    let e = summary.estimations.get(reference)?;
    let m = e.methods.get(method)?;
    Some((
        e.values.iter().map(|v| unopt(*v)).collect(),
        m.values.iter().map(|v| unopt(*v)).collect(),
    ))
}
