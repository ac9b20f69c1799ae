//! An experiment checked against a registry before any work: the [`Plan`].

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::options::{BackendOverride, RunOptions};
use super::registry::Registry;
use super::services::{COMMAND_LINE, Services};
use super::stage::{Redo, Stage};
use crate::envs::EnvPlugin;
use crate::methods::{DynMethodType, MethodInfo, ResolvedMethod};
use crate::spec::{self, Experiment, LabelMethod, LabelSpec, MethodSpec, Seg, Source, SpecProblem, Typed, at};
use crate::{Result, RunnerError};
use qval_core::{Share, Signal};
use qval_methods::llm::{BackendEntry, load_backends};
use serde_json::{Value, json};

/// An experiment checked against a registry: everything a run needs, before any work.
pub struct Plan {
    /// The experiment as written (defaults filled by serde).
    pub experiment: Experiment,
    /// The environment.
    pub env: Arc<dyn EnvPlugin>,
    /// The collector.
    pub collector: Typed,
    /// The label sets.
    pub labels: Vec<ResolvedLabels>,
    /// The methods, expanded.
    pub methods: Vec<ResolvedMethod>,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Where this process writes: the run folder, or its shard's folder in it.
    pub work_dir: PathBuf,
    /// Folders and backends.
    pub services: Arc<Services>,
    /// Acting, when the experiment has an `[acting]` section.
    pub acting: Option<crate::acting::ResolvedActing>,
    /// pass@k, when the experiment has a `[passk]` section.
    pub passk: Option<crate::passk_spec::ResolvedPassk>,
    /// The rollout store label sets read and fill.
    pub rollout_store: PathBuf,
    pub(crate) registry: Registry,
    pub(crate) options: RunOptions,
}

/// A label set with every default resolved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolvedLabels {
    /// The set's name.
    pub name: String,
    /// The spec, with the reference policy filled in.
    pub spec: LabelSpec,
    /// Where it is in the file.
    #[serde(skip)]
    pub path: Vec<Seg>,
}

/// The folder of a shard in a run folder: `shards/I-of-N`.
pub fn shard_dir(run_dir: &Path, share: Share) -> PathBuf {
    run_dir
        .join("shards")
        .join(format!("{}-of-{}", share.index(), share.count()))
}

impl Plan {
    /// What methods are told about the setting: the environment's context (each method's
    /// entry adds its own, [`ResolvedMethod::context`]).
    pub fn method_context(&self) -> qval_core::MethodContext {
        self.env.method_context()
    }

