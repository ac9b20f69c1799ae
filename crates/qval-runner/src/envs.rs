//! Environments as the runner sees them: [`EnvPlugin`], a type-erased view of any
//! [`Environment`] with its policies, and [`TypedEnv`], which makes one from a typed
//! environment in a few lines.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::spec::{self, SpecProblem, Typed};
use qval_core::rollout::Rollouts;
use qval_core::{
    CollectConfig, DenseSignalMethod, EnvProfile, EnvSpec, Environment, EvaluationPoint, Labeler, MctsLabeler,
    MethodContext, MvmcConfig, MvmcLabeler, Policy, Share, Signal, StageOptions, Task, Trajectory,
};
use qval_methods::llm::{Backend, BackendEntry};

/// What a policy or environment factory may ask of the run: its folders and its backends.
pub trait RunServices: Send + Sync {
    /// The run folder (for stores an environment keeps, such as TerminalBench's snapshots).
    fn run_dir(&self) -> PathBuf;
    /// The folder of the experiment file (relative paths in it are relative to this).
    fn spec_dir(&self) -> PathBuf;
    /// The LLM backend of that name, with the run's cache and request log.
    ///
    /// # Errors
    /// An unknown name (the message says which backends exist), or a backend that cannot be
    /// built ([`RunnerError::Backend`](crate::RunnerError::Backend), with the client's error).
    fn backend(&self, name: &str) -> crate::Result<Arc<dyn Backend>>;
    /// The named backends as the experiment defines them (for clients other than chat, such
    /// as the embedding family's HTTP encoder). Default: none.
    fn backend_entries(&self) -> BTreeMap<String, BackendEntry> {
        BTreeMap::new()
    }
}

/// A type-erased environment with its policies: what the runner needs for stages 1 to 3,
/// ranking candidates and the environment's heuristics.
#[async_trait]
pub trait EnvPlugin: Send + Sync {
    /// The environment's spec (name, step budget, gamma, reward description).
    fn spec(&self) -> EnvSpec;
    /// The tasks trajectories cycle through.
    fn tasks(&self) -> Vec<Task>;
    /// The collector used when the experiment names none.
    fn default_collector(&self) -> Typed;
    /// The reference policy used when a label set names none.
    fn default_reference(&self) -> Typed;
    /// The policy types this environment offers.
    fn policy_types(&self) -> Vec<String>;
    /// Checks a policy choice (type and parameters) before any work starts.
    ///
    /// # Errors
    /// The problem, with a path relative to the policy's table.
    fn check_policy(&self, policy: &Typed, services: &dyn RunServices) -> std::result::Result<(), SpecProblem>;
    /// Stage 1 with `collector`, for the trajectories of `share`.
    async fn collect(
        &self,
        collector: &Typed,
        services: &dyn RunServices,
        config: &CollectConfig,
        share: Share,
        opts: &StageOptions,
    ) -> crate::Result<Vec<Trajectory>>;
    /// Stage 6, acting: `chooser` (told `ctx`) picks among `config.k` candidates that
    /// `actor` proposes, on `tasks`, the episodes of `share`, checkpointed as `opts` says.
    #[allow(clippy::too_many_arguments)]
    async fn act(
        &self,
        actor: &Typed,
        services: &dyn RunServices,
        chooser: &dyn qval_core::acting::Chooser,
        ctx: &MethodContext,
        tasks: &[Task],
        config: &qval_core::acting::ActingConfig,
        share: Share,
        opts: &StageOptions,
    ) -> crate::Result<Vec<qval_core::acting::Episode>>;
    /// A labeler rolling out `reference` (MVMC or a tree search), reading and keeping its
    /// rollouts, and counting its work, in `rollouts`.
    fn labeler(
        &self,
        reference: &Typed,
        services: &dyn RunServices,
        config: RolloutLabels,
        rollouts: Arc<Rollouts>,
    ) -> crate::Result<Arc<dyn Labeler>>;
    /// One point per task at its start (drawn with `seed`), with id `task:<task id>`: where
    /// fresh episodes for pass@k begin.
    fn initial_points(&self, seed: u64) -> crate::Result<Vec<EvaluationPoint>>;
    /// Ranking candidates for each point's state: one per legal action, or sampled as
    /// `spec` says (see [`crate::spec::CandidatesSpec`]).
    async fn expand_candidates(
        &self,
        points: &[EvaluationPoint],
        seed: u64,
        spec: &crate::spec::CandidatesSpec,
        services: &dyn RunServices,
    ) -> crate::Result<Vec<EvaluationPoint>>;
    /// The environment's hand-written heuristic for `signal`, if it has one.
    fn heuristic(&self, signal: Signal) -> Option<Arc<dyn DenseSignalMethod>>;
    /// The names of the environment's other heuristics (`variant = "NAME"`). Default: none.
    fn heuristic_variants(&self) -> Vec<String> {
        Vec::new()
    }
    /// The heuristic `variant` for `signal`, if the environment has it. Default: none.
    fn heuristic_variant(&self, variant: &str, signal: Signal) -> Option<Arc<dyn DenseSignalMethod>> {
        let _ = (variant, signal);
        None
    }
    /// Whether a collected trajectory reached the task's goal, as the environment defines it
    /// ([`Environment::succeeded`]).
    fn succeeded(&self, trajectory: &Trajectory) -> bool;
    /// Runs the conformance checks of [`qval_core::check_environment`] on a handful of states
    /// (two tasks, two walks of at most eight steps each): what the runner does before any
    /// work, unless [`RunOptions::skip_env_check`](crate::RunOptions::skip_env_check).
    ///
    /// # Errors
    /// The first check that fails, naming the environment.
    fn check(&self, seed: u64) -> qval_core::Result<()>;
    /// What the environment tells methods about itself ([`Environment::profile`]): the
    /// scoring family's wording, the embedding family's goal texts (for text and for
    /// pictures), whether observations carry pictures, how short prompt fields may be cut.
    /// Default: the generic profile.
    fn profile(&self) -> EnvProfile {
        EnvProfile::default()
    }
    /// Exact labels of `signal` (discounted by `gamma`, default the environment's), where the
    /// environment can compute them. Default: none.
    fn exact_labeler(&self, _signal: Signal, _gamma: Option<f64>) -> Option<Arc<dyn Labeler>> {
        None
    }
    /// What methods are told about the setting: the spec's facts and the
    /// [`profile`](Self::profile).
    fn method_context(&self) -> MethodContext {
        MethodContext::from_spec(&self.spec()).with_profile(self.profile())
    }
}

