//! Method types as experiment files name them: each turns a `[[methods]]` entry into the
//! [`DenseSignalMethod`]s whose predictions the runner stores.
//!
//! A user's own method plugs in with [`MethodType`] (or the closure form
//! [`simple`]) and [`crate::Registry::method`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::envs::{EnvPlugin, RunServices};
use crate::spec::{self, Seg, SpecProblem};
use crate::{CliError, Result};
use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Signal, Trajectory};
use qval_methods::llm::{Backend, Modality, Preset, PromptOptions};

/// One method of an experiment once its entry is expanded: a concrete signal, backend and
/// modality. This is what `run.json` records and what a rerun compares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedMethod {
    /// The prediction set's name (a sampled method's members append `-sNN`).
    pub name: String,
    /// The method type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The signal.
    pub signal: Signal,
    /// The backend's name, for LLM methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// `text` or `image`.
    pub modality: String,
    /// The prompt preset, if the entry names one (default v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_preset: Option<Preset>,
    /// Whether prompts state the discount factor, if the entry says (default: no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclose_discount_factor: Option<bool>,
    /// Whether Q prompts and code see the resulting state, if the entry says (default: yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_next_state: Option<bool>,
    /// Earlier turns a prompt shows, if the entry says (default 40).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_history_turns: Option<usize>,
    /// Only the first N points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<usize>,
    /// The type's own parameters.
    pub params: toml::Table,
    /// Where the entry is in the experiment file (for messages).
    #[serde(skip)]
    pub path: Vec<Seg>,
    /// The entry's own name (its `name`, else its type), before expansion.
    #[serde(skip)]
    pub entry: String,
}

impl ResolvedMethod {
    /// Whether `--only NAME` selects it: its name (`distance-q`), its entry's name
    /// (`distance`) or its type (`heuristic`).
    pub fn answers_to(&self, name: &str) -> bool {
        name == self.name || name == self.kind || name == self.entry
    }

    /// What the method is told about the setting: `base` with the entry's own
    /// `disclose_discount_factor`, `include_next_state` and `max_history_turns`.
    pub fn context(&self, base: &MethodContext) -> MethodContext {
        let mut c = base.clone();
        if let Some(d) = self.disclose_discount_factor {
            c.disclose_gamma = d;
        }
        if let Some(n) = self.include_next_state {
            c.include_next_state = n;
        }
        if let Some(h) = self.max_history_turns {
            c.history_limit = h;
        }
        c
    }

    /// The prompt options of its modality and preset.
    pub fn prompt_options(&self) -> PromptOptions {
        PromptOptions {
            preset: self.prompt_preset.unwrap_or_default(),
            modality: if self.modality == "image" {
                Modality::Image
            } else {
                Modality::Text
            },
            ..Default::default()
        }
    }
}

/// Which points a method scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointSet {
    /// The sampled evaluation points (the first `points` of them, if set).
    Points,
    /// One candidate per legal action of each of those points' states (ranking methods).
    Candidates,
}

/// What a method type knows about itself, for `qval methods` and for checks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MethodInfo {
    /// The family (`baseline`, `direct`, `intrinsic`, `code`, `ranking`, `embedding`, ...).
    pub family: &'static str,
    /// One line on what it scores.
    pub summary: &'static str,
    /// The signals it can estimate.
    pub signals: Vec<Signal>,
    /// Whether it needs an LLM backend.
    pub needs_backend: bool,
    /// Whether that backend must give log-probabilities (`logprobs = true`).
    pub needs_logprobs: bool,
    /// Whether that backend must score given continuations (`scoring = true`: vLLM).
    pub needs_scoring: bool,
    /// Which points it scores.
    #[serde(skip)]
    pub on: PointSet,
    /// Its parameters: name, default, meaning.
    pub params: Vec<(&'static str, &'static str, &'static str)>,
}

/// Everything a method type may use to build its methods.
pub struct BuildInput<'a> {
    /// The method being built.
    pub method: &'a ResolvedMethod,
    /// The environment.
    pub env: &'a dyn EnvPlugin,
    /// What methods are told about the setting.
    pub ctx: &'a MethodContext,
    /// All collected trajectories.
    pub trajectories: &'a [Trajectory],
    /// The points it will score (already cut to `points`; candidates for ranking types).
    pub points: &'a [EvaluationPoint],
    /// Its backend, if it names one.
    pub backend: Option<Arc<dyn Backend>>,
    /// The best reference rollout after each ranking candidate's action, by point id (from
    /// the candidates' first Q label set): privileged evidence that only oracle-teacher
    /// ablations such as sdpo-gt may read.
    pub expert: &'a std::collections::HashMap<String, qval_core::ExpertRollout>,
    /// The run's folders and named backends (for clients other than chat).
    pub services: &'a dyn RunServices,
    /// The experiment's root seed.
    pub seed: u64,
    /// A folder of its own for side files (generated code, Eureka rounds).
    pub dir: PathBuf,
}

