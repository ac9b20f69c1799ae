//! The five stages of [`run`](super::run), one function each, on a [`Run`]: `run.json`, the
//! report and the output of one invocation. Each stage hands its result to the next in
//! memory; its files are checkpoints (a rerun resumes from them) and outputs.

use indicatif::HumanCount;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::manifest::{Manifest, RunMetadata, StageRecord, first_difference};
use super::options::RunReport;
use super::plan::Plan;
use super::points::{Candidates, method_points, points_limits, share_of_method};
use super::stage::Stage;
use crate::envs::RunServices as _;
use crate::methods::{BuildInput, PointSet, ResolvedMethod};
use crate::{Result, RunnerError};
use qval_core::stage::{fingerprint, layout};
use qval_core::{
    CollectConfig, DenseSignalMethod, EvaluationPoint, MethodContext, SampleConfig, Share, Signal, StageOptions,
    Trajectory,
};
use qval_metrics::{EvaluateConfig, LabelSet, PredictionSet};

/// What stage 3 gives: the label sets (with the ranking ones), and the best reference
/// rollout after each candidate's action (what sdpo-gt's teacher is shown).
pub(crate) struct Labelled {
    pub(crate) sets: Vec<LabelSet>,
    pub(crate) expert: HashMap<String, qval_core::ExpertRollout>,
    /// Each set's labeler, by name (pass@k reads their rollouts).
    pub(crate) labelers: HashMap<String, Arc<dyn qval_core::Labeler>>,
}

/// The points and trajectories a method is built and scored on.
pub(crate) struct Inputs<'a> {
    pub(crate) trajectories: &'a [Trajectory],
    pub(crate) points: &'a [EvaluationPoint],
    pub(crate) dataset: &'a str,
    pub(crate) candidates: Option<&'a Candidates>,
    pub(crate) expert: &'a HashMap<String, qval_core::ExpertRollout>,
    pub(crate) ctx: &'a MethodContext,
}

/// One invocation of [`run`](super::run) on a plan.
pub(crate) struct Run<'p> {
    pub(crate) plan: &'p Plan,
    settings: BTreeMap<Stage, Value>,
    manifest: Manifest,
    pub(crate) report: RunReport,
    started: Instant,
}

impl<'p> Run<'p> {
    /// Reads `run.json`, clears what `--redo` names, refuses changed settings of finished
    /// stages (forgetting unfinished ones that changed) and records the experiment.
    pub(crate) fn open(plan: &'p Plan) -> Result<Self> {
        let settings = plan.stage_settings();
        let mut manifest = Manifest::read(&plan.work_dir)?.unwrap_or_default();
        for redo in &plan.options.redo {
            let clear: Vec<(String, Stage)> = manifest
                .stages
                .keys()
                .filter_map(|k| Some((k.clone(), k.parse::<Stage>().ok()?)))
                .filter(|(_, stage)| redo.clears(stage))
                .collect();
            for (key, stage) in clear {
                remove_files(plan, &stage)?;
                manifest.stages.remove(&key);
            }
            for stage in [Stage::Collect, Stage::Sample] {
                if redo.clears(&stage) {
                    remove_files(plan, &stage)?;
                }
            }
        }
        for (stage, new) in &settings {
            let key = stage.to_string();
            if let Some(old) = manifest.stages.get(&key)
                && let Some((setting, was, now)) = first_difference("", &old.settings, new)
            {
                if old.finished {
                    return Err(RunnerError::Changed {
                        stage: key,
                        setting,
                        old: was,
                        new: now,
                    });
                }
                remove_files(plan, stage)?;
                manifest.stages.remove(&key);
            }
        }
        let e = &plan.experiment;
        manifest.qval_version = env!("CARGO_PKG_VERSION").to_string();
        manifest.experiment = json!({
            "resolved": e,
            "labels": plan.labels,
            "methods": plan.methods,
            "points_limits": points_limits(plan),
        });
        manifest.spec_dir =
            Some(std::path::absolute(&plan.services.spec_dir).unwrap_or_else(|_| plan.services.spec_dir.clone()));
        manifest.environment = serde_json::to_value(plan.env.spec()).unwrap_or(Value::Null);
        manifest.context = serde_json::to_value(plan.method_context()).unwrap_or(Value::Null);
        manifest.write(&plan.work_dir)?;
        let run = Run {
            plan,
            settings,
            manifest,
            report: RunReport::default(),
            started: Instant::now(),
        };
        let spec = plan.env.spec();
        run.say(&format!(
            "qval run {}: {} (gamma {}, {} steps), into {}",
            e.name,
            spec.name,
            spec.gamma,
            spec.max_steps,
            plan.run_dir.display()
        ));
        Ok(run)
    }

