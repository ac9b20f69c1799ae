//! The runner: turns an [`Experiment`] into a [`Plan`] (everything checked before any work),
//! then runs its stages in a run folder, resumably, doing only what is not finished.
//!
//! ## The run folder
//! ```text
//! run.json                   the resolved experiment, versions, seeds, and each stage's settings
//! trajectories.jsonl         stage 1
//! points.jsonl               stage 2
//! candidates.jsonl           ranking candidates (when a ranking method is planned)
//! labels/<set>.jsonl         stage 3 (labels/ranking-<set>.jsonl for the candidates)
//! predictions/<method>.jsonl stage 4
//! methods/<method>/          generated code, Eureka rounds
//! summary.json, summary.md, summary_plots/   stage 5
//! llm-cache/, llm-requests.jsonl             LLM responses and the request log
//! ```
//!
//! A rerun reads `run.json`: a finished stage whose settings are unchanged is skipped (a
//! method whose predictions are finished is not even built); a finished stage whose settings
//! changed is refused, naming the setting, unless `--redo` names the stage; new label sets
//! and methods run alone. An interrupted stage resumes from its checkpoint.

use indicatif::HumanCount;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::envs::{EnvFactory, EnvPlugin, RunServices};
use crate::methods::{BuildInput, MethodInfo, MethodType, PointSet, ResolvedMethod};
use crate::spec::{self, Experiment, LabelSpec, MethodSpec, Seg, Source, SpecProblem, Typed};
use crate::{Result, RunnerError, at};
use qval_core::io::write_atomic;
use qval_core::stage::{fingerprint, layout};
use qval_core::{
    CollectConfig, DenseSignalMethod, EvaluationPoint, LabelConfig, MethodContext, MvmcConfig, SampleConfig, Share,
    Signal, StageOptions, Strategy, Trajectory,
};
use qval_methods::llm::{Backend, BackendEntry, UsageCounter, load_backends};
use qval_metrics::{EvaluateConfig, LabelSet, PredictionSet};

mod manifest;
mod plan;
mod services;
mod stage;
mod stages;

pub use manifest::*;
pub use plan::*;
pub use services::*;
pub use stage::{Redo, Stage};
use stages::{Candidates, Inputs, Run};

/// The environment and method types experiment files can name: the built-in ones and any a
/// user registers in code.
#[derive(Clone)]
pub struct Registry {
    envs: BTreeMap<String, EnvFactory>,
    methods: BTreeMap<String, Arc<dyn MethodType>>,
}

impl Registry {
    /// The built-in environments (`frozenlake`, `python`, `terminalbench`) and method types.
    pub fn builtin() -> Self {
        let mut r = Registry {
            envs: BTreeMap::new(),
            methods: BTreeMap::new(),
        };
        r.envs.insert("frozenlake".into(), Arc::new(crate::envs::frozenlake));
        r.envs.insert("python".into(), Arc::new(crate::envs::python));
        r.envs
            .insert("terminalbench".into(), Arc::new(crate::envs::terminalbench));
        for (name, t) in crate::methods::builtin() {
            r.methods.insert(name.into(), t);
        }
        r
    }

    /// Registers (or replaces) an environment type.
    pub fn environment<F>(mut self, name: &str, factory: F) -> Self
    where
        F: Fn(&toml::Table, &dyn RunServices) -> std::result::Result<Arc<dyn EnvPlugin>, SpecProblem>
            + Send
            + Sync
            + 'static,
    {
        self.envs.insert(name.into(), Arc::new(factory));
        self
    }

    /// Registers (or replaces) a method type.
    pub fn method(mut self, name: &str, t: Arc<dyn MethodType>) -> Self {
        self.methods.insert(name.into(), t);
        self
    }

    /// The method types, by name.
    pub fn method_types(&self) -> &BTreeMap<String, Arc<dyn MethodType>> {
        &self.methods
    }

    /// The environment type names.
    pub fn environment_types(&self) -> Vec<String> {
        self.envs.keys().cloned().collect()
    }
}

/// Where LLM methods send their requests when the command line overrides the file.
#[derive(Clone, Debug)]
pub enum BackendOverride {
    /// Every LLM method uses this backend of the experiment's `[backends]`.
    Named(String),
    /// Every LLM method uses this backend entry (from a backends file), under its name.
    Entry(String, BackendEntry),
    /// Every LLM method uses this endpoint and model.
    Endpoint {
        /// The OpenAI-compatible base URL.
        base_url: String,
        /// The model.
        model: String,
        /// The variable holding the API key, if one is needed.
        api_key_env: Option<String>,
    },
}