    /// Checks `experiment` (read from `source`) against `registry`: every problem is an error
    /// naming the file, line and column, found before any work starts.
    ///
    /// # Errors
    /// [`RunnerError::Spec`] for anything wrong in the file; [`RunnerError::Usage`] for a bad
    /// command-line choice (an unknown `--only` method or `--backend`).
    pub fn new(experiment: Experiment, source: &Source, registry: &Registry, options: RunOptions) -> Result<Plan> {
        let e = &experiment;
        let at = At(source);
        // The bounds on every count first: nothing below allocates by a count unchecked.
        crate::limits::check(e).map_err(|p| at.err(p))?;
        let run_dir = options
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&e.name));
        let spec_dir = options.spec_dir.clone().unwrap_or_else(|| {
            source
                .file
                .parent()
                .map(Path::to_path_buf)
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from("."))
        });
        let (entries, forced) = backend_entries(e, &options, &spec_dir, &at)?;
        let work_dir = match options.shard {
            Some(share) => shard_dir(&run_dir, share),
            None => run_dir.clone(),
        };
        let services = Arc::new(Services {
            run_dir: work_dir.clone(),
            spec_dir,
            entries,
            built: Mutex::new(HashMap::new()),
        });
        let env = environment(e, registry, &services, &at)?;
        let collector = collector(e, &*env, &services, &at)?;
        let labels = label_sets(e, &*env, &services, &at)?;
        let scope = MethodScope {
            registry,
            env: &*env,
            services: &services,
            forced: forced.as_deref(),
            endpoint_given: matches!(options.backend, Some(BackendOverride::Endpoint { .. })),
            step_penalty: labels.iter().map(|l| l.spec.step_penalty).fold(0.0, f64::max),
            at: &at,
        };
        let methods = resolve_methods(e, &scope)?;
        // Everything stage 5 would refuse, refused now at its key.
        e.evaluate.config().map_err(|p| at.err(p))?;
        check_options(&options, &labels, &methods)?;
        let acting = match &e.acting {
            Some(a) => Some(
                crate::acting::resolve(
                    a,
                    e.seed,
                    &collector,
                    &methods,
                    |m| registry.methods[&m.kind].outputs(m).len(),
                    &*env,
                    &*services,
                )
                .map_err(|p| at.err(p))?,
            ),
            None => None,
        };
        let passk = match &e.passk {
            Some(p) => {
                let sets: Vec<(&str, &LabelSpec)> = labels.iter().map(|l| (l.name.as_str(), &l.spec)).collect();
                Some(crate::label_check::passk(p, &sets, &*env, &*services).map_err(|p| at.err(p))?)
            }
            None => None,
        };
        let rollout_store = match (&options.rollout_store, &e.rollout_store) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => services.spec_dir.join(dir),
            (None, None) => run_dir.join("rollouts"),
        };
        // Last: the file is valid, so steps (which may fill an environment's snapshot store
        // under the run folder) are taken only for a run that can start.
        if !options.skip_env_check {
            env.check(e.seed).map_err(|source| RunnerError::EnvironmentCheck {
                kind: e.environment.kind.clone(),
                source,
            })?;
        }
        if !crate::spec::is_plain_name(&e.name) && options.out.is_none() {
            return Err(at.err(SpecProblem::at(
                at!["name"],
                format!(
                    "`{}` cannot name the run folder runs/<name>: use letters, digits, `-`, `_` and `.` \
                     (or give --out)",
                    e.name
                ),
            )));
        }
        Ok(Plan {
            experiment,
            env,
            collector,
            labels,
            methods,
            run_dir,
            work_dir,
            services,
            acting,
            passk,
            rollout_store,
            registry: registry.clone(),
            options,
        })
    }

    /// Whether this invocation asks for `m` (every method, unless `--only`).
    pub(crate) fn wanted(&self, m: &ResolvedMethod) -> bool {
        self.options.only.is_empty() || self.options.only.iter().any(|o| m.answers_to(o))
    }

    pub(crate) fn method_type(&self, m: &ResolvedMethod) -> Arc<dyn DynMethodType> {
        self.registry.methods[&m.kind].clone()
    }

    /// The settings of each stage, as recorded in `run.json` and compared on a rerun.
    pub fn stage_settings(&self) -> BTreeMap<Stage, Value> {
        let e = &self.experiment;
        let mut out = BTreeMap::new();
        out.insert(
            Stage::Collect,
            json!({
                "environment": e.environment,
                "trajectories": e.dataset.trajectories,
                "collector": self.collector,
                "seed": e.seed,
            }),
        );
        out.insert(Stage::Sample, json!({ "sampling": e.dataset.sampling, "seed": e.seed }));
        for l in &self.labels {
            let mut s = serde_json::to_value(&l.spec).unwrap_or(Value::Null);
            if let Some(o) = s.as_object_mut() {
                o.remove("concurrency");
            }
            s["seed"] = json!(e.seed);
            out.insert(Stage::Label(l.name.clone()), s);
        }
        for m in &self.methods {
            let mut s = serde_json::to_value(m).unwrap_or(Value::Null);
            if let Some(b) = &m.backend
                && let Some(entry) = self.services.entries.get(b)
            {
                s["model"] = json!(entry.model);
            }
            s["seed"] = json!(e.seed);
            out.insert(Stage::Predict(m.name.clone()), s);
        }
        out
    }
}

/// Where problems are reported: the experiment file, with line and column.
struct At<'a>(&'a Source);

impl At<'_> {
    fn err(&self, p: SpecProblem) -> RunnerError {
        self.0.error(p)
    }

    /// A problem found inside the value at `base` (its path is relative to it).
    fn within(&self, base: Vec<Seg>, p: SpecProblem) -> RunnerError {
        let mut path = base;
        path.extend(p.path);
        self.0.error(SpecProblem::at(path, p.message))
    }
}