    /// A line of the report on standard output, unless quiet.
    pub(crate) fn say(&self, text: &str) {
        say(self.plan.options.quiet, text);
    }

    pub(crate) fn opts(&self, path: PathBuf) -> StageOptions {
        StageOptions {
            progress: !self.plan.options.quiet,
            ..StageOptions::to_file(path)
        }
    }

    /// Marks `stage` started in `run.json`; false when it had finished.
    pub(super) fn start(&mut self, stage: &Stage) -> Result<bool> {
        let key = stage.to_string();
        if self.manifest.finished(&key) {
            return Ok(false);
        }
        self.manifest.stages.insert(
            key,
            StageRecord {
                settings: self.settings[stage].clone(),
                ..Default::default()
            },
        );
        self.manifest.write(&self.plan.work_dir)?;
        Ok(true)
    }

    /// Marks `stage` finished in `run.json`, with its time and LLM usage.
    fn done(&mut self, stage: &Stage, t: Instant, usage: (u64, u64)) -> Result<()> {
        self.done_with(stage, t, usage, None)
    }

    /// Marks `stage` finished in `run.json`, with its time, LLM usage and rollouts.
    pub(super) fn done_with(
        &mut self,
        stage: &Stage,
        t: Instant,
        usage: (u64, u64),
        rollouts: Option<qval_core::rollout::RolloutCounts>,
    ) -> Result<()> {
        self.manifest.stages.insert(
            stage.to_string(),
            StageRecord {
                settings: self.settings[stage].clone(),
                finished: true,
                seconds: t.elapsed().as_secs_f64(),
                requests: usage.0,
                tokens: usage.1,
                rollouts,
            },
        );
        self.manifest.write(&self.plan.work_dir)?;
        self.report.ran.push(stage.clone());
        Ok(())
    }

    /// Stage 1, collect (a shard its share). `None` when a shard waits for the merge of
    /// the collection.
    pub(crate) async fn collect(&mut self) -> Result<Option<Vec<Trajectory>>> {
        let plan = self.plan;
        let (e, share) = (&plan.experiment, plan.options.shard);
        let t = Instant::now();
        let fresh = self.start(&Stage::Collect)?;
        let config = CollectConfig::new(e.dataset.trajectories, e.seed, e.dataset.concurrency)?;
        let merged = layout::trajectories(&plan.run_dir);
        let trajectories = match share {
            // A shard after the merge of the collection: the whole collection.
            Some(_) if merged.exists() => {
                qval_core::io::read_jsonl::<Trajectory>(&merged, qval_core::io::Kind::Trajectories)?.1
            }
            _ => {
                let opts = self.opts(layout::trajectories(&plan.work_dir));
                plan.env
                    .collect(
                        &plan.collector,
                        &*plan.services,
                        &config,
                        share.unwrap_or(Share::ALL),
                        &opts,
                    )
                    .await?
            }
        };
        if fresh {
            self.done(&Stage::Collect, t, (0, 0))?;
        }
        if let Some(sh) = share
            && !merged.exists()
        {
            self.say(&format!(
                "1. collect   shard {}/{}: {} trajectories{}; when every shard has collected, run `qval merge {}`",
                sh.index(),
                sh.count(),
                trajectories.len(),
                timing(fresh, t),
                plan.run_dir.display()
            ));
            self.report.waiting = Some("merge of the collection".into());
            return Ok(None);
        }
        let successes = trajectories.iter().filter(|t| plan.env.succeeded(t)).count();
        self.say(&format!(
            "1. collect   {} trajectories ({} steps), {} succeeded ({:.0}%){}",
            trajectories.len(),
            trajectories.iter().map(Trajectory::len).sum::<usize>(),
            successes,
            100.0 * successes as f64 / trajectories.len().max(1) as f64,
            timing(fresh, t)
        ));
        Ok(Some(trajectories))
    }