impl BuildInput<'_> {
    /// The method's prompt options: its modality; with a backend that gives `max_model_len`,
    /// a token budget (counted by its `tokenizer`, else the published estimate) and the
    /// environment's minimum field lengths.
    ///
    /// # Errors
    /// A `tokenizer` file that cannot be read.
    pub fn prompt_options(&self) -> Result<PromptOptions> {
        let mut o = self.method.prompt_options();
        let entry = self
            .method
            .backend
            .as_ref()
            .and_then(|b| self.services.backend_entries().remove(b));
        if let Some(e) = &entry {
            // As published, closings drop "After any reasoning, " when thinking is off.
            o.thinking = e.enable_thinking != Some(false);
        }
        if let Some(e) = entry
            && let Some(tokens) = e.prompt_tokens()
        {
            o.budget = Some(qval_methods::llm::Budget::Tokens(tokens));
            o.min_chars = self.env.prompt_min_chars();
            if let Some(path) = &e.tokenizer {
                let path = if path.is_relative() {
                    self.services.spec_dir().join(path)
                } else {
                    path.clone()
                };
                let t = qval_methods::llm::prompt::TokenizerFile::load(path)?;
                o.counter = qval_methods::llm::Counter(Some(Arc::new(t)));
            }
        }
        Ok(o)
    }
}

/// A method type: checks an entry's parameters, says which prediction sets it produces, and
/// builds the methods that produce them.
///
/// # Example
/// ```
/// use qval_cli::methods::{BuildInput, MethodInfo, MethodType, PointSet, ResolvedMethod};
/// use qval_core::{DenseSignalMethod, Signal};
/// use std::sync::Arc;
///
/// struct Constant;
///
/// #[async_trait::async_trait]
/// impl MethodType for Constant {
///     fn info(&self) -> MethodInfo {
///         MethodInfo {
///             family: "baseline",
///             summary: "the same score everywhere",
///             signals: vec![Signal::Q, Signal::V],
///             needs_backend: false,
///             needs_logprobs: false,
///             needs_scoring: false,
///             on: PointSet::Points,
///             params: vec![],
///         }
///     }
///     async fn build(&self, input: BuildInput<'_>) -> qval_cli::Result<Vec<Arc<dyn DenseSignalMethod>>> {
///         Ok(vec![Arc::new(qval_methods::RandomBaseline::new(0, input.method.signal))])
///     }
/// }
/// assert_eq!(Constant.info().family, "baseline");
/// ```
#[async_trait]
pub trait MethodType: Send + Sync {
    /// What it is.
    fn info(&self) -> MethodInfo;

    /// Checks the entry's own parameters before any work starts; paths are relative to the
    /// entry. Default: no parameters allowed.
    fn check(&self, method: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct NoParams {}
        spec::params::<NoParams>(&method.params, &[]).map(|_| ())
    }