/// The backends an experiment's methods may use, by name: the file's, the backends file's
/// and the command line's; the one every LLM method is sent to (`--backend`), if any.
fn backend_entries(
    e: &Experiment,
    options: &RunOptions,
    spec_dir: &Path,
    at: &At<'_>,
) -> Result<(BTreeMap<String, BackendEntry>, Option<String>)> {
    let err = |p: SpecProblem| at.err(p);
    let within = |base: Vec<Seg>, p: SpecProblem| at.within(base, p);
    // Backends: the file's, the backends file's, and the command line's.
    let mut entries: BTreeMap<String, BackendEntry> = BTreeMap::new();
    if let Some(f) = &e.backends_file {
        let path = spec_dir.join(f);
        if !path.is_file() {
            return Err(err(SpecProblem::at(
                at!["backends_file"],
                format!("no such file: {}", path.display()),
            )));
        }
        entries.extend(load_backends(&path)?);
    }
    for (name, table) in &e.backends {
        let entry: BackendEntry = spec::params(table, &[]).map_err(|p| within(at!["backends", name.as_str()], p))?;
        entries.insert(name.clone(), entry);
    }
    // `--backend NAME` sends every LLM method to one backend; `--base-url/--model` keep
    // each backend's settings (log-probabilities, thinking, sampling) and replace only
    // where it is and which model it serves.
    let forced = match &options.backend {
        None => None,
        Some(BackendOverride::Named(n)) => {
            if !entries.contains_key(n) {
                let names: Vec<&str> = entries.keys().map(String::as_str).collect();
                return Err(RunnerError::Usage(format!(
                    "--backend: {}",
                    spec::unknown("backend", n, &names)
                )));
            }
            Some(n.clone())
        }
        Some(BackendOverride::Entry(name, entry)) => {
            entries.insert(name.clone(), entry.clone());
            Some(name.clone())
        }
        Some(BackendOverride::Endpoint {
            base_url,
            model,
            api_key_env,
        }) => {
            let readdress = |e: &BackendEntry| BackendEntry {
                base_url: base_url.clone(),
                model: model.clone(),
                api_key_env: api_key_env.clone().or_else(|| e.api_key_env.clone()),
                ..e.clone()
            };
            for e in entries.values_mut() {
                *e = readdress(e);
            }
            let default = entries
                .values()
                .next()
                .cloned()
                .unwrap_or_else(|| readdress(&BackendEntry::new(base_url.clone(), model.clone())));
            entries.insert(COMMAND_LINE.into(), default);
            None
        }
    };
    if options.reask_unparsed {
        for entry in entries.values_mut() {
            entry.reask_unparsed = true;
        }
    }
    Ok((entries, forced))
}

/// The environment, built by its registered factory.
fn environment(e: &Experiment, registry: &Registry, services: &Services, at: &At<'_>) -> Result<Arc<dyn EnvPlugin>> {
    let err = |p: SpecProblem| at.err(p);
    let within = |base: Vec<Seg>, p: SpecProblem| at.within(base, p);
    let factory = registry.envs.get(&e.environment.kind).ok_or_else(|| {
        let names: Vec<&str> = registry.envs.keys().map(String::as_str).collect();
        err(SpecProblem::at(
            at!["environment", "type"],
            spec::unknown("environment type", &e.environment.kind, &names),
        ))
    })?;
    factory(&e.environment.params, services).map_err(|p| within(at!["environment"], p))
}

/// The dataset's settings checked; the collector, resolved.
fn collector(e: &Experiment, env: &dyn EnvPlugin, services: &Services, at: &At<'_>) -> Result<Typed> {
    let err = |p: SpecProblem| at.err(p);
    let within = |base: Vec<Seg>, p: SpecProblem| at.within(base, p);
    let d = &e.dataset;
    if d.trajectories == 0 {
        return Err(err(SpecProblem::at(
            at!["dataset", "trajectories"],
            "0: give at least 1",
        )));
    }
    if d.concurrency == 0 {
        return Err(err(SpecProblem::at(
            at!["dataset", "concurrency"],
            "0: give at least 1",
        )));
    }
    if d.sampling.per_trajectory == 0 {
        return Err(err(SpecProblem::at(
            at!["dataset", "sampling", "per_trajectory"],
            "0: give at least 1",
        )));
    }
    let collector = d.collector.clone().unwrap_or_else(|| env.default_collector());
    env.check_policy(&collector, services)
        .map_err(|p| within(at!["dataset", "collector"], p))?;

    Ok(collector)
}

