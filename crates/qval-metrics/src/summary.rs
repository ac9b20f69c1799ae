//! `summary.json` in the published testbed's layout, with qval's additions in `qval` keys.
//!
//! ```text
//! {
//!   "experiment_info": { dataset_source, predictions_dir, env_name, signal_type,
//!       num_evaluation_points, num_trajectories, gt_methods, eval_methods,
//!       comparisons: [{gt, eval}], gt_vs_gt_comparisons: [{lhs, rhs}], correlation_methods,
//!       exclude_zero_points, min_usable_correlation_points, timestamp },
//!   "dataset_config": {...}, "dataset_metadata": {...},
//!   "estimations": {
//!     "<label set>": {                                  // point granularity
//!       "assumption": "q_value", "granularity": "point", "ground_truth_values": [...],
//!       "methods": {
//!         "<method>": { "correlations": { "pearson" | "spearman" | "kendall_tau" |
//!                         "sign_agreement": { correlation, p_value, num_points } },
//!                       "predicted_values": [...], "num_dropped_zero": 0,
//!                       "qval": { signal, missing, failed, intervals, ... } },
//!         "<sample group>": { "num_samples": 16, "aggregate_correlations": { "spearman":
//!                       { mean, std, min, max, median, num_samples, num_nan } },
//!                       "per_sample": [ <method entries, by sample index> ] } },
//!       "qval": { signal, point_ids, aborted, paired, tiers } },
//!     "<ranking label set>": {                          // ranking granularity
//!       "assumption": "q_value", "granularity": "ranking", "candidate_counts": [...],
//!       "methods": { "<method>": { "correlations": { "ranking_spearman": { mean, std,
//!                       num_valid, num_skipped, num_points } },
//!                     "per_point_correlations": [...] } } } },
//!   "gt_vs_gt_estimations": { "<lhs>": { ... "methods": { "<rhs>": {...} } } },
//!   "qval": { version, config, sources }
//! }
//! ```
//! NaN is written as `null`, files are indented by 4 spaces as the published testbed writes
//! them, so its table and plot scripts read qval's summaries; `qval` keys hold what the
//! published layout has no place for (intervals, pairwise accuracy, point ids, reasons for
//! NaN, paired comparisons, label noise).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

use crate::MetricsError;
use crate::labelnoise::LabelNoise;
use crate::paired::PairedComparison;
use qval_core::Signal;

/// The published `assumption` of a signal.
pub fn assumption_of(signal: Signal) -> &'static str {
    match signal {
        Signal::Q => "q_value",
        Signal::V => "state_value",
        Signal::Advantage => "advantage",
        Signal::Potential => "potential",
        Signal::ShapedReward => "shaped_reward",
    }
}

/// `experiment_info`, the published keys in the published order; unknown keys are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExperimentInfo {
    /// Where the dataset (run folder) was read from.
    pub dataset_source: String,
    /// The predictions folder, if given.
    pub predictions_dir: Option<String>,
    /// The environment.
    pub env_name: String,
    /// The run's signal (`q_value`, `state_value`).
    pub signal_type: String,
    /// Points in the dataset.
    pub num_evaluation_points: usize,
    /// Trajectories in the dataset.
    pub num_trajectories: usize,
    /// Label sets.
    pub gt_methods: Vec<String>,
    /// Methods.
    pub eval_methods: Vec<String>,
    /// Point-granularity pairs `{gt, eval}`.
    pub comparisons: Vec<Comparison>,
    /// Label set pairs `{lhs, rhs}`.
    pub gt_vs_gt_comparisons: Vec<GtComparison>,
    /// The correlations computed.
    pub correlation_methods: Vec<String>,
    /// Whether pairs with a zero on either side were dropped.
    pub exclude_zero_points: bool,
    /// Fewer usable pairs give a null correlation.
    pub min_usable_correlation_points: usize,
    /// When (the run's start for qval runs, so reruns give the same bytes).
    pub timestamp: String,
    /// Keys this version does not know, kept as read.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// A label set and a method compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    /// The label set.
    pub gt: String,
    /// The method.
    pub eval: String,
}

/// Two label sets compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GtComparison {
    /// The reference label set.
    pub lhs: String,
    /// The label set compared with it.
    pub rhs: String,
}

/// One correlation: `{correlation, p_value, num_points}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The coefficient (null when NaN).
    pub correlation: Option<f64>,
    /// Its two-sided p-value.
    pub p_value: Option<f64>,
    /// Usable pairs.
    pub num_points: usize,
}

