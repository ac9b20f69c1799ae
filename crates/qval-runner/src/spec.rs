//! Experiment files: what to collect, sample, label, predict and evaluate, in TOML.
//!
//! ```toml
//! name = "quickstart"
//! seed = 42
//!
//! [environment]
//! type = "frozenlake"          # or "terminalbench", or one a user registered
//! maps = 8                     # type-specific parameters follow
//!
//! [dataset]
//! trajectories = 50
//! collector = { type = "epsilon-greedy", epsilon = 0.1 }
//! sampling = { per_trajectory = 5, strategy = "random" }
//!
//! [[labels]]                   # one or more label sets
//! signal = "q"
//! rollouts = 1
//!
//! [[methods]]                  # the methods under test
//! type = "random"
//!
//! [[methods]]
//! type = "direct"
//! backend = ["vllm", "openrouter"]   # lists expand: one method per backend (and signal, modality)
//! signal = ["q", "v"]
//! points = 100                       # the first 100 points, as published
//!
//! [backends.vllm]              # or backends_file = "backends.toml"
//! base_url = "http://localhost:8000/v1"
//! model = "Qwen/Qwen3-8B"
//!
//! [evaluate]
//! min_points = 50
//! bootstrap = 10000
//! ```
//!
//! [`load`] reads a file and checks everything that can be checked before any work starts:
//! unknown keys (with a did-you-mean), values out of range, unknown method or environment
//! types, backends that are not defined, files that do not exist. Errors name the file, line
//! and column.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use crate::method_settings::{Derived, MethodSettings};

use crate::error::{Result, RunnerError};
pub use crate::typed::Typed;
use qval_core::Signal;

/// A whole experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// A name, used in reports and as the default run folder `runs/<name>` (letters, digits,
    /// `-`, `_` and `.`).
    pub name: String,
    /// The root seed of collection, sampling, labels and seeded methods (default 42).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The environment.
    pub environment: Typed,
    /// Collection and sampling.
    #[serde(default)]
    pub dataset: DatasetSpec,
    /// Label sets (default: one MVMC Q set).
    #[serde(default = "default_labels")]
    pub labels: Vec<LabelSpec>,
    /// The methods under test.
    #[serde(default)]
    pub methods: Vec<MethodSpec>,
    /// Named LLM backends (the `backends.toml` entry format).
    #[serde(default)]
    pub backends: BTreeMap<String, toml::Table>,
    /// A file of named backends, relative to the experiment file.
    #[serde(default)]
    pub backends_file: Option<PathBuf>,
    /// Evaluation settings.
    #[serde(default)]
    pub evaluate: EvaluateSpec,
    /// Acting (stage 6): methods choosing an agent's actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting: Option<crate::acting_spec::ActingSpec>,
    /// The rollout store shared across runs, relative to the experiment file (default: the
    /// run folder's `rollouts/`; `--rollout-store DIR` overrides both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_store: Option<PathBuf>,
    /// pass@k of the reference policy (after the labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passk: Option<crate::passk_spec::PasskSpec>,
}

fn default_seed() -> u64 {
    42
}

fn default_labels() -> Vec<LabelSpec> {
    vec![LabelSpec::default()]
}

/// Collection and sampling (stages 1 and 2).
///
/// | key | default |
/// |---|---|
/// | `trajectories` | 50 |
/// | `collector` | the environment's default collector |
/// | `concurrency` | 16 |
/// | `sampling.per_trajectory` | 5 |
/// | `sampling.strategy` | `random` (`first`, `random`, `uniform`) |
/// | `sampling.discard_first`, `sampling.discard_last` | 1, 1 (when a trajectory is too short to discard that many, all its steps are eligible, as published) |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Trajectories to collect.
    #[serde(default = "default_trajectories")]
    pub trajectories: usize,
    /// The collecting policy (`None`: the environment's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<Typed>,
    /// Episodes run at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Point sampling.
    #[serde(default)]
    pub sampling: SamplingSpec,
    /// Ranking candidates (made when a ranking method is planned).
    #[serde(default)]
    pub candidates: CandidatesSpec,
}