/// The label sets, checked, with their reference policies resolved.
fn label_sets(e: &Experiment, env: &dyn EnvPlugin, services: &Services, at: &At<'_>) -> Result<Vec<ResolvedLabels>> {
    let err = |p: SpecProblem| at.err(p);
    let within = |base: Vec<Seg>, p: SpecProblem| at.within(base, p);
    let mut labels: Vec<ResolvedLabels> = Vec::new();
    for (i, l) in e.labels.iter().enumerate() {
        let base = at!["labels", i];
        let name = l.resolved_name();
        let field = |k: &str| {
            let mut p = base.clone();
            p.push(Seg::Key(k.into()));
            p
        };
        if labels.iter().any(|x| x.name == name) {
            return Err(err(SpecProblem::at(
                base.clone(),
                format!("a second label set named `{name}`: give it another `name`"),
            )));
        }
        if l.rollouts == 0 {
            return Err(err(SpecProblem::at(field("rollouts"), "0: give at least 1")));
        }
        if l.concurrency == 0 {
            return Err(err(SpecProblem::at(field("concurrency"), "0: give at least 1")));
        }
        if let Some(g) = l.gamma
            && !(g > 0.0 && g <= 1.0)
        {
            return Err(err(SpecProblem::at(
                field("gamma"),
                format!("{g}: give a value in (0, 1]"),
            )));
        }
        if !(0.0..=1.0).contains(&l.max_aborted_share) {
            return Err(err(SpecProblem::at(
                field("max_aborted_share"),
                format!("{}: give a share in [0, 1]", l.max_aborted_share),
            )));
        }
        if !l.step_penalty.is_finite() {
            return Err(err(SpecProblem::at(field("step_penalty"), "give a finite number")));
        }
        if l.signal == Signal::ShapedReward && l.method != LabelMethod::Mvmc {
            return Err(err(SpecProblem::at(
                field("method"),
                format!(
                    "`{}`: shaped-reward labels are the trajectories' returns, made by no method; leave `method` out",
                    l.method.key()
                ),
            )));
        }
        let mcts_keys = [
            ("mcts_iterations", l.mcts_iterations.is_some()),
            ("mcts_expansion_width", l.mcts_expansion_width.is_some()),
            ("mcts_exploration_constant", l.mcts_exploration_constant.is_some()),
        ];
        if l.method == LabelMethod::Mcts {
            crate::label_check::mcts_config(l, e.seed).map_err(|p| within(base.clone(), p))?;
        } else if let Some((key, _)) = mcts_keys.iter().find(|(_, set)| *set) {
            return Err(err(SpecProblem::at(
                field(key),
                format!(
                    "`{key}` is a setting of `method = \"mcts\"`, not of `{}`",
                    l.method.key()
                ),
            )));
        }
        if l.method == LabelMethod::Exact {
            if env.exact_labeler(l.signal, l.gamma).is_none() {
                return Err(err(SpecProblem::at(
                    field("method"),
                    format!(
                        "environment `{}` computes no exact values: use `mvmc`",
                        e.environment.kind
                    ),
                )));
            }
            if l.step_penalty != 0.0 {
                return Err(err(SpecProblem::at(
                    field("step_penalty"),
                    "exact labels take no step penalty",
                )));
            }
        }
        let reference = l.reference.clone().unwrap_or_else(|| env.default_reference());
        env.check_policy(&reference, services)
            .map_err(|p| within(field("reference"), p))?;
        labels.push(ResolvedLabels {
            name,
            spec: LabelSpec {
                reference: Some(reference),
                ..l.clone()
            },
            path: base,
        });
    }
    if labels.is_empty() {
        return Err(err(SpecProblem::at(
            at!["labels"],
            "no label set: add a `[[labels]]` entry",
        )));
    }

    Ok(labels)
}

/// What the method entries are checked and expanded against.
struct MethodScope<'a> {
    registry: &'a Registry,
    env: &'a dyn EnvPlugin,
    services: &'a Services,
    /// `--backend NAME`: every LLM method's backend.
    forced: Option<&'a str>,
    /// `--base-url/--model`: an LLM method without a backend uses the command line's.
    endpoint_given: bool,
    /// The largest step penalty of the label sets (what prompts state or hint at).
    step_penalty: f64,
    at: &'a At<'a>,
}