/// The per-state ranking figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankingFigure {
    /// Mean of the per-state rho (null when none is usable or one is NaN under the published
    /// rule).
    pub mean: Option<f64>,
    /// Sample standard deviation (n - 1; 0.0 for one state).
    pub std: Option<f64>,
    /// States counted.
    pub num_valid: usize,
    /// States skipped.
    pub num_skipped: usize,
    /// States compared.
    pub num_points: usize,
}

/// A method's correlations, in the published order; absent ones are not written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Correlations {
    /// Pearson's r.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pearson: Option<Figure>,
    /// Spearman's rho.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spearman: Option<Figure>,
    /// Kendall's tau-b.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kendall_tau: Option<Figure>,
    /// Sign agreement (share of equal signs, binomial test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_agreement: Option<Figure>,
    /// Per-state ranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking_spearman: Option<RankingFigure>,
}

impl Correlations {
    /// The point figure by its published name.
    pub fn get(&self, name: &str) -> Option<&Figure> {
        match name {
            "pearson" => self.pearson.as_ref(),
            "spearman" => self.spearman.as_ref(),
            "kendall_tau" => self.kendall_tau.as_ref(),
            "sign_agreement" => self.sign_agreement.as_ref(),
            _ => None,
        }
    }

    /// The point figures present, by published name.
    pub fn figures(&self) -> Vec<(&'static str, &Figure)> {
        [
            ("pearson", &self.pearson),
            ("spearman", &self.spearman),
            ("kendall_tau", &self.kendall_tau),
            ("sign_agreement", &self.sign_agreement),
        ]
        .into_iter()
        .filter_map(|(k, f)| f.as_ref().map(|f| (k, f)))
        .collect()
    }
}

/// Pairwise accuracy: the share of label-ordered pairs the method orders the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairwiseFigure {
    /// Concordant / pairs with different reference values.
    pub value: Option<f64>,
    /// Concordant pairs.
    pub concordant: u64,
    /// Pairs with different reference values.
    pub pairs: u64,
}

/// A NaN prediction and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NanReason {
    /// The point.
    pub point_id: String,
    /// The method's reason.
    pub reason: String,
}

/// qval's additions to a method entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MethodExtras {
    /// The member's name, for a sample group's `per_sample` entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The signal the method estimates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// Labelled points without a prediction.
    pub missing: usize,
    /// The method entry's `points` limit, when it was asked to score only the first points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_limit: Option<usize>,
    /// Predictions that are NaN.
    pub failed: usize,
    /// Bootstrap percentile intervals by figure name (`spearman`, `ranking_spearman`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub intervals: BTreeMap<String, [Option<f64>; 2]>,
    /// Why a figure is null, by figure name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, String>,
    /// Pairwise accuracy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairwise_accuracy: Option<PairwiseFigure>,
    /// NaN predictions with their reasons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nan_reasons: Vec<NanReason>,
    /// For ranking entries (whose published layout keeps no values): the predictions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_values: Option<Vec<Option<f64>>>,
    /// For ranking entries: why states were skipped, by reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, usize>,
    /// The two-level bootstrap of Spearman's rho (label noise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_noise: Option<LabelNoise>,
}

/// One method against one label set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodEstimation {
    /// The figures.
    pub correlations: Correlations,
    /// The predictions as compared (null = NaN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_values: Option<Vec<Option<f64>>>,
    /// Trajectory granularity (shaped rewards): the predictions summed per trajectory, as
    /// compared (null = NaN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_trajectory_sums: Option<Vec<Option<f64>>>,
    /// Pairs dropped by the zero filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_dropped_zero: Option<usize>,
    /// Ranking: per state, its rho (null when skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_point_correlations: Option<Vec<Option<f64>>>,
    /// qval's additions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qval: Option<MethodExtras>,
}

impl MethodEstimation {
    /// The predictions as numbers (NaN for null), from the published key (per trajectory
    /// for trajectory entries) or, for ranking entries, qval's.
    pub fn values(&self) -> Vec<f64> {
        self.predicted_values
            .as_ref()
            .or(self.predicted_trajectory_sums.as_ref())
            .or_else(|| self.qval.as_ref().and_then(|q| q.predicted_values.as_ref()))
            .map(|v| unopt_all(v))
            .unwrap_or_default()
    }

    /// The interval of a figure, if computed.
    pub fn interval(&self, figure: &str) -> Option<[Option<f64>; 2]> {
        self.qval.as_ref().and_then(|q| q.intervals.get(figure).copied())
    }
}