    /// Stage 2, sample the evaluation points (a shard reads the merge's).
    pub(crate) fn sample(&mut self, trajectories: &[Trajectory]) -> Result<Vec<EvaluationPoint>> {
        let plan = self.plan;
        let e = &plan.experiment;
        let t = Instant::now();
        let fresh = self.start(&Stage::Sample)?;
        let s = &e.dataset.sampling;
        let sampling = SampleConfig::builder()
            .per_trajectory(s.per_trajectory)
            .strategy(s.strategy)
            .discard_first(s.discard_first)
            .discard_last(s.discard_last)
            .seed(e.seed)
            .build()?;
        let points = match plan.options.shard {
            // Sampled once, by the merge: the shards read it.
            Some(_) => {
                qval_core::io::read_jsonl::<EvaluationPoint>(
                    &layout::points(&plan.run_dir),
                    qval_core::io::Kind::Points,
                )?
                .1
            }
            None => qval_core::sample(trajectories, &sampling, &self.opts(layout::points(&plan.run_dir)))?,
        };
        if points.is_empty() {
            return Err(RunnerError::Usage(
                "sampling gave no points: collect longer trajectories".into(),
            ));
        }
        if fresh {
            self.done(&Stage::Sample, t, (0, 0))?;
        }
        self.say(&format!(
            "2. sample    {} points ({} per trajectory at most, {}){}",
            points.len(),
            s.per_trajectory,
            s.strategy.key(),
            timing(fresh, t)
        ));
        Ok(points)
    }

