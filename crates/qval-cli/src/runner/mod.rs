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
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::envs::{EnvFactory, EnvPlugin, RunServices};
use crate::methods::{BuildInput, MethodType, PointSet, ResolvedMethod};
use crate::spec::{self, Experiment, LabelSpec, Seg, Source, SpecProblem, Typed};
use crate::{CliError, Result, at};
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

pub use manifest::*;
pub use plan::*;
pub use services::*;

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
    /// Stages to redo: `collect`, `sample`, `label` or `label:NAME`, `predict` or
    /// `predict:METHOD`.
    pub redo: Vec<String>,
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
    pub ran: Vec<String>,
    /// The summary's Markdown.
    pub markdown: String,
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
        crate::out::line(text);
    }
}

/// Stage names and the files they own.
fn stage_files(plan: &Plan, stage: &str) -> Vec<PathBuf> {
    let run = &plan.work_dir;
    match stage.split_once(':') {
        None if stage == "collect" => vec![layout::trajectories(run)],
        None if stage == "sample" => vec![layout::points(run), run.join("candidates.jsonl")],
        Some(("label", name)) => vec![
            layout::labels(run, name),
            layout::labels(run, &format!("ranking-{name}")),
        ],
        Some(("predict", name)) => {
            let mut v: Vec<PathBuf> = plan
                .methods
                .iter()
                .filter(|m| m.name == name)
                .flat_map(|m| plan.method_type(m).outputs(m))
                .map(|o| layout::predictions(run, &o))
                .collect();
            v.push(run.join("methods").join(name));
            v
        }
        _ => vec![],
    }
}

/// Whether a redo of `redo` clears the stage `stage` (the stage itself and what depends on
/// it: everything after collection or sampling).
fn cleared_by(redo: &str, stage: &str) -> bool {
    match redo {
        "collect" => true,
        "sample" => stage != "collect",
        "label" => stage.starts_with("label:"),
        "predict" => stage.starts_with("predict:"),
        r => r == stage,
    }
}

/// Removes a file (and its checkpoint) or a folder, if there.
fn remove(path: &Path) -> Result<()> {
    let partial = qval_core::io::partial_path(path);
    if partial.exists() {
        std::fs::remove_file(&partial).map_err(|e| CliError::io("removing", &partial, e))?;
    }
    let r = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else if path.exists() {
        std::fs::remove_file(path)
    } else {
        Ok(())
    };
    r.map_err(|e| CliError::io("removing", path, e))
}

