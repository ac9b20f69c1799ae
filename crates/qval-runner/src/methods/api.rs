//! The plugin API of method types: an entry as resolved ([`ResolvedMethod`]), what a type
//! is ([`MethodInfo`]), what it is built from ([`BuildInput`]), the trait itself
//! ([`MethodType`], with its typed parameters) and the form the registry holds
//! ([`DynMethodType`]).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use crate::envs::{EnvPlugin, RunServices};
use crate::spec::{self, MethodSettings, Seg, SpecProblem};
use crate::{Result, RunnerError};
use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Signal, Trajectory};
use qval_methods::llm::{Backend, Preset, PromptOptions};

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
    pub modality: Modality,
    /// The prompt preset, if the entry names one (default v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_preset: Option<Preset>,
    /// What its prompts show and how many points it scores, as its entry says.
    #[serde(flatten)]
    pub settings: MethodSettings,
    /// The type's own parameters.
    pub params: toml::Table,
    /// Where the entry is in the experiment file (for messages).
    #[serde(skip)]
    pub path: Vec<Seg>,
    /// The entry's own name (its `name`, else its type), before expansion.
    #[serde(skip)]
    pub entry: String,
    /// `params` as its type parsed and checked them, once, when the plan was made.
    #[serde(skip)]
    pub(crate) parsed: Parsed,
}

/// A method type's parameters once parsed ([`MethodType::Params`]), held by the resolved
/// method so that `outputs` and `build` get them without parsing again. Two resolved
/// methods compare by their `params` table, not by this.
#[derive(Clone, Default)]
pub(crate) struct Parsed(Option<Arc<dyn Any + Send + Sync>>);

impl PartialEq for Parsed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Parsed(..)" } else { "Parsed(none)" })
    }
}

/// How a method sees states: as text, or as pictures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// The states' text (default).
    #[default]
    Text,
    /// The states' pictures.
    Image,
}