/// A statistic of a sample group's per-sample coefficients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Mean.
    pub mean: Option<f64>,
    /// Sample standard deviation (n - 1; 0.0 for one sample).
    pub std: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
    /// Median.
    pub median: Option<f64>,
    /// Samples with a defined coefficient.
    pub num_samples: usize,
    /// Samples whose coefficient is null.
    pub num_nan: usize,
}

/// A sampled method (codegen's N samples): the aggregate and every sample's entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleGroup {
    /// Samples in the group.
    pub num_samples: usize,
    /// Per correlation, the aggregate of the samples' coefficients.
    pub aggregate_correlations: IndexMap<String, Aggregate>,
    /// The samples' entries, by sample index.
    pub per_sample: Vec<MethodEstimation>,
}

/// A `methods` entry: one method, or a sample group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
// Entries are few (one per method); boxing would only complicate reading them.
#[allow(clippy::large_enum_variant)]
pub enum MethodEntry {
    /// A sample group (tried first: it has required keys a method entry lacks).
    Group(SampleGroup),
    /// One method.
    Method(MethodEstimation),
}

/// Whether a label set is compared point by point or within each state's candidates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One pair per point.
    #[default]
    Point,
    /// Candidates ranked within their state.
    Ranking,
    /// Per-trajectory sums (published, for shaped rewards; read only).
    Trajectory,
}

/// A paired comparison between two methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedEntry {
    /// Method A.
    pub a: String,
    /// Method B.
    pub b: String,
    /// The comparison of A minus B.
    #[serde(flatten)]
    pub comparison: PairedComparison,
}

/// qval's additions to an estimation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EstimationExtras {
    /// The labels' signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// The points, in the order of the values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub point_ids: Vec<String>,
    /// Aborted (NaN) labels.
    pub aborted: usize,
    /// For ranking label sets (whose published layout keeps no values): the labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ground_truth_values: Option<Vec<Option<f64>>>,
    /// Paired comparisons of methods on the same points.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paired: Vec<PairedEntry>,
    /// Methods that cannot be told apart, best tier first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Vec<String>>,
    /// Methods evaluated against labels of another signal (relabelling).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relabelled: Vec<String>,
}

/// One label set and every method compared with it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimation {
    /// `q_value`, `state_value`, ...
    pub assumption: String,
    /// Point, ranking or trajectory.
    pub granularity: Granularity,
    /// Point granularity: the labels (null = NaN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_truth_values: Option<Vec<Option<f64>>>,
    /// Ranking: candidates per state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_counts: Option<Vec<usize>>,
    /// The methods and sample groups, by name.
    pub methods: IndexMap<String, MethodEntry>,
    /// qval's additions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qval: Option<EstimationExtras>,
}

impl Estimation {
    /// The labels as numbers (NaN for null).
    pub fn labels(&self) -> Vec<f64> {
        self.ground_truth_values
            .as_ref()
            .or_else(|| self.qval.as_ref().and_then(|q| q.ground_truth_values.as_ref()))
            .map(|v| unopt_all(v))
            .unwrap_or_default()
    }

    /// Every method entry, sample group members included (named `<group>[<i>]` unless
    /// qval recorded their names), in file order.
    pub fn flat_methods(&self) -> Vec<(String, &MethodEstimation)> {
        let mut out = Vec::new();
        for (name, e) in &self.methods {
            match e {
                MethodEntry::Method(m) => out.push((name.clone(), m)),
                MethodEntry::Group(g) => {
                    for (i, m) in g.per_sample.iter().enumerate() {
                        let member = m.qval.as_ref().and_then(|q| q.name.clone());
                        out.push((member.unwrap_or_else(|| format!("{name}[{i}]")), m));
                    }
                }
            }
        }
        out
    }

    /// A method by name (sample group members included).
    pub fn method(&self, name: &str) -> Option<&MethodEstimation> {
        match self.methods.get(name) {
            Some(MethodEntry::Method(m)) => Some(m),
            _ => self.flat_methods().into_iter().find(|(n, _)| n == name).map(|(_, m)| m),
        }
    }
}