/// Runs `plan`: only what is not finished, refusing changed settings of finished stages.
///
/// # Errors
/// A changed setting ([`CliError::Changed`]), a busy folder, or a stage's own error (the
/// work finished so far is kept, and a rerun resumes).
pub async fn run(plan: &Plan) -> Result<RunReport> {
    let run_dir = &plan.run_dir;
    let work = &plan.work_dir;
    let share = plan.options.shard;
    let _lock = qval_core::io::RunLock::acquire(work)?;
    let quiet = plan.options.quiet;
    let e = &plan.experiment;
    let settings = plan.stage_settings();
    let mut manifest = Manifest::read(work)?.unwrap_or_default();

    // Redo first: clear the named stages and what depends on them.
    for r in &plan.options.redo {
        let clear: Vec<String> = manifest.stages.keys().filter(|k| cleared_by(r, k)).cloned().collect();
        for stage in clear {
            for f in stage_files(plan, &stage) {
                remove(&f)?;
            }
            manifest.stages.remove(&stage);
        }
        for stage in ["collect", "sample"] {
            if cleared_by(r, stage) {
                for f in stage_files(plan, stage) {
                    remove(&f)?;
                }
            }
        }
    }
    // Refuse changed settings of finished stages; forget unfinished ones that changed.
    for (stage, new) in &settings {
        if let Some(old) = manifest.stages.get(stage)
            && let Some((setting, was, now)) = first_difference("", &old.settings, new)
        {
            if old.finished {
                return Err(CliError::Changed {
                    stage: stage.clone(),
                    setting,
                    old: was,
                    new: now,
                });
            }
            for f in stage_files(plan, stage) {
                remove(&f)?;
            }
            manifest.stages.remove(stage);
        }
    }
    let ctx = plan.env.method_context();
    manifest.qval_version = env!("CARGO_PKG_VERSION").to_string();
    manifest.experiment = json!({
        "resolved": e,
        "labels": plan.labels,
        "methods": plan.methods,
        "points_limits": points_limits(plan),
    });
    manifest.environment = serde_json::to_value(plan.env.spec()).unwrap_or(Value::Null);
    manifest.context = serde_json::to_value(&ctx).unwrap_or(Value::Null);
    manifest.write(work)?;

    let mut report = RunReport::default();
    let started = Instant::now();
    let opts = |path: PathBuf| StageOptions {
        progress: !quiet,
        ..StageOptions::to_file(path)
    };
    let done = |manifest: &mut Manifest, stage: &str, t: Instant, usage: (u64, u64)| -> Result<()> {
        manifest.stages.insert(
            stage.to_string(),
            StageRecord {
                settings: settings[stage].clone(),
                finished: true,
                seconds: t.elapsed().as_secs_f64(),
                requests: usage.0,
                tokens: usage.1,
            },
        );
        manifest.write(work)
    };
    let start = |manifest: &mut Manifest, stage: &str| -> Result<bool> {
        if manifest.finished(stage) {
            return Ok(false);
        }
        manifest.stages.insert(
            stage.to_string(),
            StageRecord {
                settings: settings[stage].clone(),
                ..Default::default()
            },
        );
        manifest.write(work)?;
        Ok(true)
    };
    let spec = plan.env.spec();
    say(
        quiet,
        &format!(
            "qval run {}: {} (gamma {}, {} steps), into {}",
            e.name,
            spec.name,
            spec.gamma,
            spec.max_steps,
            run_dir.display()
        ),
    );

    // 1. Collect.
    let t = Instant::now();
    let fresh = start(&mut manifest, "collect")?;
    let config = CollectConfig {
        trajectories: e.dataset.trajectories,
        seed: e.seed,
        concurrency: e.dataset.concurrency,
    };
    let merged = layout::trajectories(run_dir);
    let trajectories = match share {
        // A shard after the merge of the collection: the whole collection.
        Some(_) if merged.exists() => {
            qval_core::io::read_jsonl::<Trajectory>(&merged, qval_core::io::Kind::Trajectories)?.1
        }
        _ => {
            plan.env
                .collect(
                    &plan.collector,
                    &*plan.services,
                    &config,
                    share.unwrap_or(Share::ALL),
                    &opts(layout::trajectories(work)),
                )
                .await?
        }
    };
    if fresh {
        done(&mut manifest, "collect", t, (0, 0))?;
        report.ran.push("collect".into());
    }
    if let Some(sh) = share
        && !merged.exists()
    {
        say(
            quiet,
            &format!(
                "1. collect   shard {}/{}: {} trajectories{}; when every shard has collected, run `qval merge {}`",
                sh.index,
                sh.count,
                trajectories.len(),
                timing(fresh, t),
                run_dir.display()
            ),
        );
        report.waiting = Some("merge of the collection".into());
        return Ok(report);
    }
    let successes = trajectories.iter().filter(|t| plan.env.succeeded(t)).count();
    say(
        quiet,
        &format!(
            "1. collect   {} trajectories ({} steps), {} succeeded ({:.0}%){}",
            trajectories.len(),
            trajectories.iter().map(Trajectory::len).sum::<usize>(),
            successes,
            100.0 * successes as f64 / trajectories.len().max(1) as f64,
            timing(fresh, t)
        ),
    );

    // 2. Sample.
    let t = Instant::now();
    let fresh = start(&mut manifest, "sample")?;
    let s = &e.dataset.sampling;
    let sampling = SampleConfig::builder()
        .per_trajectory(s.per_trajectory)
        .strategy(strategy_of(&s.strategy).unwrap_or(Strategy::Random))
        .discard_first(s.discard_first)
        .discard_last(s.discard_last)
        .seed(e.seed)
        .build()?;
    let points = match share {
        // Sampled once, by the merge: the shards read it.
        Some(_) => {
            qval_core::io::read_jsonl::<EvaluationPoint>(&layout::points(run_dir), qval_core::io::Kind::Points)?.1
        }
        None => qval_core::sample(&trajectories, &sampling, &opts(layout::points(run_dir)))?,
    };
    if points.is_empty() {
        return Err(CliError::Usage(
            "sampling gave no points: collect longer trajectories".into(),
        ));
    }
    if fresh {
        done(&mut manifest, "sample", t, (0, 0))?;
        report.ran.push("sample".into());
    }
    let dataset = fingerprint(&points);
    say(
        quiet,
        &format!(
            "2. sample    {} points ({} per trajectory at most, {}){}",
            points.len(),
            s.per_trajectory,
            s.strategy,
            timing(fresh, t)
        ),
    );

    // Ranking candidates, when a ranking method is planned: every legal action of the first
    // points' states.
    let candidate_methods: Vec<&ResolvedMethod> = plan
        .methods
        .iter()
        .filter(|m| plan.method_type(m).info().on == PointSet::Candidates)
        .filter(|m| plan.options.only.is_empty() || plan.options.only.iter().any(|o| m.answers_to(o)))
        .collect();
    let candidates: Option<(Vec<EvaluationPoint>, String)> = if candidate_methods.is_empty() {
        None
    } else {
        let n = candidate_methods
            .iter()
            .map(|m| m.points.unwrap_or(points.len()))
            .max()
            .unwrap_or(points.len())
            .min(points.len());
        let path = run_dir.join("candidates.jsonl");
        let meta = qval_core::io::Metadata::new(qval_core::io::Kind::Points, "expand_candidates")
            .with_seed(e.seed)
            .with_params(json!({ "dataset": dataset, "states": n, "candidates": e.dataset.candidates }));
        let existing = if path.exists() {
            // A file cut short is made again (the candidates are a seeded function of the points).
            match qval_core::io::read_jsonl::<EvaluationPoint>(&path, qval_core::io::Kind::Points) {
                Ok((m, c)) => (m == meta).then_some(c),
                Err(qval_core::CoreError::Truncated { .. }) => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        let c = match existing {
            Some(c) => c,
            None if share.is_some() => {
                return Err(CliError::Usage(format!(
                    "{}: missing or made otherwise; run `qval merge {}` after the collection",
                    path.display(),
                    run_dir.display()
                )));
            }
            None => {
                let c = plan
                    .env
                    .expand_candidates(&points[..n], e.seed, &e.dataset.candidates, &*plan.services)
                    .await?;
                qval_core::io::write_jsonl(&path, &meta, &c)?;
                c
            }
        };
        let states: std::collections::HashSet<&str> = c.iter().filter_map(|p| p.candidate_of.as_deref()).collect();
        let how = match &e.dataset.candidates.sampler {
            Some(t) => format!("sampled by `{}`, at most {} a state", t.kind, e.dataset.candidates.k),
            None => format!("the legal actions, at most {} a state", e.dataset.candidates.k),
        };
        say(
            quiet,
            &format!("   candidates {} for {} of {n} states ({how})", c.len(), states.len()),
        );
        let fp = fingerprint(&c);
        Some((c, fp))
    };

    if plan.options.prepare_only {
        report.waiting = Some("the shards' labels and predictions".into());
        return Ok(report);
    }

    // 3. Labels (a shard labels its share of the points).
    let mine = |all: &[EvaluationPoint]| match share {
        Some(sh) => sh.of(all),
        None => all.to_vec(),
    };
    let mut label_files = Vec::new();
    // The best reference rollout after each candidate's action, from the first Q label set
    // of the candidates (what sdpo-gt's teacher is shown).
    let mut expert: HashMap<String, qval_core::ExpertRollout> = HashMap::new();
    for l in &plan.labels {
        let stage = format!("label:{}", l.name);
        let t = Instant::now();
        let fresh = start(&mut manifest, &stage)?;
        let mut b = MvmcConfig::builder()
            .rollouts(l.spec.rollouts)
            .aggregation(l.spec.aggregation)
            .signal(l.spec.signal)
            .step_penalty(l.spec.step_penalty)
            .seed(e.seed)
            .concurrency(l.spec.concurrency);
        if let Some(g) = l.spec.gamma {
            b = b.gamma(g);
        }
        let reference = l.spec.reference.clone().expect("resolved by the plan");
        let labeler = match l.spec.method.as_str() {
            "exact" => plan
                .env
                .exact_labeler(l.spec.signal, l.spec.gamma)
                .expect("checked by the plan"),
            _ => plan.env.labeler(&reference, &*plan.services, b.build()?)?,
        };
        let config = LabelConfig {
            max_aborted_share: l.spec.max_aborted_share,
        };
        let path = layout::labels(work, &l.name);
        let labels = qval_core::label(
            &*labeler,
            &mine(&points),
            &config,
            &opts(path.clone()).with_dataset(&dataset),
        )
        .await?;
        label_files.push(path);
        let mut ranking = String::new();
        if let Some((c, fp)) = &candidates
            && l.spec.signal == Signal::Q
        {
            let path = layout::labels(work, &format!("ranking-{}", l.name));
            let mine_c = match share {
                Some(sh) => share_of_method(sh, c, &points),
                None => c.clone(),
            };
            let cl = qval_core::label(&*labeler, &mine_c, &config, &opts(path.clone()).with_dataset(fp)).await?;
            if expert.is_empty() {
                expert = cl
                    .iter()
                    .filter_map(|l| Some((l.point_id.clone(), l.expert.clone()?)))
                    .collect();
            }
            ranking = format!(" + {} ranking candidates (ranking-{})", cl.len(), l.name);
            label_files.push(path);
        }
        if fresh {
            done(&mut manifest, &stage, t, (0, 0))?;
            report.ran.push(stage.clone());
        }
        let aborted = labels.iter().filter(|l| l.value.is_nan()).count();
        say(
            quiet,
            &format!(
                "3. label     {}: {} labels{ranking} ({}), {aborted} aborted{}",
                l.name,
                labels.len(),
                if l.spec.method == "exact" {
                    "exact".to_string()
                } else {
                    format!("k = {}, {:?}", l.spec.rollouts, l.spec.aggregation)
                },
                timing(fresh, t)
            ),
        );
    }

    // 4. Predict.
    let mut prediction_files = Vec::new();
    for m in &plan.methods {
        let t_kind = plan.method_type(m);
        let outputs: Vec<PathBuf> = t_kind.outputs(m).iter().map(|o| layout::predictions(work, o)).collect();
        let stage = format!("predict:{}", m.name);
        let wanted = plan.options.only.is_empty() || plan.options.only.iter().any(|o| m.answers_to(o));
        let finished = manifest.finished(&stage);
        let stored = outputs
            .iter()
            .map(|p| crate::resume::Stored::of(p))
            .collect::<Result<Vec<_>>>()?;
        let redo_failed = m.backend.as_deref().is_some_and(|b| plan.services.reask_unparsed(b));
        let complete = stored
            .iter()
            .all(|s| matches!(s, crate::resume::Stored::Complete { .. }));
        if finished && (stored.iter().all(|s| s.is_final(redo_failed)) || (!wanted && complete)) {
            // A method left out by --only keeps its predictions in the summary, and its
            // failures do not set this run's exit status.
            let left = if wanted { "" } else { "; not asked again (--only)" };
            say(quiet, &format!("4. predict   {} (finished earlier{left})", m.name));
            if wanted {
                report.failing.extend(crate::resume::failing(&m.name, &outputs)?);
            }
            prediction_files.extend(outputs);
            continue;
        }
        if !wanted {
            continue;
        }
        if finished {
            say(quiet, &crate::resume::why_again(&m.name, &stored, redo_failed));
        }
        let t = Instant::now();
        start(&mut manifest, &stage)?;
        let before = m.backend.as_deref().map(|b| plan.services.usage(b)).unwrap_or((0, 0));
        let (on, fp) = method_points(plan, m, &points, &dataset, candidates.as_ref());
        let ctx = m.context(&ctx);
        // A shard builds the method on all its points (Eureka searches on all of them, a
        // ranking request sees all candidates of a state) and scores its share.
        let scored = match share {
            Some(sh) => share_of_method(sh, &on, &points),
            None => on.clone(),
        };
        let backend = match &m.backend {
            Some(b) => {
                plan.services.check_reachable(b)?;
                let backend = plan.services.backend(b).map_err(CliError::Usage)?;
                if t_kind.info().needs_scoring {
                    probe_scoring(&*backend, &m.name).await?;
                }
                Some(backend)
            }
            None => None,
        };
        let built = t_kind
            .build(BuildInput {
                method: m,
                env: &*plan.env,
                ctx: &ctx,
                trajectories: &trajectories,
                points: &on,
                backend,
                expert: &expert,
                services: &*plan.services,
                seed: e.seed,
                dir: work.join("methods").join(&m.name),
            })
            .await?;
        let names = t_kind.outputs(m);
        if built.len() != names.len() {
            return Err(CliError::Usage(format!(
                "method type `{}` built {} methods for {} outputs",
                m.kind,
                built.len(),
                names.len()
            )));
        }
        // The bar shows requests per second and tokens of the method's backend.
        let bar = (!quiet).then(indicatif::ProgressBar::no_length);
        let ticker = match (&bar, &m.backend) {
            (Some(bar), Some(b)) => {
                let (bar, services, b) = (bar.clone(), plan.services.clone(), b.clone());
                let t0 = Instant::now();
                Some(tokio::spawn(async move {
                    loop {
                        let now = services.usage(&b);
                        let (req, tok) = (now.0 - before.0, now.1 - before.1);
                        let rate = req as f64 / t0.elapsed().as_secs_f64().max(1e-3);
                        let waiting = services.waiting(&b).map(|w| format!(" - {w}")).unwrap_or_default();
                        bar.set_message(format!(
                            "{} requests ({rate:.1}/s), {} tokens{waiting}",
                            HumanCount(req),
                            HumanCount(tok)
                        ));
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    }
                }))
            }
            _ => None,
        };
        let (mut failed, mut transient) = (0, 0);
        for (method, (name, path)) in built.into_iter().zip(names.iter().zip(&outputs)) {
            let method: Arc<dyn DenseSignalMethod> = if method.name() == *name {
                method
            } else {
                Arc::new(Renamed {
                    inner: method,
                    name: name.clone(),
                })
            };
            let stage_opts = StageOptions {
                bar: bar.clone(),
                redo_failed,
                ..opts(path.clone()).with_dataset(&fp)
            };
            let preds = qval_core::predict(&*method, &scored, &ctx, &stage_opts).await;
            let preds = match preds {
                Ok(p) => p,
                Err(e) => {
                    if let Some(t) = &ticker {
                        t.abort();
                    }
                    return Err(e.into());
                }
            };
            failed += preds.iter().filter(|p| p.value.is_nan()).count();
            transient += preds.iter().filter(|p| p.transient).count();
        }
        if let Some(t) = ticker {
            t.abort();
        }
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let after = m.backend.as_deref().map(|b| plan.services.usage(b)).unwrap_or((0, 0));
        let usage = (after.0 - before.0, after.1 - before.1);
        done(&mut manifest, &stage, t, usage)?;
        report.ran.push(stage.clone());
        prediction_files.extend(outputs);
        let llm = if m.backend.is_some() {
            format!(", {} requests, {} tokens", HumanCount(usage.0), HumanCount(usage.1))
        } else {
            String::new()
        };
        say(
            quiet,
            &format!(
                "4. predict   {}: {} points x {} set(s), {failed} NaN{}{llm}{}",
                m.name,
                scored.len(),
                names.len(),
                if transient > 0 {
                    format!(" ({transient} failed in transport: a rerun asks them again)")
                } else {
                    String::new()
                },
                timing(true, t)
            ),
        );
        report.failing.extend(crate::resume::failing(
            &m.name,
            &prediction_files[prediction_files.len() - names.len()..],
        )?);
    }

    if let Some(sh) = share {
        say(
            quiet,
            &format!(
                "shard {}/{} finished its labels and predictions; when every shard has, run `qval merge {}`",
                sh.index,
                sh.count,
                run_dir.display()
            ),
        );
        report.waiting = Some("merge of the labels and predictions".into());
        return Ok(report);
    }

    // 5. Evaluate: the planned label and prediction sets only.
    let t = Instant::now();
    let label_sets: Vec<LabelSet> = label_files
        .iter()
        .map(|p| LabelSet::read(p))
        .collect::<std::result::Result<_, _>>()?;
    let prediction_sets: Vec<PredictionSet> = prediction_files
        .iter()
        .map(|p| PredictionSet::read(p))
        .collect::<std::result::Result<_, _>>()?;
    // On a blocking thread, so that Ctrl-C (which the caller awaits beside the run) is
    // heard during a long evaluation.
    let config = evaluate_config(&e.evaluate)?;
    let evaluated = tokio::task::spawn_blocking(move || {
        let r = qval_metrics::evaluate(&label_sets, &prediction_sets, &config);
        (r, label_sets, prediction_sets)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let (summary, label_sets, prediction_sets) = evaluated;
    let mut summary = summary?;
    crate::commands::RunMetadata {
        name: e.name.clone(),
        seed: e.seed,
        env_kind: e.environment.kind.clone(),
        environment: manifest.environment.clone(),
        points: points.len(),
        trajectories: trajectories.len(),
        points_limits: points_limits(plan),
    }
    .stamp(&mut summary);
    let (written, warnings) = summary.write(run_dir, "summary")?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    report.ran.push("evaluate".into());
    report.markdown = summary.markdown();
    report.written = written;
    say(
        quiet,
        &format!(
            "5. evaluate  {} label sets ({} of ranking candidates) x {} prediction sets{}\n",
            label_sets.len(),
            label_sets
                .iter()
                .filter(|l| l.labels.iter().any(|x| x.candidate_of.is_some()))
                .count(),
            prediction_sets.len(),
            timing(true, t)
        ),
    );
    say(quiet, report.markdown.trim_end());
    say(
        quiet,
        &format!(
            "\nArtifacts in {}; total {:.2}s",
            run_dir.display(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(report)
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
/// [`CliError::Usage`]: the host does not resolve, or no address accepts a connection.
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
    let unreachable = |why: String| CliError::Usage(format!("{what} at {url} is unreachable: {why}"));
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
        Err(e @ qval_llm::LlmError::Unsupported(_)) => Err(CliError::Usage(format!("`{method}`: {e}"))),
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
    let c = (candidates.to_vec(), String::new());
    method_points(plan, m, points, "", Some(&c)).0
}

/// The points a method scores (the first `points` of them, or the candidates of those) and
/// the fingerprint of their dataset.
fn method_points(
    plan: &Plan,
    m: &ResolvedMethod,
    points: &[EvaluationPoint],
    dataset: &str,
    candidates: Option<&(Vec<EvaluationPoint>, String)>,
) -> (Vec<EvaluationPoint>, String) {
    let n = m.points.unwrap_or(points.len()).min(points.len());
    match plan.method_type(m).info().on {
        PointSet::Points => (points[..n].to_vec(), dataset.to_string()),
        PointSet::Candidates => {
            let (c, fp) = candidates.expect("candidates are made when a ranking method is planned");
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
        .map_err(|p| CliError::Usage(format!("[evaluate]: {}", p.message)))
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