/// How ranking candidates are made: the legal actions of a state where the action set is
/// closed (FrozenLake's four moves; where there are more than `k`, as published, the state's
/// own action and `k - 1` others drawn at random), else sampled as published (the state's own
/// action and up to `k - 1` alternatives from `sampler`, each asked up to 5 times for an
/// action not seen yet).
///
/// | key | default |
/// |---|---|
/// | `k` | 4 candidates per state (published); from 2 to 64 |
/// | `sampler` | none: the legal actions. `{ type = "llm", backend = "NAME" }` asks a model, told the actions already taken (published); any policy type of the environment (`{ type = "noisy", epsilon = 1.0 }`) samples offline |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidatesSpec {
    /// Candidates per state, the state's own action included.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Where alternatives come from (none: the legal actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<Typed>,
}

fn default_k() -> usize {
    4
}

impl Default for CandidatesSpec {
    fn default() -> Self {
        CandidatesSpec {
            k: default_k(),
            sampler: None,
        }
    }
}

fn default_trajectories() -> usize {
    50
}
fn default_concurrency() -> usize {
    16
}

impl Default for DatasetSpec {
    fn default() -> Self {
        DatasetSpec {
            trajectories: default_trajectories(),
            collector: None,
            concurrency: default_concurrency(),
            sampling: SamplingSpec::default(),
            candidates: CandidatesSpec::default(),
        }
    }
}

/// Point sampling (published defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSpec {
    /// Points per trajectory, at most.
    #[serde(default = "five")]
    pub per_trajectory: usize,
    /// `first`, `random` or `uniform`.
    #[serde(default = "random_strategy")]
    pub strategy: qval_core::Strategy,
    /// Turns discarded at the start.
    #[serde(default = "one")]
    pub discard_first: usize,
    /// Turns discarded at the end.
    #[serde(default = "one")]
    pub discard_last: usize,
}

fn five() -> usize {
    5
}
fn one() -> usize {
    1
}
fn random_strategy() -> qval_core::Strategy {
    qval_core::Strategy::Random
}

impl Default for SamplingSpec {
    fn default() -> Self {
        SamplingSpec {
            per_trajectory: 5,
            strategy: random_strategy(),
            discard_first: 1,
            discard_last: 1,
        }
    }
}

/// One label set (stage 3).
///
/// | key | default |
/// |---|---|
/// | `name` | `mvmc-q` (`<method>-<signal>[-mean]`) |
/// | `method` | `mvmc` (`mvmc`; `mcts`; or `exact` where the environment computes exact values) |
/// | `signal` | `q` (`q`, `v`, `advantage`) |
/// | `rollouts` | 16 (MVMC) |
/// | `mcts_iterations` | 100 (MCTS: simulation returns per value) |
/// | `mcts_expansion_width` | 5 (MCTS: actions sampled per expansion) |
/// | `mcts_exploration_constant` | 1.41 (MCTS: UCB1's c) |
/// | `aggregation` | `max` (`max`, `mean`) |
/// | `gamma` | the environment's |
/// | `step_penalty` | 0 |
/// | `reference` | the environment's reference policy |
/// | `max_aborted_share` | 0.3 |
/// | `concurrency` | 64 |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// The set's name (file `labels/<name>.jsonl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `mvmc` (Max-Value Monte Carlo rollouts of the reference policy), `mcts` (a tree search
    /// over the reference policy, [`qval_core::mcts`]) or `exact` (the reference policy's
    /// expected return from the environment's transition model, where it has one: FrozenLake).
    #[serde(default = "mvmc")]
    pub method: LabelMethod,
    /// The value estimated.
    #[serde(default = "q")]
    pub signal: Signal,
    /// Rollouts per point (k).
    #[serde(default = "sixteen")]
    pub rollouts: usize,
    /// MCTS: simulation returns per value (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcts_iterations: Option<usize>,
    /// MCTS: actions sampled per expansion (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcts_expansion_width: Option<usize>,
    /// MCTS: UCB1's exploration constant (default 1.41).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcts_exploration_constant: Option<f64>,
    /// `max` (MVMC) or `mean`.
    #[serde(default)]
    pub aggregation: qval_core::Aggregation,
    /// The discount factor (`None`: the environment's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// Subtracted from every reward.
    #[serde(default)]
    pub step_penalty: f64,
    /// The reference policy (`None`: the environment's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Typed>,
    /// The largest share of aborted points.
    #[serde(default = "max_aborted")]
    pub max_aborted_share: f64,
    /// Points labelled at once.
    #[serde(default = "sixty_four")]
    pub concurrency: usize,
}