/// How to run a plan.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The run folder (default `runs/<experiment name>`).
    pub out: Option<PathBuf>,
    /// Overrides the backend of every LLM method.
    pub backend: Option<BackendOverride>,
    /// Only these methods (their names, or their types).
    pub only: Vec<String>,
    /// Stages to redo, and what depends on them.
    pub redo: Vec<Redo>,
    /// No progress bars and no report on standard output.
    pub quiet: bool,
    /// Do only this shard's share of the work, in `shards/I-of-N/` (see [`merge`]).
    pub shard: Option<Share>,
    /// Stop after sampling (and the ranking candidates): what a merge of collected shards
    /// does before the shards label and predict.
    pub prepare_only: bool,
    /// Compute again the points whose prediction is NaN, and let the LLM cache ask again
    /// the requests whose reply did not parse (`--reask-unparsed`).
    pub reask_unparsed: bool,
    /// Skip the conformance checks run on the environment before any work
    /// ([`EnvPlugin::check`]), for environments whose steps are expensive.
    pub skip_env_check: bool,
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

/// What a run did, for the caller and the tests.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// Stages that ran in this invocation (skipped ones are absent).
    pub ran: Vec<Stage>,
    /// The summary's Markdown.
    pub markdown: String,
    /// The summary, when the evaluation stage ran (it is also written to `summary.json`).
    pub summary: Option<qval_metrics::Summary>,
    /// Files written by the evaluation.
    pub written: Vec<PathBuf>,
    /// What the run waits for before it can go on (a merge of shards), if anything.
    pub waiting: Option<String>,
    /// Methods that failed on every point, and points that failed in transport (a rerun
    /// asks them again): one line each, for the exit status.
    pub failing: Vec<String>,
}

fn say(quiet: bool, text: &str) {
    if !quiet {
        // A closed standard output (`qval run ... | head`) stops the report, not the run.
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }
}

/// The files a stage owns.
fn stage_files(plan: &Plan, stage: &Stage) -> Vec<PathBuf> {
    let run = &plan.work_dir;
    match stage {
        Stage::Collect => vec![layout::trajectories(run)],
        Stage::Sample => vec![layout::points(run), run.join("candidates.jsonl")],
        Stage::Label(name) => vec![
            layout::labels(run, name),
            layout::labels(run, &format!("ranking-{name}")),
        ],
        Stage::Predict(name) => {
            let mut v: Vec<PathBuf> = plan
                .methods
                .iter()
                .filter(|m| m.name == *name)
                .flat_map(|m| plan.method_type(m).outputs(m))
                .map(|o| layout::predictions(run, &o))
                .collect();
            v.push(run.join("methods").join(name));
            v
        }
        Stage::Evaluate => vec![],
    }
}

/// Removes a file (and its checkpoint) or a folder, if there.
fn remove(path: &Path) -> Result<()> {
    let partial = qval_core::io::partial_path(path);
    if partial.exists() {
        std::fs::remove_file(&partial).map_err(|e| RunnerError::io("removing", &partial, e))?;
    }
    let r = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else if path.exists() {
        std::fs::remove_file(path)
    } else {
        Ok(())
    };
    r.map_err(|e| RunnerError::io("removing", path, e))
}

/// Runs `plan`: only what is not finished, refusing changed settings of finished stages.
/// The five stages in order; each hands its result to the next in memory.
///
/// # Errors
/// A changed setting ([`RunnerError::Changed`]), a busy folder, or a stage's own error (the
/// work finished so far is kept, and a rerun resumes).
pub async fn run(plan: &Plan) -> Result<RunReport> {
    let _lock = qval_core::io::RunLock::acquire(&plan.work_dir)?;
    let mut run = Run::open(plan)?;
    let Some(trajectories) = run.collect().await? else {
        return Ok(run.report);
    };
    let points = run.sample(&trajectories)?;
    let dataset = fingerprint(&points);
    let candidates = run.candidates(&points, &dataset).await?;
    if plan.options.prepare_only {
        run.report.waiting = Some("the shards' labels and predictions".into());
        return Ok(run.report);
    }
    let labels = run.label(&points, &dataset, candidates.as_ref()).await?;
    let ctx = plan.env.method_context();
    let inputs = Inputs {
        trajectories: &trajectories,
        points: &points,
        dataset: &dataset,
        candidates: candidates.as_ref(),
        expert: &labels.expert,
        ctx: &ctx,
    };
    let predictions = run.predict(&inputs).await?;
    if let Some(sh) = plan.options.shard {
        run.say(&format!(
            "shard {}/{} finished its labels and predictions; when every shard has, run `qval merge {}`",
            sh.index,
            sh.count,
            plan.run_dir.display()
        ));
        run.report.waiting = Some("merge of the labels and predictions".into());
        return Ok(run.report);
    }
    run.evaluate(labels.sets, predictions, trajectories.len(), points.len())
        .await?;
    Ok(run.report)
}

/// The `points` limit of every prediction set whose method entry sets one, by the set's name.
fn points_limits(plan: &Plan) -> BTreeMap<String, usize> {
    plan.methods
        .iter()
        .filter_map(|m| Some((m, m.points?)))
        .flat_map(|(m, n)| outputs_of(plan, m).into_iter().map(move |o| (o, n)))
        .collect()
}