/// Builds a policy from its parameter table.
pub type PolicyFactory<E> =
    Arc<dyn Fn(&toml::Table, &dyn RunServices) -> std::result::Result<Arc<dyn Policy<E>>, SpecProblem> + Send + Sync>;

/// Builds an environment's heuristic for a signal.
pub type HeuristicFactory = Arc<dyn Fn(Signal) -> Option<Arc<dyn DenseSignalMethod>> + Send + Sync>;

/// How a rollout label set is made.
#[derive(Clone, Debug)]
pub enum RolloutLabels {
    /// Max-Value Monte Carlo.
    Mvmc(MvmcConfig),
    /// A tree search.
    Mcts(qval_core::MctsConfig),
}

/// Builds an environment's exact labeler for a signal and discount.
pub type ExactFactory = Arc<dyn Fn(Signal, Option<f64>) -> Arc<dyn Labeler> + Send + Sync>;

/// An [`EnvPlugin`] for any typed [`Environment`]: register its policies by name, name the
/// default collector and reference, optionally a heuristic. What methods are told about the
/// environment is its own [`Environment::profile`]. Every environment also gets the
/// `llm` policy (an LLM agent over a named backend: `{ type = "llm", backend = "NAME" }`).
///
/// ```
/// use qval_runner::envs::TypedEnv;
/// use qval_envs::frozenlake::{FrozenLake, OptimalPolicy};
/// use std::sync::Arc;
///
/// let env = Arc::new(FrozenLake::builder().preset_4x4().build().unwrap());
/// let optimal = Arc::new(OptimalPolicy::for_env(&env));
/// let plugin = TypedEnv::new(env)
///     .policy("optimal", move |_, _| Ok(optimal.clone()))
///     .defaults("optimal", "optimal");
/// assert_eq!(qval_runner::envs::EnvPlugin::policy_types(&plugin), vec!["llm", "optimal"]);
/// ```
pub struct TypedEnv<E: Environment> {
    env: Arc<E>,
    policies: BTreeMap<String, PolicyFactory<E>>,
    collector: String,
    reference: String,
    heuristic: Option<HeuristicFactory>,
    variants: BTreeMap<String, HeuristicFactory>,
    exact: Option<ExactFactory>,
    /// Tasks, walks per task and steps per walk of the conformance check.
    check: (usize, usize, usize),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmPolicyParams {
    backend: String,
    #[serde(default = "forty")]
    history_turns: usize,
}

fn forty() -> usize {
    40
}

impl<E: Environment + 'static> TypedEnv<E> {
    /// A plugin for `env` with only the `llm` policy.
    pub fn new(env: Arc<E>) -> Self {
        let mut policies: BTreeMap<String, PolicyFactory<E>> = BTreeMap::new();
        policies.insert(
            "llm".into(),
            Arc::new(|params, services| {
                let p: LlmPolicyParams = spec::params(params, &[])?;
                crate::limits::at_most(
                    crate::spec::at!["history_turns"],
                    p.history_turns,
                    crate::limits::MAX_STEPS,
                    "the largest step budget: no trajectory is longer",
                )?;
                let backend = services
                    .backend(&p.backend)
                    .map_err(|e| SpecProblem::at(crate::spec::at!["backend"], e.to_string()))?;
                let agent = qval_methods::llm::LlmAgent::new(backend).with_history_turns(p.history_turns);
                Ok(Arc::new(agent) as Arc<dyn Policy<E>>)
            }),
        );
        TypedEnv {
            env,
            policies,
            collector: "llm".into(),
            reference: "llm".into(),
            heuristic: None,
            variants: BTreeMap::new(),
            exact: None,
            check: (2, 2, 8),
        }
    }