    /// Checks the entry against the environment and the run's named backends, before any
    /// work starts (after [`check`](Self::check)); paths are relative to the entry. Default:
    /// nothing to check.
    fn check_plan(
        &self,
        method: &ResolvedMethod,
        env: &dyn EnvPlugin,
        services: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem> {
        let _ = (method, env, services);
        Ok(())
    }

    /// The names of the prediction sets it produces (default: the method's name), so that a
    /// rerun skips an entry whose sets are all finished without building it.
    fn outputs(&self, method: &ResolvedMethod) -> Vec<String> {
        vec![method.name.clone()]
    }

    /// Builds the methods, one per name of [`MethodType::outputs`], in that order.
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>>;
}

/// A method type from a closure building one method (no parameters), for a user's method:
/// `registry.method("my-method", simple("mine", |signal| Arc::new(My(signal))))`.
pub fn simple<F>(family: &'static str, f: F) -> Arc<dyn MethodType>
where
    F: Fn(Signal) -> Arc<dyn DenseSignalMethod> + Send + Sync + 'static,
{
    struct Simple<F> {
        family: &'static str,
        f: F,
    }
    #[async_trait]
    impl<F: Fn(Signal) -> Arc<dyn DenseSignalMethod> + Send + Sync> MethodType for Simple<F> {
        fn info(&self) -> MethodInfo {
            MethodInfo {
                family: self.family,
                summary: "a method registered in code",
                signals: vec![Signal::Q, Signal::V, Signal::Advantage],
                needs_backend: false,
                needs_logprobs: false,
                needs_scoring: false,
                on: PointSet::Points,
                params: vec![],
            }
        }
        async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
            Ok(vec![(self.f)(input.method.signal)])
        }
    }
    Arc::new(Simple { family, f })
}

fn backend_of(input: &BuildInput<'_>) -> Result<Arc<dyn Backend>> {
    input.backend.clone().ok_or_else(|| {
        CliError::Usage(format!(
            "method `{}` needs a backend: add `backend = \"NAME\"` to its entry, or run with --base-url URL --model M",
            input.method.name
        ))
    })
}

const Q_AND_V: [Signal; 2] = [Signal::Q, Signal::V];

struct Random;

#[async_trait]
impl MethodType for Random {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "baseline",
            summary: "seeded uniform scores: the floor every method must beat",
            signals: vec![Signal::Q, Signal::V, Signal::Advantage],
            needs_backend: false,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![("seed", "the experiment's seed", "the generator's seed")],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        spec::params::<SeedParams>(&m.params, &[]).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p: SeedParams = spec::params(&input.method.params, &[]).map_err(SpecProblem::into_error)?;
        Ok(vec![Arc::new(qval_methods::RandomBaseline::new(
            p.seed.unwrap_or(input.seed),
            input.method.signal,
        ))])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedParams {
    #[serde(default)]
    seed: Option<u64>,
}

struct Heuristic;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeuristicParams {
    /// One of the environment's other heuristics (FrozenLake: `manhattan`); default its own.
    #[serde(default)]
    variant: Option<String>,
}

#[async_trait]
impl MethodType for Heuristic {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "baseline",
            summary: "the environment's hand-written heuristic (FrozenLake: distance to the goal, or `variant = \"manhattan\"` ignoring holes; TerminalBench: shell outcome)",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: false,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![(
                "variant",
                "the environment's own",
                "another heuristic of the environment (FrozenLake: manhattan)",
            )],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        spec::params::<HeuristicParams>(&m.params, &[]).map(|_| ())
    }
    fn check_plan(
        &self,
        m: &ResolvedMethod,
        env: &dyn EnvPlugin,
        _: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem> {
        let p = spec::params::<HeuristicParams>(&m.params, &[])?;
        match p.variant {
            Some(v) if !env.heuristic_variants().contains(&v) => {
                let known = env.heuristic_variants();
                Err(SpecProblem::at(
                    crate::at!["variant"],
                    spec::unknown(
                        "heuristic variant",
                        &v,
                        &known.iter().map(String::as_str).collect::<Vec<_>>(),
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p = spec::params::<HeuristicParams>(&input.method.params, &[]).map_err(|e| CliError::Usage(e.message))?;
        let signal = input.method.signal;
        let h = match &p.variant {
            Some(v) => input.env.heuristic_variant(v, signal),
            None => input.env.heuristic(signal),
        };
        let h = h.ok_or_else(|| {
            CliError::Usage(format!(
                "environment `{}` has no heuristic{} for signal {signal}",
                input.env.spec().name,
                p.variant.as_deref().map(|v| format!(" `{v}`")).unwrap_or_default()
            ))
        })?;
        Ok(vec![h])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectParams {
    #[serde(default = "single")]
    mode: String,
    #[serde(default)]
    n: Option<usize>,
}

fn single() -> String {
    "single".into()
}

struct Direct;

impl Direct {
    fn mode(p: &DirectParams) -> std::result::Result<qval_methods::prompting::DirectMode, SpecProblem> {
        use qval_methods::prompting::DirectMode;
        let n = |default: usize| -> std::result::Result<usize, SpecProblem> {
            match p.n {
                Some(0) => Err(SpecProblem::at(crate::at!["n"], "0: give at least 1")),
                Some(n) => crate::limits::at_most(
                    crate::at!["n"],
                    n,
                    1_000,
                    "each is one more request or prompt section per point",
                )
                .map(|_| n),
                None => Ok(default),
            }
        };
        Ok(match p.mode.as_str() {
            "single" => {
                if p.n.is_some() {
                    return Err(SpecProblem::at(crate::at!["n"], "mode `single` takes no `n`"));
                }
                DirectMode::Single
            }
            "multi" => DirectMode::Multi(n(16)?),
            "batched" => DirectMode::Batched(n(4)?),
            "sequential" => DirectMode::Sequential(n(8)?),
            other => {
                return Err(SpecProblem::at(
                    crate::at!["mode"],
                    spec::unknown("mode", other, &["single", "multi", "batched", "sequential"]),
                ));
            }
        })
    }
}

#[async_trait]
impl MethodType for Direct {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "direct",
            summary: "the model is told what the value means and answers a number",
            signals: vec![Signal::Q, Signal::V, Signal::Advantage],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![
                (
                    "mode",
                    "single",
                    "single | multi (N passes, mean) | batched (K per prompt) | sequential (K turns)",
                ),
                (
                    "n",
                    "16 / 4 / 8",
                    "passes (multi) or points per prompt (batched, sequential)",
                ),
            ],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        Self::mode(&spec::params(&m.params, &[])?).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let mode = Self::mode(&spec::params(&input.method.params, &[]).map_err(SpecProblem::into_error)?)
            .map_err(SpecProblem::into_error)?;
        Ok(vec![Arc::new(qval_methods::prompting::Direct::new(
            backend_of(&input)?,
            input.method.signal,
            mode,
            input.prompt_options()?,
        ))])
    }
}

struct Gvl;

#[async_trait]
impl MethodType for Gvl {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "direct",
            summary: "the other steps of the trajectory, shuffled, as context; the target step last",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![("seed", "the experiment's seed", "the shuffle's seed")],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        spec::params::<SeedParams>(&m.params, &[]).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p: SeedParams = spec::params(&input.method.params, &[]).map_err(SpecProblem::into_error)?;
        Ok(vec![Arc::new(qval_methods::prompting::Gvl::new(
            backend_of(&input)?,
            input.method.signal,
            input.trajectories,
            p.seed.unwrap_or(input.seed),
            input.prompt_options()?,
        ))])
    }
}

struct Verifier;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifierParams {
    #[serde(default)]
    num_verifications: Option<usize>,
    #[serde(default)]
    criteria: Vec<String>,
}

impl VerifierParams {
    fn read(table: &toml::Table) -> std::result::Result<Self, SpecProblem> {
        let p: VerifierParams = spec::params(table, &[])?;
        if p.num_verifications == Some(0) {
            return Err(SpecProblem::at(
                crate::at!["num_verifications"],
                "`num_verifications` must be at least 1",
            ));
        }
        if let Some(n) = p.num_verifications {
            crate::limits::at_most(
                crate::at!["num_verifications"],
                n,
                100,
                "each verification is one more request per point",
            )?;
        }
        let ids = qval_methods::prompting::VerifierCriterion::ids();
        for (i, c) in p.criteria.iter().enumerate() {
            if qval_methods::prompting::VerifierCriterion::by_id(c).is_none() {
                return Err(SpecProblem::at(
                    crate::at!["criteria", i],
                    spec::unknown("verifier criterion", c, &ids),
                ));
            }
        }
        Ok(p)
    }
}

#[async_trait]
impl MethodType for Verifier {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "intrinsic",
            summary: "a letter grade A..T read from the top-20 log-probabilities (needs `logprobs = true` on the backend)",
            signals: vec![Signal::Q],
            needs_backend: true,
            needs_logprobs: true,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![
                (
                    "num_verifications",
                    "1",
                    "passes per criterion (the published name); the mean of the passes that decode",
                ),
                (
                    "criteria",
                    "[]",
                    "published criteria ids (frozen_lake_correctness, terminal_bench_efficiency, ...), cycled over the passes",
                ),
            ],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        VerifierParams::read(&m.params).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p = VerifierParams::read(&input.method.params).map_err(SpecProblem::into_error)?;
        let m =
            qval_methods::prompting::Verifier::new(backend_of(&input)?, input.method.signal, input.prompt_options()?)
                .with_passes(p.num_verifications.unwrap_or(1))
                .with_criteria(&p.criteria)
                .map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(vec![Arc::new(m)])
    }
}

struct Ranking;

#[async_trait]
impl MethodType for Ranking {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "ranking",
            summary: "the model orders every legal action of a state, best first; evaluated per state",
            signals: vec![Signal::Q],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Candidates,
            params: vec![],
        }
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let ranking = qval_methods::prompting::Ranking::new(backend_of(&input)?, input.points, input.prompt_options()?)
            .shuffle(Some(input.seed));
        // The order each state's candidates are shown in, for the record (a rerun shows the
        // same: it derives from the seed and the state).
        let path = input.dir.join("shown_order.json");
        let text = serde_json::to_string_pretty(&ranking.shown_orders()).expect("orders serialise");
        qval_core::io::write_atomic(&path, text.as_bytes())?;
        Ok(vec![Arc::new(ranking)])
    }
}

/// sdpo, sdpo-gt and delta-belief: log-probabilities of given continuations.
struct Scoring {
    kind: qval_methods::prompting::ScoringKind,
}

#[async_trait]
impl MethodType for Scoring {
    fn info(&self) -> MethodInfo {
        use qval_methods::prompting::ScoringKind;
        MethodInfo {
            family: match self.kind {
                ScoringKind::DeltaBelief => "intrinsic",
                _ => "self-distillation",
            },
            summary: match self.kind {
                ScoringKind::Sdpo => {
                    "mean per-token log-prob of the action, teacher (state and its response) minus student (state); \
                     ranked per state; needs `scoring = true` (vLLM)"
                }
                ScoringKind::SdpoGt => {
                    "sdpo whose teacher also sees the expert rollout from the resulting state (an oracle-teacher \
                     ablation); ranked per state; needs `scoring = true` (vLLM)"
                }
                ScoringKind::DeltaBelief => {
                    "change of log p(Yes) to a success question once the candidate's outcome is shown; ranked per \
                     state; needs `scoring = true` (vLLM)"
                }
            },
            signals: vec![Signal::Q],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: true,
            on: PointSet::Candidates,
            params: vec![],
        }
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let m =
            qval_methods::prompting::ContinuationScoring::new(self.kind, backend_of(&input)?, input.prompt_options()?)?;
        let m = match self.kind {
            qval_methods::prompting::ScoringKind::SdpoGt => m.with_expert(input.expert.clone()),
            _ => m,
        };
        Ok(vec![Arc::new(m)])
    }
}

/// Parameters of the code family.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeParams {
    #[serde(default = "sixteen")]
    samples: usize,
    /// Seconds one call may take.
    #[serde(default = "one_f")]
    call_limit: f64,
    /// Seconds all calls of one sample may take.
    #[serde(default = "six_hundred")]
    total_limit: f64,
}

fn sixteen() -> usize {
    16
}
fn one_f() -> f64 {
    1.0
}
fn six_hundred() -> f64 {
    600.0
}

impl CodeParams {
    fn read(params: &toml::Table) -> std::result::Result<Self, SpecProblem> {
        let p: CodeParams = spec::params(params, &[])?;
        if p.samples == 0 {
            return Err(SpecProblem::at(crate::at!["samples"], "0: give at least 1"));
        }
        crate::limits::at_most(
            crate::at!["samples"],
            p.samples,
            1_000,
            "each sample is a generated program run on every point",
        )?;
        for (key, v) in [("call_limit", p.call_limit), ("total_limit", p.total_limit)] {
            if !(v > 0.0 && v <= 86_400.0) {
                return Err(SpecProblem::at(
                    crate::at![key],
                    format!("{v}: give seconds in (0, 86400]"),
                ));
            }
        }
        Ok(p)
    }

    fn sandbox(&self) -> Result<qval_methods::code::SandboxConfig> {
        qval_methods::code::SandboxConfig::builder()
            .call_limit(Duration::from_secs_f64(self.call_limit))
            .total_limit(Duration::from_secs_f64(self.total_limit))
            .build()
            .map_err(|e| CliError::Usage(format!("sandbox settings: {e}")))
    }
}

/// A code sample renamed into its group, recording `sample_group` and `sample_index`.
struct Member {
    inner: Arc<qval_methods::code::CodeSample>,
    name: String,
    group: String,
    index: usize,
}

#[async_trait]
impl DenseSignalMethod for Member {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn signal(&self) -> Signal {
        self.inner.signal()
    }
    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "sample_group": self.group, "sample_index": self.index })
    }
    async fn evaluate(&self, p: &EvaluationPoint, ctx: &MethodContext) -> qval_core::Result<f64> {
        self.inner.evaluate(p, ctx).await
    }
    async fn evaluate_batch(&self, p: &[EvaluationPoint], ctx: &MethodContext) -> Vec<qval_core::Result<f64>> {
        self.inner.evaluate_batch(p, ctx).await
    }
}