/// qval's additions at the top level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SummaryExtras {
    /// The qval version that wrote the file.
    pub version: String,
    /// How the evaluation was configured.
    pub config: Value,
    /// Anything else (the run's name, seed and environment; the input file).
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// Everything an evaluation produced, in the published layout: enough to recompute any
/// figure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// What was evaluated and how.
    #[serde(default)]
    pub experiment_info: ExperimentInfo,
    /// The dataset's collection settings.
    #[serde(default)]
    pub dataset_config: Value,
    /// The dataset's metadata.
    #[serde(default)]
    pub dataset_metadata: Value,
    /// Per label set.
    pub estimations: IndexMap<String, Estimation>,
    /// Label sets compared with each other.
    #[serde(default)]
    pub gt_vs_gt_estimations: IndexMap<String, Estimation>,
    /// qval's additions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qval: Option<SummaryExtras>,
}

pub(crate) fn opt(v: f64) -> Option<f64> {
    if v.is_finite() { Some(v) } else { None }
}

pub(crate) fn opt_all(v: &[f64]) -> Vec<Option<f64>> {
    v.iter().map(|x| opt(*x)).collect()
}

pub(crate) fn unopt_all(v: &[Option<f64>]) -> Vec<f64> {
    v.iter().map(|x| x.unwrap_or(f64::NAN)).collect()
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "NaN".into(),
    }
}

/// A p-value as the tables print it: `<1e-300` for an underflow to 0, `1.0e-5` below 1e-3,
/// else three decimals, `NaN` for none.
pub(crate) fn fmt_p(v: Option<f64>) -> String {
    match v {
        // Below the smallest double: scipy prints 0.0 too, but it is an underflow, not a zero.
        Some(0.0) => "<1e-300".into(),
        Some(x) if x < 1e-3 => format!("{x:.1e}"),
        Some(x) => format!("{x:.3}"),
        None => "NaN".into(),
    }
}

fn fmt_ci(ci: Option<[Option<f64>; 2]>) -> String {
    match ci {
        Some([a, b]) => format!(" [{}, {}]", fmt(a, 3), fmt(b, 3)),
        None => String::new(),
    }
}

/// Serialises as the published testbed writes summaries: 4-space indent, NaN as null.
pub fn to_published_json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    to_json_indented(value, b"    ")
}

/// Pretty JSON with the given indent (the published testbed indents summaries by 4 spaces
/// and prediction files by 2).
pub(crate) fn to_json_indented<T: Serialize>(value: &T, indent: &[u8]) -> Result<String, serde_json::Error> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    value.serialize(&mut ser)?;
    Ok(String::from_utf8(buf).expect("serde_json writes UTF-8"))
}

// `Summary::write` (the JSON, the Markdown and the plots) is in output.rs, so that this file
// does not import plots.rs, which reads a Summary.
impl Summary {
    /// Reads a summary (qval's or the published testbed's).
    ///
    /// # Errors
    /// Unreadable, not JSON, or not in the layout (the message names line and column).
    pub fn read(path: &Path) -> Result<Self, MetricsError> {
        let text = std::fs::read_to_string(path).map_err(|e| MetricsError::Io {
            op: "reading",
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let inner = e.inner();
            MetricsError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "line {} column {}: at `{}`: {inner}",
                    inner.line(),
                    inner.column(),
                    e.path()
                ),
            }
        })
    }

    /// Records, for each method named in `limits`, the `points` limit it was run with (shown
    /// beside "scored N of M points").
    pub(crate) fn set_points_limits(&mut self, limits: &BTreeMap<String, usize>) {
        for est in self.estimations.values_mut() {
            for (name, entry) in est.methods.iter_mut() {
                if let (MethodEntry::Method(e), Some(n)) = (entry, limits.get(name)) {
                    e.qval.get_or_insert_with(Default::default).points_limit = Some(*n);
                }
            }
        }
    }

    /// The Markdown report: per label set, a table of method, n, rho [interval], p, tau, r,
    /// pairwise accuracy; sample groups, paired comparisons and label noise below.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let compared = self.estimations.len();
        for (i, (name, est)) in self.estimations.iter().chain(&self.gt_vs_gt_estimations).enumerate() {
            if i == compared {
                out.push_str(
                    "## Label sets compared with each other\n\nEach table below takes one label set as the \
                     reference and the others in the place of methods: how far the references agree.\n\n",
                );
            }
            out.push_str(&heading(name, est));
            if est.granularity == Granularity::Ranking {
                ranking_section(&mut out, est);
            } else {
                point_section(&mut out, est);
            }
        }
        out
    }
}

