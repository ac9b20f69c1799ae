//! The plugin API of method types: an entry as resolved ([`ResolvedMethod`]), what a type
//! is ([`MethodInfo`]), what it is built from ([`BuildInput`]), and the trait itself.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

use crate::envs::{EnvPlugin, RunServices};
use crate::spec::{self, Seg, SpecProblem};
use crate::{Result, RunnerError};
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
            o.min_chars = self.env.profile().min_chars();
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
/// use qval_runner::methods::{BuildInput, MethodInfo, MethodType, PointSet, ResolvedMethod};
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
///     async fn build(&self, input: BuildInput<'_>) -> qval_runner::Result<Vec<Arc<dyn DenseSignalMethod>>> {
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

pub(super) fn backend_of(input: &BuildInput<'_>) -> Result<Arc<dyn Backend>> {
    input.backend.clone().ok_or_else(|| {
        RunnerError::Usage(format!(
            "method `{}` needs a backend: add `backend = \"NAME\"` to its entry, or run with --base-url URL --model M",
            input.method.name
        ))
    })
}

pub(super) const Q_AND_V: [Signal; 2] = [Signal::Q, Signal::V];