async fn code_samples(input: &BuildInput<'_>, p: &CodeParams) -> Result<Vec<Arc<qval_methods::code::CodeSample>>> {
    use qval_methods::code::{CodeSample, generate_samples};
    let backend = backend_of(input)?;
    if input.points.is_empty() {
        return Err(CliError::Usage(format!(
            "method `{}` has no points to score",
            input.method.name
        )));
    }
    let samples = generate_samples(
        &*backend,
        input.ctx,
        input.method.signal,
        &input.prompt_options()?,
        p.samples,
        &Default::default(),
    )
    .await;
    std::fs::create_dir_all(&input.dir).map_err(|e| CliError::io("creating", &input.dir, e))?;
    let config = p.sandbox()?;
    let mut out = Vec::new();
    for s in samples {
        let file = input.dir.join(format!("sample-{:02}.py", s.index));
        let body = match (&s.source, &s.error) {
            (Some(src), _) => src.clone(),
            (None, Some(e)) => format!("# no code: {e}\n"),
            (None, None) => "# no code\n".into(),
        };
        qval_core::io::write_atomic(&file, body.as_bytes())?;
        let m = CodeSample::new(s, input.method.signal, config.clone(), "codegen")
            .with_next_state(input.ctx.include_next_state);
        // A sample that does not load scores NaN everywhere; a sandbox that cannot start at
        // all (bubblewrap missing) is an error.
        let _ = m
            .check()
            .await
            .map_err(|e| CliError::Usage(format!("the code sandbox cannot start: {e}")))?;
        out.push(m);
    }
    // Grouped, the runner's scoring of one sample after another runs them all at once.
    Ok(qval_methods::code::group(out))
}