fn q() -> Signal {
    Signal::Q
}
fn mvmc() -> LabelMethod {
    LabelMethod::Mvmc
}

/// How a label set is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelMethod {
    /// Max-Value Monte Carlo: rollouts of the reference policy.
    Mvmc,
    /// Monte Carlo tree search over the reference policy.
    Mcts,
    /// The reference policy's expected return from the environment's transition model.
    Exact,
}

impl LabelMethod {
    /// The name experiment files use.
    pub fn key(self) -> &'static str {
        match self {
            LabelMethod::Mvmc => "mvmc",
            LabelMethod::Mcts => "mcts",
            LabelMethod::Exact => "exact",
        }
    }
}
fn sixteen() -> usize {
    16
}
fn sixty_four() -> usize {
    64
}
fn max_aborted() -> f64 {
    0.3
}

impl Default for LabelSpec {
    fn default() -> Self {
        LabelSpec {
            name: None,
            method: mvmc(),
            signal: Signal::Q,
            rollouts: 16,
            mcts_iterations: None,
            mcts_expansion_width: None,
            mcts_exploration_constant: None,
            aggregation: Default::default(),
            gamma: None,
            step_penalty: 0.0,
            reference: None,
            max_aborted_share: 0.3,
            concurrency: 64,
        }
    }
}

impl LabelSpec {
    /// The set's name: given, or `<method>-<signal>` (`<method>-<signal>-mean` for the mean
    /// of rollouts or searches).
    pub fn resolved_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            if self.signal == Signal::ShapedReward {
                return "trajectory-returns".into();
            }
            let (m, s) = (self.method.key(), self.signal.key());
            match (self.method, self.aggregation) {
                (LabelMethod::Exact, _) | (_, qval_core::Aggregation::Max) => format!("{m}-{s}"),
                (_, qval_core::Aggregation::Mean) => format!("{m}-{s}-mean"),
            }
        })
    }
}