/// A label set's heading: its name, label count, assumption, granularity and aborted labels.
fn heading(name: &str, est: &Estimation) -> String {
    let aborted = est.qval.as_ref().map_or(0, |q| q.aborted);
    format!(
        "### `{name}` ({} labels, {}, {} granularity{})\n\n",
        est.labels().len(),
        est.assumption,
        match est.granularity {
            Granularity::Point => "point",
            Granularity::Ranking => "ranking",
            Granularity::Trajectory => "trajectory",
        },
        if aborted > 0 {
            format!(", {aborted} aborted")
        } else {
            String::new()
        }
    )
}

/// A ranking label set's table (states counted, per-state rho, std, skipped) and the notes
/// on methods whose mean a tied state voided.
fn ranking_section(out: &mut String, est: &Estimation) {
    let mut notes = Vec::new();
    out.push_str("| method | states counted | per-state rho mean [interval] | std | skipped |\n");
    out.push_str("|---|---:|---|---:|---:|\n");
    for (m, e) in est.flat_methods() {
        if let Some(r) = &e.correlations.ranking_spearman {
            out.push_str(&format!(
                "| {m} | {} | {}{} | {} | {} |\n",
                r.num_valid,
                fmt(r.mean, 3),
                fmt_ci(e.interval("ranking_spearman")),
                fmt(r.std, 3),
                r.num_skipped
            ));
            if r.mean.is_none() && r.num_valid > 0 {
                notes.push(format!(
                    "- `{m}`: a state whose predictions are all equal has no rho; under the published \
                     rule it voids the mean (set `ranking_ties = \"zero\"` to score such states 0)"
                ));
            }
        }
    }
    if est.methods.is_empty() {
        out.push_str("| (no ranking method) | | | | |\n");
    }
    out.push('\n');
    if !notes.is_empty() {
        out.push_str(&notes.join("\n"));
        out.push_str("\n\n");
    }
}

/// A point label set's table (one row per method, sample group members included) and the
/// notes below it: per method, then sign agreement, sample groups, tiers and paired
/// comparisons.
fn point_section(out: &mut String, est: &Estimation) {
    let methods = est.flat_methods();
    out.push_str("| method | n | rho [interval] | p | tau | r | sign agr. | pairwise acc. |\n");
    out.push_str("|---|---:|---|---:|---:|---:|---:|---:|\n");
    for (m, e) in &methods {
        out.push_str(&point_row(m, e));
    }
    if est.methods.is_empty() {
        out.push_str("| (no method estimates this signal) | | | | | | | |\n");
    }
    let total = est.labels().len();
    let mut notes: Vec<String> = methods.iter().flat_map(|(m, e)| method_notes(m, e, total)).collect();
    let sign_misleads: Vec<String> = methods
        .iter()
        .filter(|(_, e)| sign_misleads(&e.correlations))
        .map(|(m, _)| format!("`{m}`"))
        .collect();
    if !sign_misleads.is_empty() {
        notes.push(format!(
            "- sign agr. (the published rule) counts pairs whose prediction and label share a sign, not \
             ranks: for {} it disagrees with rho, as it does for scores on another scale (negative \
             distances, say)",
            sign_misleads.join(", ")
        ));
    }
    notes.extend(group_notes(est));
    let extras = est.qval.clone().unwrap_or_default();
    notes.extend(tier_note(&extras.tiers));
    notes.extend(paired_notes(&extras.paired));
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out.push('\n');
}

/// A method's row: n, rho [interval], p, tau, r, sign agreement, pairwise accuracy.
fn point_row(m: &str, e: &MethodEstimation) -> String {
    let c = &e.correlations;
    let coef = |f: &Option<Figure>| fmt(f.as_ref().and_then(|f| f.correlation), 3);
    let pairwise = e.qval.as_ref().and_then(|q| q.pairwise_accuracy.as_ref());
    format!(
        "| {m} | {} | {}{} | {} | {} | {} | {} | {} |\n",
        c.spearman.as_ref().map_or(0, |f| f.num_points),
        coef(&c.spearman),
        fmt_ci(e.interval("spearman")),
        fmt_p(c.spearman.as_ref().and_then(|f| f.p_value)),
        coef(&c.kendall_tau),
        coef(&c.pearson),
        coef(&c.sign_agreement),
        fmt(pairwise.and_then(|p| p.value), 3),
    )
}