    /// The size of the conformance check run before any work: `tasks` tasks, `walks` walks
    /// each, of at most `steps` steps (default 2, 2, 8; each step is taken three times).
    pub fn check_size(mut self, tasks: usize, walks: usize, steps: usize) -> Self {
        self.check = (tasks, walks, steps);
        self
    }

    /// The environment's exact labels (label sets with `method = "exact"`).
    pub fn exact<F>(mut self, f: F) -> Self
    where
        F: Fn(Signal, Option<f64>) -> Arc<dyn Labeler> + Send + Sync + 'static,
    {
        self.exact = Some(Arc::new(f));
        self
    }

    /// Registers a policy type.
    pub fn policy<F>(mut self, name: &str, factory: F) -> Self
    where
        F: Fn(&toml::Table, &dyn RunServices) -> std::result::Result<Arc<dyn Policy<E>>, SpecProblem>
            + Send
            + Sync
            + 'static,
    {
        self.policies.insert(name.into(), Arc::new(factory));
        self
    }

    /// The default collector and reference policy types.
    pub fn defaults(mut self, collector: &str, reference: &str) -> Self {
        self.collector = collector.into();
        self.reference = reference.into();
        self
    }

    /// The environment's heuristic method per signal.
    pub fn heuristic<F>(mut self, f: F) -> Self
    where
        F: Fn(Signal) -> Option<Arc<dyn DenseSignalMethod>> + Send + Sync + 'static,
    {
        self.heuristic = Some(Arc::new(f));
        self
    }

    /// Another heuristic of the environment, chosen by `variant = "NAME"` in a
    /// `heuristic` method entry.
    pub fn heuristic_variant<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(Signal) -> Option<Arc<dyn DenseSignalMethod>> + Send + Sync + 'static,
    {
        self.variants.insert(name.to_string(), Arc::new(f));
        self
    }

    fn build_policy(
        &self,
        p: &Typed,
        services: &dyn RunServices,
    ) -> std::result::Result<Arc<dyn Policy<E>>, SpecProblem> {
        let f = self.policies.get(&p.kind).ok_or_else(|| {
            let names: Vec<&str> = self.policies.keys().map(String::as_str).collect();
            SpecProblem::at(crate::spec::at!["type"], spec::unknown("policy type", &p.kind, &names))
        })?;
        f(&p.params, services)
    }
}

/// An environment builder's error, at the key it names.
fn env_problem(e: qval_envs::EnvsError) -> SpecProblem {
    match &e {
        qval_envs::EnvsError::InvalidParameter { name, .. } => SpecProblem::at(crate::spec::at![*name], e.to_string()),
        _ => SpecProblem::at(vec![], e.to_string()),
    }
}