/// One value or a list of them (lists expand into one method each).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One value.
    One(T),
    /// Several values.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// The values, in order.
    pub fn values(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// One entry of `[[methods]]`. `signal`, `backend` and `modality` may be lists: the entry
/// expands into one method per combination, as the published catalog's matrix does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodSpec {
    /// The method type (see `qval methods`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The name (default: the type); the signal, and the backend or modality when a list
    /// expands, are appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The signal(s) estimated (default `q`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<OneOrMany<Signal>>,
    /// The LLM backend(s), by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<OneOrMany<String>>,
    /// `text` or `image` (default `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<OneOrMany<String>>,
    /// The published prompt preset(s) of an LLM method: `v0`, `v1` or `v2` (default `v2`, as
    /// published). A list expands into one method per preset, named with `-v0`, `-v1`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_preset: Option<OneOrMany<String>>,
    /// Whether an LLM method's prompts state the discount factor (published
    /// `disclose_discount_factor`; default false: "discounted" and the efficiency guidance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclose_discount_factor: Option<bool>,
    /// Whether Q prompts (and code) see the resulting state (published `include_next_state`;
    /// default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_next_state: Option<bool>,
    /// Earlier turns a prompt shows (published `max_history_turns`; default 40; 0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_history_turns: Option<usize>,
    /// Whose future play the values assume: `optimal` (default) or `self` (published
    /// `policy_assumption`). A list expands into one method per assumption, named `-optimal`,
    /// `-self`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_assumption: Option<OneOrMany<String>>,
    /// Whether prompts state the labels' step penalty (published `disclose_step_penalty`;
    /// default false: the efficiency hint where it is positive). `[true, false]` expands into
    /// `-penalty-disclosed` / `-penalty-hidden` methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclose_step_penalty: Option<OneOrMany<bool>>,
    /// A JSON file of example trajectories in the published layout, shown in the prompts'
    /// `## Example Trajectories` (published `example_trajectories_file`), relative to the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example_trajectories: Option<PathBuf>,
    /// Whether prompts show the acting agent's reasoning for the current action (published
    /// `include_current_thoughts`; default false). A list expands into `-thoughts` /
    /// `-no-thoughts` methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_current_thoughts: Option<OneOrMany<bool>>,
    /// Whether prompts show the agent's reasoning in the history (published
    /// `include_history_thoughts`; default false). A list expands into `-history-thoughts` /
    /// `-no-history-thoughts` methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_history_thoughts: Option<OneOrMany<bool>>,
    /// Score only the first N points (published: 100 for LLM methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<usize>,
    /// The type's own parameters.
    #[serde(flatten)]
    pub params: toml::Table,
}

impl MethodSpec {
    /// What the entry sets for every method it expands into.
    pub fn settings(&self) -> MethodSettings {
        MethodSettings {
            disclose_discount_factor: self.disclose_discount_factor,
            include_next_state: self.include_next_state,
            max_history_turns: self.max_history_turns,
            points: self.points,
            policy_assumption: None,
            disclose_step_penalty: None,
            example_trajectories: self.example_trajectories.clone(),
            examples: Derived::default(),
            step_penalty: Derived::default(),
            include_current_thoughts: None,
            include_history_thoughts: None,
        }
    }
}

/// Evaluation settings (stage 5).
///
/// | key | default |
/// |---|---|
/// | `min_points` | 50 (the published minimum of usable pairs) |
/// | `bootstrap` | 10000 resamples (0: no intervals) |
/// | `confidence` | 0.95 |
/// | `seed` | 0 |
/// | `correlation_methods` | pearson, spearman, kendall_tau, sign_agreement (published) |
/// | `exclude_zero_points` | false (published) |
/// | `ranking_ties` | "published" (a state with all predictions equal voids the mean) or "zero" |
/// | `relabel` | false (true: Q methods against V labels and the reverse) |
/// | `paired` | true (paired comparisons and tiers) |
/// | `label_noise` | true (two-level bootstrap where labels keep their returns) |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateSpec {
    /// Fewer usable pairs give NaN with the reason.
    #[serde(default = "fifty")]
    pub min_points: usize,
    /// Bootstrap resamples for the intervals (0: none).
    #[serde(default = "ten_thousand")]
    pub bootstrap: usize,
    /// The intervals' level.
    #[serde(default = "ninety_five")]
    pub confidence: f64,
    /// The bootstrap's seed.
    #[serde(default)]
    pub seed: u64,
    /// The correlations (published names).
    #[serde(default = "correlation_methods")]
    pub correlation_methods: Vec<String>,
    /// Drop pairs with a zero on either side.
    #[serde(default)]
    pub exclude_zero_points: bool,
    /// States whose predictions are all equal.
    #[serde(default)]
    pub ranking_ties: qval_metrics::RankingTies,
    /// Also evaluate Q methods against V labels and the reverse.
    #[serde(default)]
    pub relabel: bool,
    /// Paired comparisons of methods and tiers.
    #[serde(default = "yes")]
    pub paired: bool,
    /// The two-level bootstrap over the labels' rollout returns.
    #[serde(default = "yes")]
    pub label_noise: bool,
}