/// Every method entry checked and expanded (one method per signal, backend, modality and
/// preset it lists).
fn resolve_methods(e: &Experiment, scope: &MethodScope<'_>) -> Result<Vec<ResolvedMethod>> {
    let mut methods: Vec<ResolvedMethod> = Vec::new();
    for (i, m) in e.methods.iter().enumerate() {
        for r in resolve_method(i, m, scope)? {
            if methods.iter().any(|x| x.name == r.name) {
                return Err(scope.at.err(SpecProblem::at(
                    r.path.clone(),
                    format!("a second method named `{}`: give one of them another `name`", r.name),
                )));
            }
            methods.push(r);
        }
    }
    Ok(methods)
}

/// One method entry checked and expanded.
fn resolve_method(i: usize, m: &MethodSpec, scope: &MethodScope<'_>) -> Result<Vec<ResolvedMethod>> {
    let (registry, env, services) = (scope.registry, scope.env, scope.services);
    let err = |p: SpecProblem| scope.at.err(p);
    let within = |base: Vec<Seg>, p: SpecProblem| scope.at.within(base, p);
    let type_names: Vec<&str> = registry.methods.keys().map(String::as_str).collect();
    let base = at!["methods", i];
    let field = |k: &str| {
        let mut p = base.clone();
        p.push(Seg::Key(k.into()));
        p
    };
    let t = registry.methods.get(&m.kind).ok_or_else(|| {
        err(SpecProblem::at(
            field("type"),
            spec::unknown("method type", &m.kind, &type_names),
        ))
    })?;
    let info = t.info();
    // A misspelt common key (`nmae`) lands among the type's parameters: say so.
    const COMMON: [&str; 15] = [
        "type",
        "name",
        "signal",
        "backend",
        "modality",
        "prompt_preset",
        "disclose_discount_factor",
        "include_next_state",
        "max_history_turns",
        "points",
        "policy_assumption",
        "disclose_step_penalty",
        "example_trajectories",
        "include_current_thoughts",
        "include_history_thoughts",
    ];
    for k in m.params.keys() {
        let own = info.params.iter().any(|p| p.name == k);
        if !own && let Some(close) = spec::did_you_mean(k, COMMON) {
            return Err(err(SpecProblem::at(
                field(k),
                format!("unknown key `{k}` (did you mean `{close}`?)"),
            )));
        }
    }
    let signals = m.signal.as_ref().map(|s| s.values()).unwrap_or_else(|| vec![Signal::Q]);
    let backends = method_backends(m, &info, scope, &base)?;
    for s in &signals {
        if !info.signals.contains(s) {
            return Err(err(SpecProblem::at(
                field("signal"),
                format!(
                    "`{}` does not estimate {}; it estimates {}",
                    m.kind,
                    s.key(),
                    info.signals.iter().map(|s| s.key()).collect::<Vec<_>>().join(", ")
                ),
            )));
        }
    }
    let variants = super::variants::prompt_variants(m, &info, &field).map_err(err)?;
    let mut settings = m.settings();
    if info.needs_backend {
        // What prompts state or hint at: the largest step penalty of the label sets.
        settings.step_penalty = crate::spec::Derived(Some(scope.step_penalty));
    }
    settings.examples =
        crate::spec::Derived(super::variants::examples_section(m, &services.spec_dir, &field).map_err(err)?);
    if m.points == Some(0) {
        return Err(err(SpecProblem::at(
            field("points"),
            "0: give at least 1 (or leave it out for all)",
        )));
    }
    let mut out = Vec::new();
    for s in &signals {
        for b in &backends {
            for v in &variants {
                let mut name = format!("{}-{}", m.name.clone().unwrap_or_else(|| m.kind.clone()), s.key());
                if backends.len() > 1
                    && let Some(b) = b
                {
                    name.push('@');
                    name.push_str(b);
                }
                name.push_str(&v.suffix);
                let mut r = ResolvedMethod {
                    name: name.clone(),
                    kind: m.kind.clone(),
                    signal: *s,
                    backend: b.clone(),
                    modality: v.modality,
                    prompt_preset: v.preset,
                    settings: crate::spec::MethodSettings {
                        policy_assumption: v.policy,
                        disclose_step_penalty: v.disclose_step_penalty,
                        include_current_thoughts: v.current_thoughts,
                        include_history_thoughts: v.history_thoughts,
                        ..settings.clone()
                    },
                    params: m.params.clone(),
                    path: base.clone(),
                    entry: m.name.clone().unwrap_or_else(|| m.kind.clone()),
                    parsed: Default::default(),
                };
                t.parse(&mut r).map_err(|p| within(base.clone(), p))?;
                t.check_plan(&r, env, services).map_err(|p| within(base.clone(), p))?;
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// The backends a method entry runs on (`[None]` for a method that uses none).
fn method_backends(
    m: &MethodSpec,
    info: &MethodInfo,
    scope: &MethodScope<'_>,
    base: &[Seg],
) -> Result<Vec<Option<String>>> {
    let err = |p: SpecProblem| scope.at.err(p);
    let field = |k: &str| {
        let mut p = base.to_vec();
        p.push(Seg::Key(k.into()));
        p
    };
    let (forced, endpoint_given) = (scope.forced, scope.endpoint_given);
    let backends: Vec<Option<String>> = match (&forced, &m.backend) {
        _ if !info.needs_backend => {
            if m.backend.is_some() {
                return Err(err(SpecProblem::at(
                    field("backend"),
                    format!("`{}` uses no LLM backend", m.kind),
                )));
            }
            vec![None]
        }
        (Some(f), _) => vec![Some(f.to_string())],
        (None, Some(b)) => b.values().into_iter().map(Some).collect(),
        (None, None) if endpoint_given => vec![Some(COMMAND_LINE.to_string())],
        (None, None) => {
            return Err(err(SpecProblem::at(
                base.to_vec(),
                format!(
                    "`{}` needs an LLM backend: add `backend = \"NAME\"` (a `[backends.NAME]` table or \
                     `backends_file`), or run with --base-url URL --model M",
                    m.kind
                ),
            )));
        }
    };
    for b in backends.iter().flatten() {
        let Some(entry) = scope.services.entries.get(b) else {
            let names: Vec<&str> = scope.services.entries.keys().map(String::as_str).collect();
            return Err(err(SpecProblem::at(
                field("backend"),
                spec::unknown("backend", b, &names),
            )));
        };
        if info.needs_logprobs && !entry.logprobs {
            return Err(err(SpecProblem::at(
                field("backend"),
                format!(
                    "`{}` reads log-probabilities, but backend `{b}` is not declared with `logprobs = true`",
                    m.kind
                ),
            )));
        }
        if info.needs_scoring && !entry.scoring {
            return Err(err(SpecProblem::at(
                field("backend"),
                format!(
                    "`{}` scores given continuations, but backend `{b}` lacks {}",
                    m.kind,
                    qval_llm::SCORING_CAPABILITY
                ),
            )));
        }
    }
    Ok(backends)
}

/// The command line's choices that name methods or stages (`--only`, `--redo`), checked
/// against the plan.
fn check_options(options: &RunOptions, labels: &[ResolvedLabels], methods: &[ResolvedMethod]) -> Result<()> {
    // --only takes a method's name (`distance-q`), its entry's name (`distance`) or its
    // type (`heuristic`).
    for o in &options.only {
        if !methods.iter().any(|m| m.answers_to(o)) {
            let mut names: Vec<String> = methods.iter().flat_map(|m| [m.name.clone(), m.entry.clone()]).collect();
            names.sort();
            names.dedup();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            return Err(RunnerError::Usage(format!(
                "--only: {}",
                spec::unknown("method", o, &names)
            )));
        }
    }
    for r in &options.redo {
        let (kind, name, names): (&str, &str, Vec<&str>) = match r {
            Redo::Stage(Stage::Label(n)) => ("label set", n, labels.iter().map(|l| l.name.as_str()).collect()),
            Redo::Stage(Stage::Predict(n)) => ("method", n, methods.iter().map(|m| m.name.as_str()).collect()),
            _ => continue,
        };
        if !names.contains(&name) {
            return Err(RunnerError::Usage(format!(
                "--redo {r}: {}",
                spec::unknown(kind, name, &names)
            )));
        }
    }
    Ok(())
}