#[async_trait]
impl<E: Environment + 'static> EnvPlugin for TypedEnv<E> {
    fn spec(&self) -> EnvSpec {
        self.env.spec().clone()
    }

    fn tasks(&self) -> Vec<Task> {
        self.env.tasks()
    }

    fn default_collector(&self) -> Typed {
        Typed::named(&self.collector)
    }

    fn default_reference(&self) -> Typed {
        Typed::named(&self.reference)
    }

    fn policy_types(&self) -> Vec<String> {
        self.policies.keys().cloned().collect()
    }

    fn check_policy(&self, policy: &Typed, services: &dyn RunServices) -> std::result::Result<(), SpecProblem> {
        self.build_policy(policy, services).map(|_| ())
    }

    async fn collect(
        &self,
        collector: &Typed,
        services: &dyn RunServices,
        config: &CollectConfig,
        share: Share,
        opts: &StageOptions,
    ) -> crate::Result<Vec<Trajectory>> {
        let policy = self
            .build_policy(collector, services)
            .map_err(SpecProblem::into_error)?;
        Ok(qval_core::collect_share(&*self.env, &*policy, &self.env.tasks(), config, share, opts).await?)
    }

    async fn act(
        &self,
        actor: &Typed,
        services: &dyn RunServices,
        chooser: &dyn qval_core::acting::Chooser,
        ctx: &MethodContext,
        tasks: &[Task],
        config: &qval_core::acting::ActingConfig,
        share: Share,
        opts: &StageOptions,
    ) -> crate::Result<Vec<qval_core::acting::Episode>> {
        let policy = self.build_policy(actor, services).map_err(SpecProblem::into_error)?;
        Ok(qval_core::acting::act(&*self.env, &*policy, chooser, tasks, ctx, config, share, opts).await?)
    }

    fn labeler(
        &self,
        reference: &Typed,
        services: &dyn RunServices,
        config: RolloutLabels,
        rollouts: Arc<Rollouts>,
    ) -> crate::Result<Arc<dyn Labeler>> {
        let policy = Arc::new(
            self.build_policy(reference, services)
                .map_err(SpecProblem::into_error)?,
        );
        Ok(match config {
            RolloutLabels::Mvmc(c) => Arc::new(MvmcLabeler::new(self.env.clone(), policy, c).with_rollouts(rollouts)),
            RolloutLabels::Mcts(c) => Arc::new(MctsLabeler::new(self.env.clone(), policy, c).with_counts(rollouts)),
        })
    }

    fn initial_points(&self, seed: u64) -> crate::Result<Vec<EvaluationPoint>> {
        let env = &*self.env;
        env.tasks()
            .into_iter()
            .map(|task| {
                let mut rng =
                    qval_core::seed::rng_for(seed, &[qval_core::seed::stable_hash(&format!("task:{}", task.id))]);
                let state = env.reset(&task, &mut rng)?;
                Ok(EvaluationPoint::at_start(env, task, &state)?)
            })
            .collect()
    }

    async fn expand_candidates(
        &self,
        points: &[EvaluationPoint],
        seed: u64,
        spec: &crate::spec::CandidatesSpec,
        services: &dyn RunServices,
    ) -> crate::Result<Vec<EvaluationPoint>> {
        use qval_methods::prompting::{CandidateProposer, LlmProposer, PolicyProposer, sample_candidates};
        let within = |p: SpecProblem| {
            let mut at = crate::spec::at!["dataset", "candidates", "sampler"];
            at.extend(p.path.clone());
            SpecProblem::at(at, p.message).into_error()
        };
        let Some(sampler) = &spec.sampler else {
            return qval_methods::prompting::expand_candidates(&*self.env, points, seed, Some(spec.k)).map_err(|e| {
                crate::RunnerError::Usage(format!(
                    "{e}; sample candidates instead with `[dataset] candidates = {{ sampler = {{ type = \"llm\", \
                     backend = \"NAME\" }} }}`"
                ))
            });
        };
        let proposer: Box<dyn CandidateProposer<E>> = if sampler.kind == "llm" {
            let name = sampler.params.get("backend").and_then(|v| v.as_str()).ok_or_else(|| {
                within(SpecProblem::at(
                    crate::spec::at!["backend"],
                    "the llm sampler needs `backend = \"NAME\"`",
                ))
            })?;
            let backend = services.backend(name)?;
            Box::new(LlmProposer::new(backend))
        } else {
            Box::new(PolicyProposer::new(
                self.build_policy(sampler, services).map_err(within)?,
            ))
        };
        Ok(sample_candidates(&*self.env, points, &*proposer, spec.k, seed, 8).await?)
    }

    fn heuristic(&self, signal: Signal) -> Option<Arc<dyn DenseSignalMethod>> {
        self.heuristic.as_ref().and_then(|f| f(signal))
    }

    fn heuristic_variants(&self) -> Vec<String> {
        self.variants.keys().cloned().collect()
    }

    fn heuristic_variant(&self, variant: &str, signal: Signal) -> Option<Arc<dyn DenseSignalMethod>> {
        self.variants.get(variant).and_then(|f| f(signal))
    }

    fn succeeded(&self, trajectory: &Trajectory) -> bool {
        self.env.succeeded(trajectory)
    }

    fn check(&self, seed: u64) -> qval_core::Result<()> {
        let (tasks, walks, steps) = self.check;
        qval_core::check_environment_on(&*self.env, tasks, walks, steps, seed)
    }

    fn profile(&self) -> EnvProfile {
        self.env.profile()
    }

    fn exact_labeler(&self, signal: Signal, gamma: Option<f64>) -> Option<Arc<dyn Labeler>> {
        self.exact.as_ref().map(|f| f(signal, gamma))
    }
}

/// Builds an environment from its table in the experiment file.
pub type EnvFactory =
    Arc<dyn Fn(&toml::Table, &dyn RunServices) -> std::result::Result<Arc<dyn EnvPlugin>, SpecProblem> + Send + Sync>;