impl Modality {
    /// The name experiment files use.
    pub fn key(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
        }
    }

    /// Every modality, as experiment files name them.
    pub const KEYS: [&'static str; 2] = ["text", "image"];

    /// The modality named `key`, if any.
    pub fn from_key(key: &str) -> Option<Modality> {
        [Modality::Text, Modality::Image].into_iter().find(|m| m.key() == key)
    }
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
        self.settings.apply(base)
    }

    /// The prompt options of its modality and preset.
    pub fn prompt_options(&self) -> PromptOptions {
        PromptOptions {
            preset: self.prompt_preset.unwrap_or_default(),
            modality: match self.modality {
                Modality::Image => qval_methods::llm::Modality::Image,
                Modality::Text => qval_methods::llm::Modality::Text,
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
    /// Its parameters.
    pub params: Vec<ParamDoc>,
}

/// One parameter of a method type, for `qval methods` and for spotting a misspelt common key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamDoc {
    /// The key.
    pub name: &'static str,
    /// Its default, as written in a file (empty: none).
    pub default: String,
    /// What it means.
    pub meaning: &'static str,
}

impl ParamDoc {
    /// A parameter whose default is `default` (use the same constant the parameter type
    /// defaults to, so the default is written once).
    pub fn new(name: &'static str, default: impl std::fmt::Display, meaning: &'static str) -> Self {
        ParamDoc {
            name,
            default: default.to_string(),
            meaning,
        }
    }
}

/// The parameters of a type that takes none: an empty table, anything else refused.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Parses a resolved method's parameter table into `P` (serde, with its defaults), with
/// problems at the key they are about: the usual first line of [`MethodType::params`].
pub fn parse_params<P: serde::de::DeserializeOwned>(method: &ResolvedMethod) -> std::result::Result<P, SpecProblem> {
    spec::params(&method.params, &[])
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

/// A method type: parses an entry's parameters once into its own [`Params`](Self::Params),
/// says which prediction sets it produces, and builds the methods that produce them.
///
/// The registry holds it as a [`DynMethodType`] (implemented for every `MethodType`): register
/// `Arc::new(MyType)`.
///
/// # Example
/// ```
/// use qval_runner::methods::{
///     parse_params, BuildInput, MethodInfo, MethodType, ParamDoc, PointSet, ResolvedMethod,
/// };
/// use qval_runner::spec::SpecProblem;
/// use qval_core::{DenseSignalMethod, Signal};
/// use std::sync::Arc;
///
/// const SEED: u64 = 7;
///
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Params {
///     #[serde(default = "seed")]
///     seed: u64,
/// }
/// fn seed() -> u64 {
///     SEED
/// }
///
/// struct Noise;
///
/// #[async_trait::async_trait]
/// impl MethodType for Noise {
///     type Params = Params;
///     fn info(&self) -> MethodInfo {
///         MethodInfo {
///             family: "baseline",
///             summary: "seeded noise",
///             signals: vec![Signal::Q, Signal::V],
///             needs_backend: false,
///             needs_logprobs: false,
///             needs_scoring: false,
///             on: PointSet::Points,
///             params: vec![ParamDoc::new("seed", SEED, "the generator's seed")],
///         }
///     }
///     fn params(&self, m: &ResolvedMethod) -> Result<Params, SpecProblem> {
///         parse_params(m)
///     }
///     async fn build(
///         &self,
///         p: &Params,
///         input: BuildInput<'_>,
///     ) -> qval_runner::Result<Vec<Arc<dyn DenseSignalMethod>>> {
///         Ok(vec![Arc::new(qval_methods::RandomBaseline::new(p.seed, input.method.signal))])
///     }
/// }
/// assert_eq!(Noise.info().params[0].default, "7");
/// ```
#[async_trait]
pub trait MethodType: Send + Sync + 'static {
    /// The entry's own parameters, parsed and checked ([`NoParams`] for none).
    type Params: Send + Sync + 'static;

    /// What it is.
    fn info(&self) -> MethodInfo;

    /// Parses and checks the entry's own parameters (`method.params`), once, before any work
    /// starts; problems name the key they are about. Usually [`parse_params`] plus the
    /// checks serde cannot make.
    fn params(&self, method: &ResolvedMethod) -> std::result::Result<Self::Params, SpecProblem>;

    /// Checks the entry against the environment and the run's named backends, before any
    /// work starts (after [`params`](Self::params)). Default: nothing to check.
    fn check_plan(
        &self,
        params: &Self::Params,
        method: &ResolvedMethod,
        env: &dyn EnvPlugin,
        services: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem> {
        let _ = (params, method, env, services);
        Ok(())
    }

    /// The names of the prediction sets it produces (default: the method's name), so that a
    /// rerun skips an entry whose sets are all finished without building it.
    fn outputs(&self, params: &Self::Params, method: &ResolvedMethod) -> Vec<String> {
        let _ = params;
        vec![method.name.clone()]
    }

    /// Which points it scores with these parameters (default: [`MethodInfo::on`]).
    fn point_set(&self, params: &Self::Params) -> PointSet {
        let _ = params;
        self.info().on
    }

    /// Builds the methods, one per name of [`MethodType::outputs`], in that order.
    async fn build(&self, params: &Self::Params, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>>;
}

/// A method type as the registry holds it, its parameters type erased: implemented for
/// every [`MethodType`]. The runner calls [`parse`](Self::parse) once while planning and
/// keeps the result in the [`ResolvedMethod`]; the other calls read it from there.
#[async_trait]
pub trait DynMethodType: Send + Sync {
    /// What it is.
    fn info(&self) -> MethodInfo;
    /// [`MethodType::params`], kept in `method`.
    fn parse(&self, method: &mut ResolvedMethod) -> std::result::Result<(), SpecProblem>;
    /// [`MethodType::check_plan`] with the parsed parameters.
    fn check_plan(
        &self,
        method: &ResolvedMethod,
        env: &dyn EnvPlugin,
        services: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem>;
    /// [`MethodType::outputs`] with the parsed parameters.
    fn outputs(&self, method: &ResolvedMethod) -> Vec<String>;
    /// [`MethodType::point_set`] with the parsed parameters.
    fn point_set(&self, method: &ResolvedMethod) -> PointSet;
    /// [`MethodType::build`] with the parsed parameters.
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>>;
}

#[async_trait]
impl<T: MethodType> DynMethodType for T {
    fn info(&self) -> MethodInfo {
        MethodType::info(self)
    }
    fn parse(&self, method: &mut ResolvedMethod) -> std::result::Result<(), SpecProblem> {
        let p = self.params(method)?;
        method.parsed = Parsed(Some(Arc::new(p)));
        Ok(())
    }
    fn check_plan(
        &self,
        method: &ResolvedMethod,
        env: &dyn EnvPlugin,
        services: &dyn RunServices,
    ) -> std::result::Result<(), SpecProblem> {
        MethodType::check_plan(self, &*parsed(self, method)?, method, env, services)
    }
    fn outputs(&self, method: &ResolvedMethod) -> Vec<String> {
        match parsed(self, method) {
            Ok(p) => MethodType::outputs(self, &p, method),
            // Parameters that do not parse name no outputs: the method is refused when built.
            Err(_) => Vec::new(),
        }
    }
    fn point_set(&self, method: &ResolvedMethod) -> PointSet {
        match parsed(self, method) {
            Ok(p) => MethodType::point_set(self, &p),
            Err(_) => MethodType::info(self).on,
        }
    }
    async fn build(&self, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let p = parsed(self, input.method).map_err(SpecProblem::into_error)?;
        MethodType::build(self, &p, input).await
    }
}

/// The parameters `method` was planned with (parsed now if it was made otherwise, as one
/// read back from `run.json` is).
fn parsed<T: MethodType>(t: &T, method: &ResolvedMethod) -> std::result::Result<Arc<T::Params>, SpecProblem> {
    match method.parsed.0.clone().map(|a| a.downcast::<T::Params>()) {
        Some(Ok(p)) => Ok(p),
        _ => t.params(method).map(Arc::new),
    }
}

/// A method type from a closure building one method (no parameters), for a user's method:
/// `registry.method("my-method", simple("mine", |signal| Arc::new(My(signal))))`.
pub fn simple<F>(family: &'static str, f: F) -> Arc<dyn DynMethodType>
where
    F: Fn(Signal) -> Arc<dyn DenseSignalMethod> + Send + Sync + 'static,
{
    struct Simple<F> {
        family: &'static str,
        f: F,
    }
    #[async_trait]
    impl<F: Fn(Signal) -> Arc<dyn DenseSignalMethod> + Send + Sync + 'static> MethodType for Simple<F> {
        type Params = NoParams;
        fn info(&self) -> MethodInfo {
            MethodInfo {
                family: self.family,
                summary: "a method registered in code",
                signals: Signal::ALL.to_vec(),
                needs_backend: false,
                needs_logprobs: false,
                needs_scoring: false,
                on: PointSet::Points,
                params: vec![],
            }
        }
        fn params(&self, m: &ResolvedMethod) -> std::result::Result<NoParams, SpecProblem> {
            parse_params(m)
        }
        async fn build(&self, _: &NoParams, input: BuildInput<'_>) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
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