/// The notes on one method out of `total` labels: why rho is null, failed and unscored
/// points, pairs dropped by the zero filter, and the interval with label noise.
fn method_notes(m: &str, e: &MethodEstimation, total: usize) -> Vec<String> {
    let q = e.qval.clone().unwrap_or_default();
    let mut notes = Vec::new();
    if let Some(n) = q.notes.get("spearman") {
        notes.push(format!("- `{m}`: {n}"));
    }
    if let Some(n) = failure_note(&q, total) {
        notes.push(format!("- `{m}`: {n}"));
    }
    if let Some(d) = e.num_dropped_zero.filter(|d| *d > 0) {
        notes.push(format!("- `{m}`: {d} pairs with a zero dropped"));
    }
    if let Some(ln) = &q.label_noise
        && let ([Some(a), Some(b)], [Some(c), Some(d)]) = (ln.points_only, ln.two_level)
    {
        notes.push(format!(
            "- `{m}`: with label noise (two-level bootstrap over {} rollouts) [{c:.3}, {d:.3}] vs points \
             only [{a:.3}, {b:.3}]{}",
            ln.rollouts,
            ln.rollouts_needed
                .map(|k| format!("; label noise negligible from about {k} rollouts"))
                .unwrap_or_default()
        ));
    }
    notes
}

/// Whether sign agreement and rho disagree: agreement on the other side of 0.5 from a rho of
/// at least 0.3 in size.
fn sign_misleads(c: &Correlations) -> bool {
    c.sign_agreement.as_ref().and_then(|f| f.correlation).is_some_and(|a| {
        c.spearman
            .as_ref()
            .and_then(|f| f.correlation)
            .is_some_and(|rho| (a - 0.5) * rho < 0.0 && rho.abs() >= 0.3)
    })
}

/// Per sample group: rho's mean +- std [min, max] over its samples, and the NaN count.
fn group_notes(est: &Estimation) -> Vec<String> {
    let mut notes = Vec::new();
    for (g, e) in &est.methods {
        if let MethodEntry::Group(sg) = e
            && let Some(f) = sg.aggregate_correlations.get("spearman")
        {
            notes.push(format!(
                "- `{g}` ({} samples): rho {} +- {} [{}, {}]{}",
                sg.num_samples,
                fmt(f.mean, 3),
                fmt(f.std, 3),
                fmt(f.min, 3),
                fmt(f.max, 3),
                if f.num_nan > 0 {
                    format!(", {} NaN", f.num_nan)
                } else {
                    String::new()
                }
            ));
        }
    }
    notes
}

/// The tiers of methods that cannot be told apart, when some tier holds more than one.
fn tier_note(tiers: &[Vec<String>]) -> Option<String> {
    if tiers.is_empty() || !tiers.iter().any(|t| t.len() > 1) {
        return None;
    }
    let tiers: Vec<String> = tiers.iter().map(|t| t.join(", ")).collect();
    Some(format!(
        "- cannot be told apart (paired bootstrap interval of the difference includes 0): {}",
        tiers.iter().map(|t| format!("{{{t}}}")).collect::<Vec<_>>().join(" > ")
    ))
}

/// The paired comparisons with a defined difference and interval: difference [interval], p, n.
fn paired_notes(paired: &[PairedEntry]) -> Vec<String> {
    let mut notes = Vec::new();
    for p in paired {
        let c = &p.comparison;
        if let (Some(d), [Some(lo), Some(hi)]) = (c.difference, c.interval) {
            notes.push(format!(
                "- `{}` - `{}`: {d:+.3} [{lo:+.3}, {hi:+.3}], p {} (n {})",
                p.a,
                p.b,
                fmt_p(c.p_value),
                c.n
            ));
        }
    }
    notes
}

/// The note under a table for a method's failed and unscored points: "scored 100 of 242
/// points" when it scored fewer points than were labelled, and "3 NaN: reason (first of 3)"
/// when some of its scores failed.
fn failure_note(q: &MethodExtras, total: usize) -> Option<String> {
    let mut parts = Vec::new();
    if q.missing > 0 && q.missing <= total {
        parts.push(format!(
            "scored {} of {total} points{}",
            total - q.missing,
            q.points_limit.map(|n| format!(" (points = {n})")).unwrap_or_default()
        ));
    }
    if q.failed > 0 {
        match q.nan_reasons.first() {
            Some(r) => parts.push(format!(
                "{} NaN: {} (first of {})",
                q.failed,
                one_line(&r.reason, 160),
                q.failed
            )),
            None => parts.push(format!("{} NaN", q.failed)),
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `text` on one line, cut to `max` characters with an ellipsis.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}...", flat.chars().take(max).collect::<String>())
    }
}