/// FrozenLake's parameters in an experiment file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FrozenLakeParams {
    /// Random maps (default 8), or `"published"` (the published 8x8 maps), unless `preset`
    /// or `rows` is given.
    #[serde(default)]
    maps: Option<MapsParam>,
    /// `"published"`: with the published maps, the published dataset's 50 tasks in its
    /// collection order (trajectory t plays the map its published trajectory t played).
    #[serde(default)]
    tasks: Option<String>,
    /// Their size (default 8).
    #[serde(default)]
    size: Option<usize>,
    /// Their seed (default 42) for qval's own draw; the published maps are `maps = "published"`.
    #[serde(default)]
    map_seed: Option<u64>,
    /// `4x4` or `8x8`.
    #[serde(default)]
    preset: Option<String>,
    /// A map given as rows of S, F, H, G.
    #[serde(default)]
    rows: Option<Vec<String>>,
    #[serde(default)]
    slippery: bool,
    #[serde(default = "thirty")]
    max_steps: usize,
    #[serde(default = "gamma")]
    gamma: f64,
    /// `text` or `image` (text and a PNG rendering).
    #[serde(default = "text")]
    observation: String,
    #[serde(default = "five_twelve")]
    image_size: u32,
}

/// `maps = 8` (random maps) or `maps = "published"`.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum MapsParam {
    Count(usize),
    Named(String),
}

fn thirty() -> usize {
    30
}
fn gamma() -> f64 {
    0.95
}
fn text() -> String {
    "text".into()
}
fn five_twelve() -> u32 {
    512
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EpsilonParams {
    #[serde(default = "point_one")]
    epsilon: f64,
}

fn point_one() -> f64 {
    0.1
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// FrozenLake: `frozenlake` in experiment files. Policies `epsilon-greedy` (default collector,
/// `epsilon` 0.1), `optimal` (default reference), `uniform`, `llm`; heuristic: distance;
/// exact labels of the reference policy.
pub fn frozenlake(params: &toml::Table, _: &dyn RunServices) -> std::result::Result<Arc<dyn EnvPlugin>, SpecProblem> {
    use qval_envs::frozenlake::{
        EpsilonGreedy, FrozenLake, FrozenLakeDistance, FrozenLakeManhattan, ObservationMode, OptimalPolicy,
        UniformPolicy,
    };
    let p: FrozenLakeParams = spec::params(params, &[])?;
    let bounded = |key: &str, v: usize, lo: usize, hi: usize| {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(SpecProblem::at(
                crate::spec::at![key],
                format!("{v}: give a value in [{lo}, {hi}]"),
            ))
        }
    };
    let size = p.size.unwrap_or(8);
    bounded("size", size, 2, 64)?;
    let published = match &p.maps {
        Some(MapsParam::Named(name)) if name == "published" => true,
        Some(MapsParam::Named(other)) => {
            return Err(SpecProblem::at(
                crate::spec::at!["maps"],
                format!("`{other}`: give a number of random maps or \"published\""),
            ));
        }
        _ => false,
    };
    let count = match &p.maps {
        Some(MapsParam::Count(n)) => *n,
        _ => 8,
    };
    bounded("maps", count, 1, 1000)?;
    bounded("max_steps", p.max_steps, 1, crate::limits::MAX_STEPS)?;
    bounded("image_size", p.image_size as usize, 16, 4096)?;
    let mut b = FrozenLake::builder()
        .slippery(p.slippery)
        .max_steps(p.max_steps)
        .gamma(p.gamma)
        .image_size(p.image_size);
    b = match p.observation.as_str() {
        "text" => b.observation(ObservationMode::Text),
        "image" => b.observation(ObservationMode::TextAndImage),
        other => {
            return Err(SpecProblem::at(
                crate::spec::at!["observation"],
                spec::unknown("observation", other, &["text", "image"]),
            ));
        }
    };
    if published {
        for (key, given) in [("size", p.size.is_some()), ("map_seed", p.map_seed.is_some())] {
            if given {
                return Err(SpecProblem::at(
                    crate::spec::at![key],
                    format!("`{key}` is for qval's own random maps: the published maps are fixed"),
                ));
            }
        }
    }
    match p.tasks.as_deref() {
        None => {}
        Some("published") if published => {}
        Some("published") => {
            return Err(SpecProblem::at(
                crate::spec::at!["tasks"],
                "the published tasks play the published maps: add `maps = \"published\"`",
            ));
        }
        Some(other) => {
            return Err(SpecProblem::at(
                crate::spec::at!["tasks"],
                spec::unknown("tasks", other, &["published"]),
            ));
        }
    }
    let chosen = [p.maps.is_some(), p.preset.is_some(), p.rows.is_some()];
    if chosen.iter().filter(|c| **c).count() > 1 {
        return Err(SpecProblem::at(
            crate::spec::at!["maps"],
            "give one of `maps` (random maps), `preset` or `rows`",
        ));
    }
    b = match (&p.preset, &p.rows) {
        (Some(name), _) => match name.as_str() {
            "4x4" => b.preset_4x4(),
            "8x8" => b.preset_8x8(),
            other => {
                return Err(SpecProblem::at(
                    crate::spec::at!["preset"],
                    spec::unknown("preset", other, &["4x4", "8x8"]),
                ));
            }
        },
        (None, Some(rows)) => b.map(rows),
        (None, None) if published && p.tasks.is_some() => b.published_tasks(),
        (None, None) if published => b.published_maps(),
        (None, None) => b.random_maps(count, size, p.map_seed.unwrap_or(42)),
    };
    let env = Arc::new(b.build().map_err(env_problem)?);
    let for_optimal = env.clone();
    let for_epsilon = env.clone();
    let for_exact = env.clone();
    let plugin = TypedEnv::new(env)
        .policy("optimal", move |params, _| {
            let _: NoParams = spec::params(params, &[])?;
            Ok(Arc::new(OptimalPolicy::for_env(&for_optimal)) as Arc<dyn Policy<FrozenLake>>)
        })
        .policy("epsilon-greedy", move |params, _| {
            let p: EpsilonParams = spec::params(params, &[])?;
            let policy = EpsilonGreedy::new(&for_epsilon, p.epsilon)
                .map_err(|e| SpecProblem::at(crate::spec::at!["epsilon"], e.to_string()))?;
            Ok(Arc::new(policy) as Arc<dyn Policy<FrozenLake>>)
        })
        .policy("uniform", |params, _| {
            let _: NoParams = spec::params(params, &[])?;
            Ok(Arc::new(UniformPolicy) as Arc<dyn Policy<FrozenLake>>)
        })
        .defaults("epsilon-greedy", "optimal")
        .heuristic(|signal| Some(Arc::new(FrozenLakeDistance::new(signal)) as Arc<dyn DenseSignalMethod>))
        .heuristic_variant("manhattan", |signal| {
            Some(Arc::new(FrozenLakeManhattan::new(signal)) as Arc<dyn DenseSignalMethod>)
        })
        .exact(move |signal, gamma| {
            Arc::new(qval_envs::frozenlake::ExactLabeler::new(
                for_exact.clone(),
                signal,
                gamma,
            )) as Arc<dyn Labeler>
        });
    Ok(Arc::new(plugin))
}

/// A Python environment's parameters in an experiment file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PythonParams {
    /// `module:Class` or `path/to/adapter.py:Class` (relative to the experiment file).
    adapter: String,
    /// Keyword arguments of the adapter.
    #[serde(default)]
    args: toml::Table,
    /// Worker processes (default 1).
    #[serde(default = "one")]
    workers: usize,
    /// Seconds a worker has to answer one request (default 30).
    #[serde(default = "thirty_f")]
    timeout_secs: f64,
    /// The Python interpreter (default `python3`).
    #[serde(default)]
    python: Option<PathBuf>,
}