/// The names of the prediction sets a method produces.
pub fn outputs_of(plan: &Plan, m: &ResolvedMethod) -> Vec<String> {
    plan.method_type(m).outputs(m)
}

/// Whether a TCP connection to `url`'s host and port opens within 10 s, so a run whose server
/// is down stops before any work with one line naming `what` and the URL.
///
/// # Errors
/// [`RunnerError::Usage`]: the host does not resolve, or no address accepts a connection.
pub fn reachable(what: &str, url: &str) -> Result<()> {
    use std::net::ToSocketAddrs as _;
    let (rest, port) = match url.split_once("://") {
        Some(("https", r)) => (r, 443),
        Some((_, r)) => (r, 80),
        None => (url, 80),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let target = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:{port}")
    };
    let unreachable = |why: String| RunnerError::Usage(format!("{what} at {url} is unreachable: {why}"));
    let addrs: Vec<_> = target
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    let mut last = String::from("no address");
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(unreachable(last))
}

/// Scores one tiny continuation, so a server declared with `scoring = true` that cannot score
/// (no `/tokenize`: a hosted API) stops the run before any point, naming the capability. Other
/// failures are left to the points (retried, then NaN with the reason).
async fn probe_scoring(backend: &dyn qval_llm::Backend, method: &str) -> Result<()> {
    let probe = qval_llm::ScoreRequest {
        messages: vec![qval_llm::Message::text(qval_llm::Role::User, "Reply with OK.")],
        continuation: "OK".into(),
    };
    match backend.score(&probe).await {
        Err(e @ qval_llm::LlmError::Unsupported(_)) => Err(RunnerError::Usage(format!("`{method}`: {e}"))),
        _ => Ok(()),
    }
}

/// All points a method scores in an unsharded run (`candidates`: the run's, if any).
pub fn points_of(
    plan: &Plan,
    m: &ResolvedMethod,
    points: &[EvaluationPoint],
    candidates: &[EvaluationPoint],
) -> Vec<EvaluationPoint> {
    let c = Candidates {
        points: candidates.to_vec(),
        dataset: String::new(),
    };
    method_points(plan, m, points, "", Some(&c)).0
}

/// The points a method scores (the first `points` of them, or the candidates of those) and
/// the fingerprint of their dataset.
fn method_points(
    plan: &Plan,
    m: &ResolvedMethod,
    points: &[EvaluationPoint],
    dataset: &str,
    candidates: Option<&Candidates>,
) -> (Vec<EvaluationPoint>, String) {
    let n = m.points.unwrap_or(points.len()).min(points.len());
    match plan.method_type(m).info().on {
        PointSet::Points => (points[..n].to_vec(), dataset.to_string()),
        PointSet::Candidates => {
            let Candidates { points: c, dataset: fp } =
                candidates.expect("candidates are made when a ranking method is planned");
            let states: std::collections::HashSet<&str> = points[..n].iter().map(|p| p.id.as_str()).collect();
            let mine = c
                .iter()
                .filter(|p| p.candidate_of.as_deref().is_some_and(|s| states.contains(s)))
                .cloned()
                .collect();
            (mine, fp.clone())
        }
    }
}

/// A shard's part of a method's points: point j of the run is shard j mod N's; a ranking
/// candidate goes with its state, so one shard asks about all candidates of a state.
fn share_of_method(share: Share, on: &[EvaluationPoint], points: &[EvaluationPoint]) -> Vec<EvaluationPoint> {
    let index: HashMap<&str, usize> = points.iter().enumerate().map(|(i, p)| (p.id.as_str(), i)).collect();
    on.iter()
        .filter(|p| {
            let id = p.candidate_of.as_deref().unwrap_or(&p.id);
            index.get(id).is_some_and(|&i| share.contains(i))
        })
        .cloned()
        .collect()
}

fn timing(fresh: bool, t: Instant) -> String {
    if fresh {
        format!(", {:.2}s", t.elapsed().as_secs_f64())
    } else {
        " (finished earlier)".into()
    }
}

/// The evaluation settings of an experiment.
///
/// # Errors
/// Settings out of range.
pub fn evaluate_config(ev: &crate::spec::EvaluateSpec) -> Result<EvaluateConfig> {
    ev.config()
        .map_err(|p| RunnerError::Usage(format!("[evaluate]: {}", p.message)))
}

/// A method stored under another name.
struct Renamed {
    inner: Arc<dyn DenseSignalMethod>,
    name: String,
}

#[async_trait::async_trait]
impl DenseSignalMethod for Renamed {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn signal(&self) -> Signal {
        self.inner.signal()
    }
    fn params(&self) -> Value {
        self.inner.params()
    }
    async fn evaluate(&self, p: &EvaluationPoint, ctx: &MethodContext) -> qval_core::Result<f64> {
        self.inner.evaluate(p, ctx).await
    }
    async fn evaluate_batch(&self, p: &[EvaluationPoint], ctx: &MethodContext) -> Vec<qval_core::Result<f64>> {
        self.inner.evaluate_batch(p, ctx).await
    }
}