impl EvaluateSpec {
    /// The evaluation's configuration, built by qval-metrics' own builders, so that what
    /// stage 5 would refuse is refused when the file is read; a problem names its key
    /// (`evaluate.min_points`, `evaluate.correlation_methods[1]`, ...) with the allowed values.
    ///
    /// # Errors
    /// The first value the evaluation refuses, at its key below `[evaluate]`.
    pub fn config(&self) -> std::result::Result<qval_metrics::EvaluateConfig, SpecProblem> {
        use qval_metrics::{BootstrapConfig, CorrelationConfig, MetricsError};
        let at_key = |e: MetricsError| {
            let key = match &e {
                MetricsError::InvalidParameter { name: "min_pairs", .. } => "min_points",
                MetricsError::InvalidParameter { name: "resamples", .. } => "bootstrap",
                MetricsError::InvalidParameter { name: "level", .. } => "confidence",
                MetricsError::InvalidParameter { name: "seed", .. } => "seed",
                _ => return SpecProblem::at(at!["evaluate"], e.to_string()),
            };
            let MetricsError::InvalidParameter { value, reason, .. } = e else {
                unreachable!("matched above")
            };
            SpecProblem::at(at!["evaluate", key], format!("{value}: {reason}"))
        };
        for (i, m) in self.correlation_methods.iter().enumerate() {
            if !qval_metrics::CORRELATION_METHODS.contains(&m.as_str()) {
                return Err(SpecProblem::at(
                    at!["evaluate", "correlation_methods", i],
                    unknown("correlation", m, &qval_metrics::CORRELATION_METHODS),
                ));
            }
        }
        let correlation = CorrelationConfig::builder()
            .min_pairs(self.min_points)
            .build()
            .map_err(at_key)?;
        let bootstrap = match self.bootstrap {
            0 => None,
            b => Some(
                BootstrapConfig::builder()
                    .resamples(b)
                    .level(self.confidence)
                    .seed(self.seed)
                    .build()
                    .map_err(at_key)?,
            ),
        };
        if bootstrap.is_none() && !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(SpecProblem::at(
                at!["evaluate", "confidence"],
                format!("{}: give a level in (0, 1)", self.confidence),
            ));
        }
        let cfg = qval_metrics::EvaluateConfig {
            correlation,
            bootstrap,
            correlation_methods: self.correlation_methods.clone(),
            exclude_zero_points: self.exclude_zero_points,
            ranking_ties: self.ranking_ties,
            relabel: self.relabel,
            paired: self.paired,
            label_noise: self.label_noise,
            gt_vs_gt: true,
        };
        cfg.validate().map_err(at_key)?;
        Ok(cfg)
    }
}

fn correlation_methods() -> Vec<String> {
    qval_metrics::CORRELATION_METHODS
        .iter()
        .map(|s| s.to_string())
        .collect()
}
fn yes() -> bool {
    true
}

fn fifty() -> usize {
    50
}
fn ten_thousand() -> usize {
    10_000
}
fn ninety_five() -> f64 {
    0.95
}

impl Default for EvaluateSpec {
    fn default() -> Self {
        EvaluateSpec {
            min_points: 50,
            bootstrap: 10_000,
            confidence: 0.95,
            seed: 0,
            correlation_methods: correlation_methods(),
            exclude_zero_points: false,
            ranking_ties: Default::default(),
            relabel: false,
            paired: true,
            label_noise: true,
        }
    }
}

/// One step of a path into the file: a key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

impl From<&str> for Seg {
    fn from(k: &str) -> Self {
        Seg::Key(k.to_string())
    }
}