fn one() -> usize {
    1
}
fn thirty_f() -> f64 {
    30.0
}

/// A Python environment through the bridge: `python` in experiment files (see
/// [`qval_envs::python`]). Policies `reference` (the adapter's, when it has one; the default
/// reference), `epsilon-greedy` (default collector when there is a reference, `epsilon` 0.1),
/// `uniform`, `llm`; exact labels when the adapter computes exact values.
pub fn python(
    params: &toml::Table,
    services: &dyn RunServices,
) -> std::result::Result<Arc<dyn EnvPlugin>, SpecProblem> {
    use qval_envs::python::{EpsilonGreedy, ExactLabeler, PythonEnv, ReferencePolicy, UniformPolicy};
    let p: PythonParams = spec::params(params, &[])?;
    let mut adapter = p.adapter.clone();
    if let Some((file, class)) = p.adapter.rsplit_once(':')
        && file.ends_with(".py")
        && std::path::Path::new(file).is_relative()
    {
        adapter = format!("{}:{class}", services.spec_dir().join(file).display());
    }
    if !(p.timeout_secs > 0.0 && p.timeout_secs <= 86_400.0) {
        return Err(SpecProblem::at(
            crate::spec::at!["timeout_secs"],
            format!("{}: give seconds in (0, 86400]", p.timeout_secs),
        ));
    }
    let args = serde_json::to_value(&p.args).map_err(|e| SpecProblem::at(crate::spec::at!["args"], e.to_string()))?;
    let mut b = PythonEnv::builder(adapter)
        .args(args)
        .workers(p.workers)
        .timeout(std::time::Duration::from_secs_f64(p.timeout_secs));
    if let Some(py) = &p.python {
        b = b.python(py);
    }
    let env = Arc::new(b.build().map_err(env_problem)?);
    let has_reference = env.has_reference();
    let for_exact = env.clone();
    let mut plugin = TypedEnv::new(env.clone())
        .policy("epsilon-greedy", |params, _| {
            let p: EpsilonParams = spec::params(params, &[])?;
            let policy = EpsilonGreedy::new(p.epsilon)
                .map_err(|e| SpecProblem::at(crate::spec::at!["epsilon"], e.to_string()))?;
            Ok(Arc::new(policy) as Arc<dyn Policy<PythonEnv>>)
        })
        .policy("uniform", |params, _| {
            let _: NoParams = spec::params(params, &[])?;
            Ok(Arc::new(UniformPolicy) as Arc<dyn Policy<PythonEnv>>)
        });
    if has_reference {
        plugin = plugin
            .policy("reference", |params, _| {
                let _: NoParams = spec::params(params, &[])?;
                Ok(Arc::new(ReferencePolicy) as Arc<dyn Policy<PythonEnv>>)
            })
            .defaults("epsilon-greedy", "reference");
    } else {
        plugin = plugin.defaults("uniform", "llm");
    }
    if env.has_exact() {
        plugin = plugin.exact(move |signal, gamma| {
            Arc::new(ExactLabeler::new(for_exact.clone(), signal, gamma)) as Arc<dyn Labeler>
        });
    }
    Ok(Arc::new(plugin))
}