struct Codegen;

#[async_trait]
impl MethodType for Codegen {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "code",
            summary: "N generated Python signal functions, each run on every point in a sandbox; reported as mean +- std [min, max]",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: code_params(),
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        CodeParams::read(&m.params).map(|_| ())
    }
    fn outputs(&self, m: &ResolvedMethod) -> Vec<String> {
        let n = CodeParams::read(&m.params).map(|p| p.samples).unwrap_or(0);
        (0..n).map(|i| format!("{}-s{i:02}", m.name)).collect()
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p = CodeParams::read(&input.method.params).map_err(SpecProblem::into_error)?;
        let samples = code_samples(&input, &p).await?;
        Ok(samples
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Arc::new(Member {
                    inner: s,
                    name: format!("{}-s{i:02}", input.method.name),
                    group: input.method.name.clone(),
                    index: i,
                }) as Arc<dyn DenseSignalMethod>
            })
            .collect())
    }
}

fn code_params() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("samples", "16", "generated functions"),
        ("call_limit", "1", "seconds one call may take"),
        ("total_limit", "600", "seconds all calls of one sample may take"),
    ]
}

struct CodegenAvg;

#[async_trait]
impl MethodType for CodegenAvg {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "code",
            summary: "per point, the NaN-skipping mean of the N generated functions (the same samples as codegen)",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: code_params(),
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        CodeParams::read(&m.params).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p = CodeParams::read(&input.method.params).map_err(SpecProblem::into_error)?;
        let samples = code_samples(&input, &p).await?;
        Ok(vec![Arc::new(qval_methods::code::CodegenAvg::new(
            samples,
            input.method.signal,
        ))])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EurekaParams {
    #[serde(default = "sixteen")]
    iterations: usize,
    #[serde(default = "eight")]
    candidates: usize,
    #[serde(default = "one_f")]
    call_limit: f64,
    #[serde(default = "six_hundred")]
    total_limit: f64,
}

fn eight() -> usize {
    8
}

impl EurekaParams {
    fn read(params: &toml::Table) -> std::result::Result<Self, SpecProblem> {
        let p: EurekaParams = spec::params(params, &[])?;
        for (key, v) in [("iterations", p.iterations), ("candidates", p.candidates)] {
            if v == 0 {
                return Err(SpecProblem::at(crate::at![key], "0: give at least 1"));
            }
            crate::limits::at_most(
                crate::at![key],
                v,
                1_000,
                "every candidate of every round is a generated program, judged and run on the points",
            )?;
        }
        CodeParams {
            samples: 1,
            call_limit: p.call_limit,
            total_limit: p.total_limit,
        }
        .sandbox()
        .map_err(|e| SpecProblem::at(crate::at!["call_limit"], e.to_string()))?;
        Ok(p)
    }
}

struct Eureka;

#[async_trait]
impl MethodType for Eureka {
    fn info(&self) -> MethodInfo {
        MethodInfo {
            family: "code",
            summary: "iterative improvement of generated functions with an LLM judge; the last winner is scored",
            signals: vec![Signal::Q, Signal::V],
            needs_backend: true,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: vec![
                ("iterations", "16", "rounds"),
                ("candidates", "8", "candidates per round"),
                ("call_limit", "1", "seconds one call may take"),
                ("total_limit", "600", "seconds all calls of one candidate may take"),
            ],
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        EurekaParams::read(&m.params).map(|_| ())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        use qval_methods::code::{CodeSample, EurekaConfig, run_eureka};
        let p = EurekaParams::read(&input.method.params).map_err(SpecProblem::into_error)?;
        let sandbox = CodeParams {
            samples: 1,
            call_limit: p.call_limit,
            total_limit: p.total_limit,
        }
        .sandbox()?;
        let mut cfg = EurekaConfig::new(sandbox.clone());
        cfg.iterations = p.iterations;
        cfg.candidates = p.candidates;
        cfg.seed = input.seed;
        cfg.prompt = input.prompt_options()?;
        let result = run_eureka(backend_of(&input)?, input.ctx, input.method.signal, input.points, &cfg).await?;
        let rounds = serde_json::to_string_pretty(&result).unwrap_or_default();
        qval_core::io::write_atomic(&input.dir.join("eureka.json"), rounds.as_bytes())?;
        let best = CodeSample::new(result.best, input.method.signal, sandbox, "eureka")
            .with_next_state(input.ctx.include_next_state);
        Ok(vec![Arc::new(best)])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingParams {
    #[serde(default = "minilm")]
    encoder: String,
    #[serde(default)]
    alpha: Option<f64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    threshold: Option<f64>,
    /// `encoder = "http"`: a named backend serving an embeddings model...
    #[serde(default)]
    server: Option<String>,
    /// ... or its URL and model.
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    batch_size: Option<usize>,
}

fn minilm() -> String {
    "minilm".into()
}

/// The embedding family's four scores.
struct Embedding {
    kind: &'static str,
}

impl Embedding {
    fn read(&self, m: &ResolvedMethod) -> std::result::Result<EmbeddingParams, SpecProblem> {
        let p: EmbeddingParams = spec::params(&m.params, &[])?;
        let http_keys = [
            ("server", p.server.is_some()),
            ("base_url", p.base_url.is_some()),
            ("model", p.model.is_some()),
            ("api_key_env", p.api_key_env.is_some()),
            ("batch_size", p.batch_size.is_some()),
        ];
        match p.encoder.as_str() {
            "minilm" => {
                if let Some((key, _)) = http_keys.iter().find(|(_, given)| *given) {
                    return Err(SpecProblem::at(
                        crate::at![*key],
                        format!("`encoder = \"minilm\"` takes no `{key}` (it belongs to `encoder = \"http\"`)"),
                    ));
                }
                if m.modality == "image" {
                    return Err(SpecProblem::at(
                        crate::at!["modality"],
                        "`image`: all-MiniLM-L6-v2 encodes text only; pictures need `encoder = \"http\"` \
                         (a CLIP or SigLIP server)",
                    ));
                }
                crate::encoders::available(&p.encoder)
                    .map_err(|e| SpecProblem::at(crate::at!["type"], e.to_string()))?;
            }
            "http" => {
                match (&p.server, &p.base_url, &p.model) {
                    (Some(_), None, None) => {
                        if p.api_key_env.is_some() {
                            return Err(SpecProblem::at(
                                crate::at!["api_key_env"],
                                "with `server`, the key variable is the backend's own `api_key_env`",
                            ));
                        }
                    }
                    (Some(_), _, _) => {
                        return Err(SpecProblem::at(
                            crate::at!["server"],
                            "give `server` or `base_url` and `model`, not both",
                        ));
                    }
                    (None, Some(url), Some(model)) => {
                        if !(url.starts_with("http://") || url.starts_with("https://")) {
                            return Err(SpecProblem::at(
                                crate::at!["base_url"],
                                format!("{url:?}: give an http:// or https:// URL"),
                            ));
                        }
                        if model.trim().is_empty() {
                            return Err(SpecProblem::at(crate::at!["model"], "empty: name the embeddings model"));
                        }
                    }
                    (None, Some(_), None) => {
                        return Err(SpecProblem::at(
                            crate::at!["base_url"],
                            "`base_url` needs `model`: the embeddings model it serves",
                        ));
                    }
                    (None, None, Some(_)) => {
                        return Err(SpecProblem::at(
                            crate::at!["model"],
                            "`model` needs `base_url`: where it is served",
                        ));
                    }
                    (None, None, None) => {
                        return Err(SpecProblem::at(
                            crate::at!["encoder"],
                            "`encoder = \"http\"` needs `server = \"NAME\"` (a backend serving an embeddings \
                             model) or `base_url` and `model`",
                        ));
                    }
                }
                if let Some(n) = p.batch_size {
                    crate::limits::at_most(
                        crate::at!["batch_size"],
                        n,
                        4_096,
                        "a request's texts and their vectors are held in memory",
                    )?;
                }
                if p.batch_size == Some(0) {
                    return Err(SpecProblem::at(crate::at!["batch_size"], "0: give at least 1"));
                }
            }
            other => {
                return Err(SpecProblem::at(
                    crate::at!["encoder"],
                    spec::unknown("encoder", other, &["minilm", "http"]),
                ));
            }
        }
        let allowed: &[&str] = match self.kind {
            "goal-cosine" => &[],
            "vlm-rm" => &["alpha"],
            "sor" => &["temperature"],
            _ => &["temperature", "threshold"],
        };
        for (key, v) in [
            ("alpha", p.alpha),
            ("temperature", p.temperature),
            ("threshold", p.threshold),
        ] {
            if v.is_some() && !allowed.contains(&key) {
                return Err(SpecProblem::at(
                    crate::at![key],
                    format!("`{}` takes no `{key}`", self.kind),
                ));
            }
        }
        if let Some(a) = p.alpha
            && !(0.0..=1.0).contains(&a)
        {
            return Err(SpecProblem::at(
                crate::at!["alpha"],
                format!("{a}: give a value in [0, 1]"),
            ));
        }
        if let Some(t) = p.temperature
            && !(t > 0.0 && t.is_finite())
        {
            return Err(SpecProblem::at(
                crate::at!["temperature"],
                format!("{t}: give a positive value"),
            ));
        }
        Ok(p)
    }

    /// The texts the scores compare with: the environment's, for its text or its pictures.
    fn texts(
        &self,
        m: &ResolvedMethod,
        env: &dyn EnvPlugin,
    ) -> std::result::Result<qval_methods::embedding::GoalTexts, SpecProblem> {
        let name = env.spec().name;
        if m.modality != "image" {
            return env.goal_texts().ok_or_else(|| {
                SpecProblem::at(
                    crate::at!["type"],
                    format!("environment `{name}` defines no goal texts for the embedding family"),
                )
            });
        }
        if !env.gives_images() {
            return Err(SpecProblem::at(
                crate::at!["modality"],
                format!(
                    "`image`: environment `{name}` gives no pictures as configured (FrozenLake gives them with \
                     `observation = \"image\"` in [environment])"
                ),
            ));
        }
        env.image_goal_texts().ok_or_else(|| {
            SpecProblem::at(
                crate::at!["modality"],
                format!("`image`: environment `{name}` defines no texts to compare its pictures with"),
            )
        })
    }
}

#[async_trait]
impl MethodType for Embedding {
    fn info(&self) -> MethodInfo {
        let (summary, params): (&'static str, Vec<(&'static str, &'static str, &'static str)>) = match self.kind {
            "goal-cosine" => ("cosine of the state's embedding and the goal text's", vec![]),
            "vlm-rm" => (
                "VLM-RM: the state projected on the baseline-to-goal direction",
                vec![("alpha", "0.5", "projection weight")],
            ),
            "sor" => (
                "SOR: softmax of cosines over the goal and negative outcomes",
                vec![("temperature", "0.07", "softmax temperature")],
            ),
            _ => (
                "SOR threshold: 1 when SOR's goal probability exceeds the threshold",
                vec![
                    ("temperature", "0.07", "softmax temperature"),
                    ("threshold", "0.5", "probability"),
                ],
            ),
        };
        let mut all = vec![
            (
                "encoder",
                "minilm",
                "minilm (all-MiniLM-L6-v2, text) | http (an OpenAI-compatible /embeddings server, e.g. vLLM serving \
                 CLIP or SigLIP; text, or pictures with modality = \"image\")",
            ),
            (
                "server",
                "",
                "http: a named backend ([backends] / backends_file) whose model is an embeddings model (--base-url and --model readdress it like every named backend)",
            ),
            ("base_url", "", "http: the server's URL, instead of `server`"),
            ("model", "", "http: the embeddings model, with `base_url`"),
            (
                "api_key_env",
                "",
                "http: the variable holding the API key, with `base_url`",
            ),
            ("batch_size", "32", "http: texts per request"),
        ];
        all.extend(params);
        MethodInfo {
            family: "embedding",
            summary,
            signals: Q_AND_V.to_vec(),
            needs_backend: false,
            needs_logprobs: false,
            needs_scoring: false,
            on: PointSet::Points,
            params: all,
        }
    }
    fn check(&self, m: &ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        self.read(m).map(|_| ())
    }
    fn check_plan(
        &self,
        m: &ResolvedMethod,
        env: &dyn EnvPlugin,
        services: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem> {
        let p = self.read(m)?;
        self.texts(m, env)?;
        if let Some(server) = &p.server {
            let entries = services.backend_entries();
            if !entries.contains_key(server) {
                let names: Vec<&str> = entries.keys().map(String::as_str).collect();
                return Err(SpecProblem::at(
                    crate::at!["server"],
                    spec::unknown("backend", server, &names),
                ));
            }
        }
        Ok(())
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        use qval_methods::embedding::EmbeddingMethod;
        let m = input.method;
        let p = self.read(m).map_err(SpecProblem::into_error)?;
        let texts = self.texts(m, input.env).map_err(SpecProblem::into_error)?;
        let s = m.signal;
        let t = p.temperature.unwrap_or(0.07);
        macro_rules! scored {
            ($encoder:expr) => {{
                let e = $encoder;
                match self.kind {
                    "goal-cosine" => EmbeddingMethod::goal_cosine(e, texts, s),
                    "vlm-rm" => EmbeddingMethod::vlm_rm(e, texts, s, p.alpha.unwrap_or(0.5)),
                    "sor" => EmbeddingMethod::sor(e, texts, s, t),
                    _ => EmbeddingMethod::threshold(e, texts, s, t, p.threshold.unwrap_or(0.5)),
                }
            }};
        }
        if p.encoder == "minilm" {
            return Ok(vec![Arc::new(scored!(crate::encoders::text_encoder(&p.encoder)?))]);
        }
        let http = crate::encoders::HttpSettings {
            server: p.server.clone(),
            base_url: p.base_url.clone(),
            model: p.model.clone(),
            api_key_env: p.api_key_env.clone(),
            batch_size: p.batch_size,
        };
        let encoder = crate::encoders::http_encoder(&http, input.services)?;
        let method = scored!(encoder);
        Ok(vec![if m.modality == "image" {
            Arc::new(method.on_images())
        } else {
            Arc::new(method)
        }])
    }
}

/// The built-in method types, by name.
pub fn builtin() -> Vec<(&'static str, Arc<dyn MethodType>)> {
    vec![
        ("random", Arc::new(Random)),
        ("heuristic", Arc::new(Heuristic)),
        ("direct", Arc::new(Direct)),
        ("gvl", Arc::new(Gvl)),
        ("verifier", Arc::new(Verifier)),
        ("ranking", Arc::new(Ranking)),
        (
            "sdpo",
            Arc::new(Scoring {
                kind: qval_methods::prompting::ScoringKind::Sdpo,
            }),
        ),
        (
            "sdpo-gt",
            Arc::new(Scoring {
                kind: qval_methods::prompting::ScoringKind::SdpoGt,
            }),
        ),
        (
            "delta-belief",
            Arc::new(Scoring {
                kind: qval_methods::prompting::ScoringKind::DeltaBelief,
            }),
        ),
        ("codegen", Arc::new(Codegen)),
        ("codegen-avg", Arc::new(CodegenAvg)),
        ("eureka", Arc::new(Eureka)),
        ("goal-cosine", Arc::new(Embedding { kind: "goal-cosine" })),
        ("vlm-rm", Arc::new(Embedding { kind: "vlm-rm" })),
        ("sor", Arc::new(Embedding { kind: "sor" })),
        ("sor-threshold", Arc::new(Embedding { kind: "sor-threshold" })),
    ]
}