impl From<String> for Seg {
    fn from(k: String) -> Self {
        Seg::Key(k)
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// A path into the file, e.g. `methods[2].samples`.
pub fn path_text(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Builds a path from keys and indices: `at!["methods", 2, "samples"]`.
macro_rules! at {
    ($($s:expr),* $(,)?) => { vec![$($crate::spec::Seg::from($s)),*] };
}
pub(crate) use at;

/// A problem found in an experiment file, at a path into it.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecProblem {
    /// Where (a key path; the closest existing key is reported).
    pub path: Vec<Seg>,
    /// What is wrong.
    pub message: String,
}

impl SpecProblem {
    /// A problem at `path`.
    pub fn at(path: Vec<Seg>, message: impl Into<String>) -> Self {
        SpecProblem {
            path,
            message: message.into(),
        }
    }

    /// The error for a problem found after the file was checked (no position, the key path).
    pub fn into_error(self) -> RunnerError {
        RunnerError::Usage(format!("{}: {}", path_text(&self.path), self.message))
    }
}

/// The text of an experiment file, for turning paths into positions.
#[derive(Clone, Debug)]
pub struct Source {
    /// The file.
    pub file: PathBuf,
    /// Its text.
    pub text: String,
}

impl Source {
    /// The 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = offset - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        (line, col)
    }

    /// The span of the key (or element) at `path`, or of its closest existing ancestor.
    pub fn span_of(&self, path: &[Seg]) -> Range<usize> {
        let Ok(root) = toml::de::DeTable::parse(&self.text) else {
            return 0..0;
        };
        let root = toml::Spanned::new(root.span(), toml::de::DeValue::Table(root.into_inner()));
        let mut best = 0..0;
        let mut cur = &root;
        for seg in path {
            let next = match (seg, cur.get_ref()) {
                (Seg::Key(k), toml::de::DeValue::Table(t)) => {
                    t.iter().find(|(key, _)| key.get_ref() == k).map(|(key, v)| {
                        best = key.span();
                        v
                    })
                }
                (Seg::Index(i), toml::de::DeValue::Array(a)) => a.get(*i).inspect(|v| best = v.span()),
                _ => None,
            };
            match next {
                Some(v) => cur = v,
                None => break,
            }
        }
        best
    }

    /// The error for a problem: file, line and column of its path.
    pub fn error(&self, p: SpecProblem) -> RunnerError {
        let (line, col) = self.line_col(self.span_of(&p.path).start);
        let at = path_text(&p.path);
        RunnerError::Spec {
            file: self.file.clone(),
            line,
            col,
            message: if at.is_empty() {
                p.message
            } else {
                format!("`{at}`: {}", p.message)
            },
        }
    }
}

/// The closest of `allowed` to `word`, if close enough to be a likely misspelling.
pub fn did_you_mean<'a>(word: &str, allowed: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    allowed
        .into_iter()
        .map(|a| {
            let d = strsim::damerau_levenshtein(word, a);
            // A prefix (`frozen` for `frozenlake`) is as likely as a typo.
            let prefix = word.len() >= 3 && (a.starts_with(word) || word.starts_with(a));
            (if prefix { d.min(1) } else { d }, a)
        })
        .filter(|(d, a)| *d <= 2.max(a.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// A message for "unknown X, expected one of ...", with a did-you-mean.
pub fn unknown(what: &str, word: &str, allowed: &[&str]) -> String {
    if allowed.is_empty() {
        return format!("unknown {what} `{word}`: none is allowed here");
    }
    let hint = did_you_mean(word, allowed.iter().copied())
        .map(|a| format!(" (did you mean `{a}`?)"))
        .unwrap_or_default();
    format!(
        "unknown {what} `{word}`{hint}; expected one of: {}",
        allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
    )
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into [`unknown`]'s form
/// (with a did-you-mean), and returns the unknown field's name.
pub fn explain_serde(message: &str) -> (String, Option<String>) {
    let msg = message.trim();
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, tail)) = rest.split_once('`')
    {
        let allowed: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        return (unknown("key", field, &allowed), Some(field.to_string()));
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `")
        && let Some((word, tail)) = rest.split_once('`')
    {
        let allowed: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        return (unknown("value", word, &allowed), None);
    }
    (msg.to_string(), None)
}

/// Deserialises a type's parameter table into its own parameter struct
/// (`#[serde(deny_unknown_fields)]`), turning errors into problems at `base`.
pub fn params<T: serde::de::DeserializeOwned>(
    table: &toml::Table,
    base: &[Seg],
) -> std::result::Result<T, SpecProblem> {
    serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let mut path = base.to_vec();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Map { key } => path.push(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => path.push(Seg::Index(*index)),
                _ => {}
            }
        }
        // toml appends the key a custom error came from ("\nin `encoder`"): the path says it.
        let inner = e.inner().to_string();
        let (message, field) = explain_serde(inner.split("\nin `").next().unwrap_or_default());
        if let Some(f) = field
            && path.last() != Some(&Seg::Key(f.clone()))
        {
            path.push(Seg::Key(f));
        }
        SpecProblem::at(path, readable(&message))
    })
}