/// TerminalBench's parameters in an experiment file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalBenchParams {
    /// A folder of tasks, Harbor's or the Terminal-Bench layout (default: the shipped tasks).
    #[serde(default, alias = "tasks")]
    tasks_dir: Option<PathBuf>,
    /// `auto` (bubblewrap where it can, containers where a task needs them),
    /// `bubblewrap`, or `container`.
    #[serde(default)]
    runtime: Option<RuntimeParam>,
    /// The image the tasks' Dockerfiles build from (`QVAL_BASE_IMAGE`).
    #[serde(default)]
    base_image: Option<String>,
    /// Whether tasks that ask for the network get it (default false).
    #[serde(default)]
    allow_internet: Option<bool>,
    /// The largest fraction of tasks that may be left out because they cannot run.
    #[serde(default)]
    max_unrunnable: Option<f64>,
    /// How container steps reach bash: `exec` (default) or `tmux`.
    #[serde(default)]
    shell: Option<ShellParam>,
    /// How container steps restore a state: `snapshot` (default) or `replay`.
    #[serde(default)]
    restore: Option<RestoreParam>,
    /// The container engine: `podman` or `docker` (default: whichever answers, podman first).
    #[serde(default)]
    engine: Option<EngineParam>,
    /// Only these task ids.
    #[serde(default)]
    only: Option<Vec<String>>,
    #[serde(default)]
    max_steps: Option<usize>,
    #[serde(default)]
    gamma: Option<f64>,
    /// Seconds a command may run.
    #[serde(default)]
    command_timeout: Option<f64>,
}

/// `runtime` of a TerminalBench experiment.
#[derive(serde::Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RuntimeParam {
    Auto,
    Bubblewrap,
    Container,
}

/// `shell` of a TerminalBench experiment.
#[derive(serde::Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ShellParam {
    Exec,
    Tmux,
}

/// `engine` of a TerminalBench experiment.
#[derive(serde::Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum EngineParam {
    Podman,
    Docker,
}

/// `restore` of a TerminalBench experiment.
#[derive(serde::Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum RestoreParam {
    Snapshot,
    Replay,
}