    /// The ranking candidates, when a ranking method is planned: every legal action (or
    /// sampled ones) of the first points' states. Part of the sample stage: a seeded function
    /// of the points, made again when its file is missing, cut or from other settings.
    pub(crate) async fn candidates(&mut self, points: &[EvaluationPoint], dataset: &str) -> Result<Option<Candidates>> {
        let plan = self.plan;
        let e = &plan.experiment;
        let n = plan
            .methods
            .iter()
            .filter(|m| plan.method_type(m).point_set(m) == PointSet::Candidates)
            .filter(|m| plan.wanted(m))
            .map(|m| m.settings.points.unwrap_or(points.len()))
            .max();
        let Some(n) = n.map(|n| n.min(points.len())) else {
            return Ok(None);
        };
        let path = plan.run_dir.join("candidates.jsonl");
        let meta = qval_core::io::Metadata::new(qval_core::io::Kind::Points, "expand_candidates")
            .with_seed(e.seed)
            .with_params(json!({ "dataset": dataset, "states": n, "candidates": e.dataset.candidates }));
        let existing = if path.exists() {
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
            None if plan.options.shard.is_some() => {
                return Err(RunnerError::Usage(format!(
                    "{}: missing or made otherwise; run `qval merge {}` after the collection",
                    path.display(),
                    plan.run_dir.display()
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
        self.say(&format!(
            "   candidates {} for {} of {n} states ({how})",
            c.len(),
            states.len()
        ));
        let dataset = fingerprint(&c);
        Ok(Some(Candidates { points: c, dataset }))
    }

    /// Stage 4, predict: every planned method (a finished one's predictions are read back).
    pub(crate) async fn predict(&mut self, inputs: &Inputs<'_>) -> Result<Vec<PredictionSet>> {
        let mut sets = Vec::new();
        for m in &self.plan.methods {
            sets.extend(self.predict_method(m, inputs).await?);
        }
        Ok(sets)
    }

    /// Builds `m` on the points `on` (its backend reached, and probed when it must score
    /// continuations), told `ctx`.
    pub(crate) async fn build_method(
        &self,
        m: &ResolvedMethod,
        inputs: &Inputs<'_>,
        on: &[EvaluationPoint],
        ctx: &MethodContext,
    ) -> Result<Vec<Arc<dyn DenseSignalMethod>>> {
        let plan = self.plan;
        let kind = plan.method_type(m);
        let backend = match &m.backend {
            Some(b) => {
                plan.services.check_reachable(b)?;
                let backend = plan.services.backend(b)?;
                if kind.info().needs_scoring {
                    probe_scoring(&*backend, &m.name).await?;
                }
                Some(backend)
            }
            None => None,
        };
        kind.build(BuildInput {
            method: m,
            env: &*plan.env,
            ctx,
            trajectories: inputs.trajectories,
            points: on,
            backend,
            expert: inputs.expert,
            services: &*plan.services,
            seed: plan.experiment.seed,
            dir: plan.work_dir.join("methods").join(&m.name),
        })
        .await
    }

    async fn predict_method(&mut self, m: &ResolvedMethod, inputs: &Inputs<'_>) -> Result<Vec<PredictionSet>> {
        let plan = self.plan;
        let kind = plan.method_type(m);
        let names = kind.outputs(m);
        let outputs: Vec<PathBuf> = names.iter().map(|o| layout::predictions(&plan.work_dir, o)).collect();
        let stage = Stage::Predict(m.name.clone());
        let wanted = plan.wanted(m);
        let finished = self.manifest.finished(&stage.to_string());
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
            self.say(&format!("4. predict   {} (finished earlier{left})", m.name));
            let sets = outputs
                .iter()
                .map(|p| PredictionSet::read(p))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if wanted {
                self.report.failing.extend(crate::resume::failing(&sets));
            }
            return Ok(sets);
        }
        if !wanted {
            return Ok(Vec::new());
        }
        if finished {
            self.say(&crate::resume::why_again(&m.name, &stored, redo_failed));
        }
        let t = Instant::now();
        self.start(&stage)?;
        let before = m.backend.as_deref().map(|b| plan.services.usage(b)).unwrap_or((0, 0));
        let (on, fp) = method_points(plan, m, inputs.points, inputs.dataset, inputs.candidates);
        let ctx = m.context(inputs.ctx);
        // A shard builds the method on all its points (Eureka searches on all of them, a
        // ranking request sees all candidates of a state) and scores its share.
        let scored = match plan.options.shard {
            Some(sh) => share_of_method(sh, &on, inputs.points),
            None => on.clone(),
        };
        let built = self.build_method(m, inputs, &on, &ctx).await?;
        if built.len() != names.len() {
            return Err(RunnerError::plugin(
                format!("method type `{}`", m.kind),
                format!("built {} methods for {} outputs", built.len(), names.len()),
            ));
        }
        let progress = Progress::start(plan, m, before);
        let mut sets = Vec::new();
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
                bar: progress.bar.clone(),
                redo_failed,
                ..self.opts(path.clone()).with_dataset(&fp)
            };
            let predictions = qval_core::predict(&*method, &scored, &ctx, &stage_opts).await?;
            sets.push(PredictionSet {
                name: name.clone(),
                signal: method.signal(),
                group: method
                    .params()
                    .get("sample_group")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                predictions,
                dataset: Some(fp.clone()),
                granularity: None,
                source: Some(path.clone()),
            });
        }
        drop(progress);
        let after = m.backend.as_deref().map(|b| plan.services.usage(b)).unwrap_or((0, 0));
        let usage = (after.0 - before.0, after.1 - before.1);
        self.done(&stage, t, usage)?;
        let failed: usize = sets
            .iter()
            .map(|s| s.predictions.iter().filter(|p| p.value.is_nan()).count())
            .sum();
        let transient: usize = sets
            .iter()
            .map(|s| s.predictions.iter().filter(|p| p.transient).count())
            .sum();
        let llm = if m.backend.is_some() {
            format!(", {} requests, {} tokens", HumanCount(usage.0), HumanCount(usage.1))
        } else {
            String::new()
        };
        self.say(&format!(
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
        ));
        self.report.failing.extend(crate::resume::failing(&sets));
        Ok(sets)
    }

    /// Stage 5, evaluate the planned label and prediction sets, and write the summary.
    pub(crate) async fn evaluate(
        &mut self,
        label_sets: Vec<LabelSet>,
        prediction_sets: Vec<PredictionSet>,
        layout: qval_metrics::transforms::PointLayout,
        points: usize,
    ) -> Result<()> {
        let plan = self.plan;
        let e = &plan.experiment;
        let t = Instant::now();
        let counts = (
            label_sets.len(),
            label_sets
                .iter()
                .filter(|l| l.labels.iter().any(|x| x.candidate_of.is_some()))
                .count(),
            prediction_sets.len(),
        );
        // On a blocking thread, so that Ctrl-C (which the caller awaits beside the run) is
        // heard during a long evaluation.
        let config = evaluate_config(&e.evaluate)?;
        let run = RunMetadata {
            name: e.name.clone(),
            seed: e.seed,
            env_kind: e.environment.kind.clone(),
            environment: self.manifest.environment.clone(),
            points,
            trajectories: layout.trajectories(),
            points_limits: points_limits(plan),
            layout: Some(layout),
        };
        let summary = tokio::task::spawn_blocking(move || {
            qval_metrics::evaluate_in(&label_sets, &prediction_sets, &config, Some(&run))
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let summary = summary?;
        let (written, warnings) = summary.write(&plan.run_dir, "summary")?;
        for w in warnings {
            eprintln!("warning: {w}");
        }
        self.report.ran.push(Stage::Evaluate);
        self.report.markdown = summary.markdown();
        self.report.written = written;
        self.report.summary = Some(summary);
        self.say(&format!(
            "5. evaluate  {} label sets ({} of ranking candidates) x {} prediction sets{}\n",
            counts.0,
            counts.1,
            counts.2,
            timing(true, t)
        ));
        self.say(self.report.markdown.trim_end());
        Ok(())
    }

    /// Appends `section` to `summary.md` and to the report's Markdown, after one blank line.
    pub(super) fn append_summary(&mut self, section: &str) -> Result<()> {
        let md = self.plan.run_dir.join("summary.md");
        let body = std::fs::read_to_string(&md).unwrap_or_default();
        let section = format!("\n{}", section.trim_start());
        let body = format!("{}\n{section}", body.trim_end());
        qval_core::io::write_atomic(&md, body.as_bytes())?;
        let report = &mut self.report.markdown;
        *report = format!("{}\n{section}", report.trim_end());
        Ok(())
    }

    /// Says where the run's files are and how long it took.
    pub(crate) fn finished(&self) {
        self.say(&format!(
            "\nArtifacts in {}; total {:.2}s",
            self.plan.run_dir.display(),
            self.started.elapsed().as_secs_f64()
        ));
    }
}

/// A label set held in memory, as [`LabelSet::read`] would read it back from `path`.
pub(super) fn label_set(
    name: &str,
    signal: Signal,
    labels: Vec<qval_core::Label>,
    dataset: &str,
    path: PathBuf,
) -> LabelSet {
    LabelSet {
        name: name.to_string(),
        signal,
        labels,
        dataset: Some(dataset.to_string()),
        source: Some(path),
    }
}

/// The progress bar of a predict stage: requests per second and tokens of the method's
/// backend. Cleared when dropped.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(plan: &Plan, m: &ResolvedMethod, before: (u64, u64)) -> Self {
        let bar = (!plan.options.quiet).then(indicatif::ProgressBar::no_length);
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
        Progress { bar, ticker }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Removes the files a stage owns.
fn remove_files(plan: &Plan, stage: &Stage) -> Result<()> {
    for f in stage_files(plan, stage) {
        remove(&f)?;
    }
    Ok(())
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

pub(super) fn timing(fresh: bool, t: Instant) -> String {
    if fresh {
        format!(", {:.2}s", t.elapsed().as_secs_f64())
    } else {
        " (finished earlier)".into()
    }
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