/// Serde's type words in plain English (`usize` -> a whole number).
fn readable(message: &str) -> String {
    message
        .replace("expected usize", "expected a whole number")
        .replace("expected u64", "expected a whole number")
        .replace("expected u32", "expected a whole number")
        .replace("expected f64", "expected a number")
        .replace("expected a boolean", "expected true or false")
        .replace(
            "expected a sequence",
            "expected a list (`[[...]]` for a list of tables)",
        )
}

/// Reads and parses an experiment file (syntax, keys and types; [`crate::runner::Plan`]
/// checks the rest, the bounds of [`crate::limits`] first).
///
/// # Errors
/// [`RunnerError::Spec`] with the file, line and column; [`RunnerError::Usage`] for an unreadable file.
pub fn load(file: &Path) -> Result<(Experiment, Source)> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| RunnerError::Usage(format!("cannot read the experiment file {}: {e}", file.display())))?;
    let source = Source {
        file: file.to_path_buf(),
        text,
    };
    let syntax = |e: toml::de::Error| {
        let (message, _) = explain_serde(e.message());
        let (line, col) = source.line_col(e.span().map(|s| s.start).unwrap_or(0));
        RunnerError::Spec {
            file: file.to_path_buf(),
            line,
            col,
            message: readable(&message),
        }
    };
    let de = toml::Deserializer::parse(&source.text).map_err(syntax)?;
    let exp: Experiment = serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let key = e.path().iter().next_back().and_then(|seg| match seg {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        });
        let inner = e.into_inner();
        let mut err = syntax(inner);
        // An unknown value of an enum names its key: "unknown strategy `uniformly`".
        if let (RunnerError::Spec { message, .. }, Some(key)) = (&mut err, key)
            && let Some(rest) = message.strip_prefix("unknown value ")
        {
            *message = format!("unknown {} {rest}", key.replace('_', " "));
        }
        if let RunnerError::Spec { message, .. } = &mut err
            && !at.is_empty()
            && at != "."
        {
            *message = format!("`{at}`: {message}");
        }
        err
    })?;
    Ok((exp, source))
}

/// Whether `name` can name a file or folder inside a run folder as it is: letters, digits,
/// `-`, `_` and `.`, not empty and not starting with `.` (so never `..` nor a path).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_close_words_only() {
        assert_eq!(did_you_mean("sampels", ["samples", "points"]), Some("samples"));
        assert_eq!(did_you_mean("zzzz", ["samples", "points"]), None);
    }

    #[test]
    fn serde_messages_gain_a_suggestion() {
        let (m, f) = explain_serde("unknown field `rolouts`, expected one of `name`, `rollouts`");
        assert_eq!(f.as_deref(), Some("rollouts").map(|_| "rolouts"));
        assert!(m.contains("did you mean `rollouts`?"), "{m}");
    }

    #[test]
    fn spans_point_at_the_key() {
        let s = Source {
            file: "x.toml".into(),
            text: "name = \"a\"\n[[methods]]\ntype = \"random\"\n[[methods]]\ntype = \"direct\"\nsampels = 3\n".into(),
        };
        let path: Vec<Seg> = at!["methods", 1, "sampels"];
        let span = s.span_of(&path);
        assert_eq!(s.line_col(span.start), (6, 1));
    }
}