/// TerminalBench: `terminalbench` in experiment files. Policies `noisy` (default collector,
/// `epsilon` 0.1), `oracle` (default reference: the task's solution script, then SUBMIT), `llm`;
/// heuristic: the shell heuristic (Q). Snapshots are stored under the run folder.
pub fn terminalbench(
    params: &toml::Table,
    services: &dyn RunServices,
) -> std::result::Result<Arc<dyn EnvPlugin>, SpecProblem> {
    use qval_envs::terminalbench::{
        EngineKind, NoisyScripted, OracleSolution, Restore, RuntimeChoice, Shell, ShellHeuristic, TerminalBench,
    };
    let p: TerminalBenchParams = spec::params(params, &[])?;
    let mut b = TerminalBench::builder().store_dir(services.run_dir().join("store"));
    if let Some(dir) = &p.tasks_dir {
        let dir = services.spec_dir().join(dir);
        if !dir.is_dir() {
            return Err(SpecProblem::at(
                crate::spec::at!["tasks_dir"],
                format!("no such folder: {}", dir.display()),
            ));
        }
        b = b.tasks_dir(dir);
    }
    if let Some(only) = &p.only {
        b = b.only(only.iter().cloned());
    }
    if let Some(r) = p.runtime {
        b = b.runtime(match r {
            RuntimeParam::Auto => RuntimeChoice::Auto,
            RuntimeParam::Bubblewrap => RuntimeChoice::Bubblewrap,
            RuntimeParam::Container => RuntimeChoice::Container,
        });
    }
    if let Some(image) = p.base_image.or_else(|| std::env::var("QVAL_BASE_IMAGE").ok()) {
        b = b.base_image(image);
    }
    if let Some(shell) = p.shell {
        b = b.shell(match shell {
            ShellParam::Exec => Shell::Exec,
            ShellParam::Tmux => Shell::Tmux,
        });
    }
    if let Some(restore) = p.restore {
        if restore == RestoreParam::Replay && !matches!(p.runtime, Some(RuntimeParam::Container)) {
            return Err(SpecProblem::at(
                crate::spec::at!["restore"],
                "replaying commands needs runtime = \"container\"",
            ));
        }
        b = b.restore(match restore {
            RestoreParam::Snapshot => Restore::Snapshot,
            RestoreParam::Replay => Restore::Replay,
        });
    }
    if let Some(engine) = p.engine {
        if matches!(p.runtime, Some(RuntimeParam::Bubblewrap)) {
            return Err(SpecProblem::at(
                crate::spec::at!["engine"],
                "a container engine with runtime = \"bubblewrap\": give runtime = \"container\" or \"auto\"",
            ));
        }
        b = b.engine(match engine {
            EngineParam::Podman => EngineKind::Podman,
            EngineParam::Docker => EngineKind::Docker,
        });
    }
    if let Some(yes) = p.allow_internet {
        b = b.allow_internet(yes);
    }
    if let Some(f) = p.max_unrunnable {
        if !(0.0..=1.0).contains(&f) {
            return Err(SpecProblem::at(
                crate::spec::at!["max_unrunnable"],
                format!("{f}: give a fraction of the tasks in [0, 1]"),
            ));
        }
        b = b.max_unrunnable(f);
    }
    if let Some(n) = p.max_steps {
        crate::limits::at_most(
            crate::spec::at!["max_steps"],
            n,
            crate::limits::MAX_STEPS,
            "every step runs a command in a sandbox, and its state is kept",
        )?;
        b = b.max_steps(n);
    }
    if let Some(g) = p.gamma {
        b = b.gamma(g);
    }
    if let Some(t) = p.command_timeout {
        if !(t > 0.0 && t < 86_400.0) {
            return Err(SpecProblem::at(
                crate::spec::at!["command_timeout"],
                format!("{t}: give seconds in (0, 86400)"),
            ));
        }
        b = b.command_timeout(std::time::Duration::from_secs_f64(t));
    }
    let env = Arc::new(b.build().map_err(env_problem)?);
    for (id, why) in env.unrunnable() {
        eprintln!("terminalbench: task {id} left out: {why}");
    }
    let builds = env.image_builds();
    if !builds.is_empty() {
        let (fresh, cached): (Vec<_>, Vec<_>) = builds.iter().partition(|(_, b)| b.fresh);
        let secs =
            |v: &[&(&str, &qval_envs::terminalbench::container::Built)]| v.iter().fold(0.0, |a, (_, b)| a + b.seconds);
        eprintln!(
            "terminalbench: {} task images: {} built ({:.1} s), {} cached ({:.2} s)",
            builds.len(),
            fresh.len(),
            secs(&fresh),
            cached.len(),
            secs(&cached)
        );
    }
    // A container step costs about 0.4 s: a smaller check (18 steps, not 96) where they run.
    let in_containers = env.tasks().iter().any(|t| env.image(&t.id).is_some());
    let plugin = TypedEnv::new(env)
        .check_size(2, if in_containers { 1 } else { 2 }, if in_containers { 3 } else { 8 })
        .policy("oracle", |params, _| {
            let _: NoParams = spec::params(params, &[])?;
            Ok(Arc::new(OracleSolution) as Arc<dyn Policy<TerminalBench>>)
        })
        .policy("noisy", |params, _| {
            let p: EpsilonParams = spec::params(params, &[])?;
            let policy = NoisyScripted::new(p.epsilon)
                .map_err(|e| SpecProblem::at(crate::spec::at!["epsilon"], e.to_string()))?;
            Ok(Arc::new(policy) as Arc<dyn Policy<TerminalBench>>)
        })
        .defaults("noisy", "oracle")
        .heuristic(|signal| (signal == Signal::Q).then(|| Arc::new(ShellHeuristic) as Arc<dyn DenseSignalMethod>));
    Ok(Arc::new(plugin))
}
