//! # qval-cli
//!
//! The `qval` command: write (or copy) one experiment file, run one command, get every
//! method's row, resumably. The runner behind it is the library `qval-runner`; this crate is
//! clap, the terminal and the subcommands.
//!
//! ```text
//! qval run experiments/quickstart.toml                 # FrozenLake, offline, seconds
//! qval run experiments/qval-v1/frozenlake-text.toml --base-url http://localhost:8000/v1 --model Qwen/Qwen3-8B
//! qval evaluate runs/quickstart                         # re-evaluate a run folder (or a published summary)
//! qval report runs/a runs/b                             # one table across runs
//! qval methods                                          # method types and the QVal-v1 catalog
//! qval preview runs/qval-v1-frozenlake-text --method direct-q   # the exact prompts, no model called
//! qval check-backend --base-url URL --model M           # one request: model, latency, answer
//! qval serve-oracle                                     # a loopback model answering true FrozenLake values
//! ```
//!
//! Your own environments and methods get the same command in your own binary:
//!
//! ```no_run
//! use qval_cli::{Registry, methods::simple};
//! use std::sync::Arc;
//!
//! fn main() {
//!     let registry = Registry::builtin().method(
//!         "my-method",
//!         simple("mine", |signal| Arc::new(qval_methods::RandomBaseline::new(7, signal))),
//!     );
//!     std::process::exit(qval_cli::main_with(registry));
//! }
//! ```
//!
//! To drive an experiment from your own program without the command line, depend on
//! `qval-runner` (re-exported here as [`runner`], [`spec`], [`envs`], [`methods`]).
#![deny(missing_docs)]

pub mod commands;
pub mod out;

pub use qval_runner::{catalog, encoders, envs, limits, methods, resume, runner, shards, spec};

pub use commands::{EvaluateArgs, ReportArgs};
/// The command's error: the runner's, whose [`exit_code`](RunnerError::exit_code) is the
/// command's exit status.
pub use qval_runner::RunnerError as CliError;
pub use qval_runner::{Result, RunnerError};
pub use runner::{BackendOverride, Plan, Registry, RunOptions, RunReport, run};

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use qval_methods::llm::{
    Backend, BackendEntry, Capabilities, ChatRequest, ChatResponse, LlmError, Message, Role, Sampling, extract_number,
    load_backends,
};

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "qval",
    version,
    about = "Does a dense reward signal rank agent actions the way their true value does? Measure it.",
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an experiment file: collect, sample, label, predict, evaluate (resumably).
    Run(RunArgs),
    /// Evaluate a run folder, or re-evaluate a published testbed summary (`summary_*.json`).
    Evaluate(EvaluateArgs),
    /// One table across evaluated runs: Markdown, CSV, a heat map and an HTML page.
    Report(ReportArgs),
    /// The method types, their parameters, and the QVal-v1 catalog.
    Methods,
    /// Print the exact prompts a method of a run would send, without calling a model.
    Preview(PreviewArgs),
    /// Send one request to a backend: model, latency, tokens, answer.
    CheckBackend(BackendArgs),
    /// Merge the shards of a run: after the collection, then after labels and predictions.
    Merge(MergeArgs),
    /// What the shards of a run have done and what the merge waits for.
    Status(StatusArgs),
    /// Write (and with --submit, submit) SLURM job arrays for a sharded run.
    Slurm(SlurmArgs),
    /// Serve a loopback OpenAI-compatible model that answers FrozenLake prompts with their
    /// true values, scoring included (vLLM's `/tokenize` and prompt log-probs), for trying
    /// every LLM method offline.
    ServeOracle(ServeArgs),
    /// List or prune a rollout store (`RUN/rollouts`, or one shared with `--rollout-store`).
    Rollouts(commands::RolloutsArgs),
}

/// Where LLM requests go, from the command line.
#[derive(Args, Debug, Clone, Default)]
pub struct BackendArgs {
    /// A backend named in the backends file (`qval run`: or in the experiment's `[backends]`).
    #[arg(long, conflicts_with = "base_url")]
    pub backend: Option<String>,
    /// The file of named backends (for `check-backend`).
    #[arg(long, default_value = "backends.toml")]
    pub backends: PathBuf,
    /// An OpenAI-compatible endpoint (e.g. http://localhost:8000/v1)...
    #[arg(long, requires = "model")]
    pub base_url: Option<String>,
    /// ...its model...
    #[arg(long, requires = "base_url")]
    pub model: Option<String>,
    /// ...and the environment variable holding its API key, if it needs one.
    #[arg(long, requires = "base_url")]
    pub api_key_env: Option<String>,
}

/// `qval run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The experiment file (TOML).
    pub file: PathBuf,
    /// The run folder (default: runs/<experiment name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override the backend of every LLM method.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Run only these methods (names or types); the others keep what they have.
    #[arg(long, num_args = 1..)]
    pub only: Vec<String>,
    /// Redo a stage and what depends on it: collect, sample, label[:NAME], predict[:METHOD].
    #[arg(long)]
    pub redo: Vec<qval_runner::runner::Redo>,
    /// No progress bars, no table.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do only shard I of N (`--shard 0/4`): its trajectories, then (after `qval merge`) its
    /// points' labels and predictions, in RUN/shards/I-of-N/.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Exit 0 even when a method failed on every point or points failed in transport
    /// (default: exit status 3, after the table).
    #[arg(long)]
    pub allow_failures: bool,
    /// Ask the model again where a cached reply could not be parsed (the points whose
    /// prediction is NaN are computed again; other cached replies are reused).
    #[arg(long)]
    pub reask_unparsed: bool,
    /// Skip the conformance checks run on the environment before any work (a few steps on
    /// two tasks: pure `step`, seeded `reset`, states through JSON, action texts), for
    /// environments whose steps are expensive.
    #[arg(long)]
    pub skip_env_check: bool,
    /// The rollout store label sets read and fill, shared across runs (default: the file's
    /// `rollout_store`, else RUN/rollouts).
    #[arg(long, value_name = "DIR")]
    pub rollout_store: Option<PathBuf>,
}

/// `qval merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The run folder of the shards.
    pub run: PathBuf,
    /// No progress bars, no table.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `qval status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The run folder.
    pub run: PathBuf,
}

/// `qval slurm`.
#[derive(Args, Debug)]
pub struct SlurmArgs {
    /// The experiment file.
    pub file: PathBuf,
    /// Shards: array tasks per round.
    #[arg(long)]
    pub shards: usize,
    /// The run folder (default: runs/<experiment name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `#SBATCH --partition`.
    #[arg(long)]
    pub partition: Option<String>,
    /// `#SBATCH --time`.
    #[arg(long)]
    pub time: Option<String>,
    /// `#SBATCH --cpus-per-task`.
    #[arg(long)]
    pub cpus: Option<usize>,
    /// `#SBATCH --mem`.
    #[arg(long)]
    pub mem: Option<String>,
    /// Submit them (runs `sbatch` through the written submit.sh).
    #[arg(long)]
    pub submit: bool,
}

/// `qval preview`.
#[derive(Args, Debug)]
pub struct PreviewArgs {
    /// A run folder (made by `qval run`).
    pub run: PathBuf,
    /// The method (default: every LLM method of the run).
    #[arg(long)]
    pub method: Option<String>,
    /// How many points.
    #[arg(long, default_value_t = 1)]
    pub points: usize,
}

/// `qval serve-oracle`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Standard deviation of the Gaussian noise added to every value.
    #[arg(long, default_value_t = 0.0)]
    pub noise: f64,
    /// Added to every reply, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Stop after this many seconds (0: run until killed).
    #[arg(long, default_value_t = 0)]
    pub seconds: u64,
    /// The loopback port (0: a free one, printed). Models `oracle-noise-X` answer with noise
    /// X, so one server offers a graded series of methods.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Ends a program whose work failed the way `qval` does: one line on standard error
/// (`error: ...`, with its causes), exit status 1, never a backtrace (whatever
/// `RUST_BACKTRACE` says). For the `main` of examples and tools built on qval.
pub fn exit_on_error<E: std::fmt::Display>(result: std::result::Result<(), E>) {
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Parses the command line and runs it with `registry`; returns the exit status. Errors a
/// user causes print one line (`error: ...`), never a backtrace.
pub fn main_with(registry: Registry) -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let interruptible = matches!(cli.command, Command::Run(_));
    // The command runs as a task of its own, so that a stage doing synchronous work on its
    // thread cannot keep this one from hearing Ctrl-C or SIGTERM.
    let result = rt.block_on(async {
        let command = tokio::spawn(async move { execute(cli.command, &registry).await });
        let signals = interruptible.then(listen_for_signals);
        let signalled = async {
            match signals {
                Some(rx) => rx.await.unwrap_or(130),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = command => Ok(r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))),
            code = signalled => Err(code),
        }
    });
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
        Err(code) => {
            // Spawned work (labelling tasks, workers) is dropped now; blocking work still
            // running (an evaluation, a step in progress) is not waited for beyond a second.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            eprintln!("interrupted: finished work is kept; run the same command again to resume");
            code
        }
    }
}

/// Listens for Ctrl-C and SIGTERM on a thread of its own, with its own event loop, so that a
/// signal is heard even while every worker thread of the main runtime is busy computing.
fn listen_for_signals() -> tokio::sync::oneshot::Receiver<i32> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            let _ = ready_tx.send(());
            return;
        };
        let code = rt.block_on(async {
            let waiting = interrupted();
            tokio::pin!(waiting);
            // Registered once the future has been polled: then the caller may go on.
            let code = tokio::select! {
                biased;
                code = &mut waiting => Some(code),
                _ = std::future::ready(()) => None,
            };
            let _ = ready_tx.send(());
            match code {
                Some(c) => c,
                None => waiting.await,
            }
        });
        let _ = tx.send(code);
    });
    let _ = ready_rx.recv();
    rx
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM; returns the exit status reporting it (130, 143).
/// Both stop a run the same way: its work is dropped, which kills the sandbox workers and
/// removes their temporary folders.
async fn interrupted() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return 130;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => 130,
        _ = term.recv() => 143,
    }
}

/// Runs one subcommand.
///
/// # Errors
/// Whatever the subcommand fails with.
pub async fn execute(command: Command, registry: &Registry) -> Result<()> {
    match command {
        Command::Run(a) => {
            let (experiment, source) = spec::load(&a.file)?;
            let shard = a.shard.as_deref().map(parse_shard).transpose()?;
            let options = RunOptions {
                out: a.out,
                spec_dir: None,
                backend: backend_override(&a.backend)?,
                only: a.only,
                redo: a.redo,
                quiet: a.quiet,
                shard,
                prepare_only: false,
                reask_unparsed: a.reask_unparsed,
                skip_env_check: a.skip_env_check,
                rollout_store: a.rollout_store,
            };
            let plan = Plan::new(experiment, &source, registry, options)?;
            let report = runner::run(&plan).await?;
            if report.failing.is_empty() || a.allow_failures {
                Ok(())
            } else {
                Err(CliError::Failing(format!(
                    "the run finished with failures (exit status 3; --allow-failures accepts them): {}",
                    report.failing.join("; ")
                )))
            }
        }
        Command::Evaluate(a) => commands::evaluate::evaluate(&a),
        Command::Report(a) => commands::report::report(&a),
        Command::Methods => {
            methods_table(registry);
            Ok(())
        }
        Command::Preview(a) => preview(&a, registry).await,
        Command::CheckBackend(a) => check_backend(&a).await,
        Command::Merge(a) => {
            let said = shards::merge(&a.run, registry, a.quiet).await?;
            out::line(&said);
            Ok(())
        }
        Command::Status(a) => {
            for l in shards::status(&a.run, registry)? {
                out::line(&l);
            }
            Ok(())
        }
        Command::Slurm(a) => slurm(&a, registry),
        Command::ServeOracle(a) => serve_oracle(&a),
        Command::Rollouts(a) => commands::rollouts::execute(&a),
    }
}

/// `--backend NAME` names an entry of the backends file (`--backends`, default
/// `backends.toml`) when that file has it, else one of the experiment's `[backends]`.
/// `I/N` as a [`qval_core::Share`].
fn parse_shard(text: &str) -> Result<qval_core::Share> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)));
    let (i, n) = parsed.ok_or_else(|| CliError::Usage(format!("--shard `{text}`: give I/N, e.g. 0/4")))?;
    qval_core::Share::new(i, n).map_err(|_| CliError::Usage(format!("--shard `{text}`: give I/N with 0 <= I < N")))
}

fn slurm(a: &SlurmArgs, registry: &Registry) -> Result<()> {
    if a.shards == 0 {
        return Err(CliError::Usage("--shards 0: give at least 1".into()));
    }
    // Check the experiment before writing scripts that would run it.
    let (experiment, source) = spec::load(&a.file)?;
    let name = experiment.name.clone();
    Plan::new(
        experiment,
        &source,
        registry,
        RunOptions {
            out: a.out.clone(),
            ..Default::default()
        },
    )?;
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| CliError::io("resolving", p, e));
    let run_dir = abs(&a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&name)))?;
    let file = abs(&a.file)?;
    let qval = std::env::current_exe().map_err(|e| CliError::io("locating", "qval", e))?;
    let written = shards::write_slurm(
        &file,
        &run_dir,
        &qval,
        &shards::SlurmOptions {
            shards: a.shards,
            partition: a.partition.clone(),
            time: a.time.clone(),
            cpus: a.cpus,
            mem: a.mem.clone(),
        },
    )?;
    for p in &written {
        out::line(&p.display().to_string());
    }
    if a.submit {
        let submit = run_dir.join("slurm").join("submit.sh");
        let result = std::process::Command::new("bash")
            .arg(&submit)
            .output()
            .map_err(|e| CliError::io("running", &submit, e))?;
        if !result.status.success() {
            return Err(CliError::Usage(format!(
                "submitting with {} failed: {}",
                submit.display(),
                String::from_utf8_lossy(&result.stderr).trim()
            )));
        }
        out::line(&format!(
            "submitted: jobs {} (shards, merge, shards, merge); `qval status {}` follows them",
            String::from_utf8_lossy(&result.stdout).trim(),
            run_dir.display()
        ));
    }
    Ok(())
}

fn backend_override(a: &BackendArgs) -> Result<Option<BackendOverride>> {
    Ok(match (&a.backend, &a.base_url, &a.model) {
        (Some(n), _, _) if a.backends.is_file() => match load_backends(&a.backends)?.remove(n) {
            Some(entry) => Some(BackendOverride::Entry(n.clone(), entry)),
            None => Some(BackendOverride::Named(n.clone())),
        },
        (Some(n), _, _) => Some(BackendOverride::Named(n.clone())),
        (None, Some(url), Some(model)) => Some(BackendOverride::Endpoint {
            base_url: url.clone(),
            model: model.clone(),
            api_key_env: a.api_key_env.clone(),
        }),
        _ => None,
    })
}

fn methods_table(registry: &Registry) {
    out::line("Method types (the `type` of a [[methods]] entry):\n");
    out::line("| type | family | signals | backend | scores | parameters (default) |");
    out::line("|---|---|---|---|---|---|");
    for (name, t) in registry.method_types() {
        let i = t.info();
        let params: Vec<String> = i.params.iter().map(|p| format!("{} ({})", p.name, p.default)).collect();
        out::line(&format!(
            "| {name} | {} | {} | {} | {} | {} |",
            i.family,
            i.signals.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
            if i.needs_backend { "yes" } else { "no" },
            i.summary,
            if params.is_empty() {
                "-".into()
            } else {
                params.join(", ")
            }
        ));
    }
    out::line(&format!(
        "\nEnvironments: {}\n\nThe QVal-v1 catalog (the published benchmark's 21 methods):\n",
        registry.environment_types().join(", ")
    ));
    out::line(catalog::markdown().trim_end());
}

/// A backend that records requests and answers none (for previews).
struct Recorder {
    seen: Mutex<Vec<ChatRequest>>,
}

#[async_trait::async_trait]
impl Backend for Recorder {
    fn name(&self) -> String {
        "preview".into()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            logprobs: true,
            images: true,
            scoring: true,
        }
    }
    async fn chat(&self, request: &ChatRequest) -> std::result::Result<ChatResponse, LlmError> {
        self.seen.lock().expect("recorder lock").push(request.clone());
        Err(LlmError::Unsupported("a preview sends no request".into()))
    }
    /// Recorded as the conversation with the scored text as the assistant's reply.
    async fn score(&self, request: &qval_llm::ScoreRequest) -> std::result::Result<qval_llm::ScoreResponse, LlmError> {
        let mut messages = request.messages.clone();
        messages.push(Message::text(Role::Assistant, request.continuation.clone()));
        self.seen.lock().expect("recorder lock").push(ChatRequest {
            messages,
            sampling: Sampling::default(),
        });
        Err(LlmError::Unsupported("a preview sends no request".into()))
    }
}

async fn preview(a: &PreviewArgs, registry: &Registry) -> Result<()> {
    use qval_core::io::{Kind, read_jsonl};
    if a.points == 0 {
        return Err(CliError::Usage("--points 0: give at least 1".into()));
    }
    let manifest = runner::Manifest::read(&a.run)?.ok_or_else(|| {
        CliError::Usage(format!(
            "{}: no run.json (make the run with `qval run`)",
            a.run.display()
        ))
    })?;
    let experiment: spec::Experiment = serde_json::from_value(manifest.experiment["resolved"].clone())
        .map_err(|e| CliError::Usage(format!("{}: run.json: {e}", a.run.display())))?;
    let source = spec::Source {
        file: a.run.join("run.json"),
        text: String::new(),
    };
    let plan = Plan::new(
        experiment,
        &source,
        registry,
        RunOptions {
            out: Some(a.run.clone()),
            spec_dir: manifest.spec_dir(),
            ..Default::default()
        },
    )?;
    let (_, trajectories) = read_jsonl(&qval_core::stage::layout::trajectories(&a.run), Kind::Trajectories)?;
    let (_, points) =
        read_jsonl::<qval_core::EvaluationPoint>(&qval_core::stage::layout::points(&a.run), Kind::Points)?;
    let ctx = plan.method_context();
    let chosen: Vec<&methods::ResolvedMethod> = plan
        .methods
        .iter()
        .filter(|m| match &a.method {
            Some(n) => &m.name == n || &m.kind == n,
            None => m.backend.is_some(),
        })
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = plan.methods.iter().map(|m| m.name.as_str()).collect();
        return Err(CliError::Usage(match &a.method {
            Some(n) => spec::unknown("method", n, &names),
            None => "the run has no LLM method".into(),
        }));
    }
    for m in chosen {
        let ctx = m.context(&ctx);
        let t = registry.method_types()[&m.kind].clone();
        let n = a.points.min(points.len());
        let on: Vec<qval_core::EvaluationPoint> = match t.point_set(m) {
            methods::PointSet::Points => points[..n].to_vec(),
            methods::PointSet::Candidates => {
                // The run's own candidates (sampled ones would need a model), else the legal
                // actions of the first points' states.
                let stored = a.run.join("candidates.jsonl");
                if stored.exists() {
                    let (_, c) = read_jsonl::<qval_core::EvaluationPoint>(&stored, Kind::Points)?;
                    let firsts: std::collections::HashSet<&str> = points[..n].iter().map(|p| p.id.as_str()).collect();
                    c.into_iter()
                        .filter(|c| c.candidate_of.as_deref().is_some_and(|s| firsts.contains(s)))
                        .collect()
                } else {
                    plan.env
                        .expand_candidates(
                            &points[..n],
                            plan.experiment.seed,
                            &spec::CandidatesSpec::default(),
                            &*plan.services,
                        )
                        .await?
                }
            }
        };
        let recorder = Arc::new(Recorder {
            seen: Mutex::new(Vec::new()),
        });
        let built = t
            .build(methods::BuildInput {
                method: m,
                env: &*plan.env,
                ctx: &ctx,
                trajectories: &trajectories,
                points: &on,
                backend: Some(recorder.clone()),
                expert: &Default::default(),
                services: &*plan.services,
                seed: plan.experiment.seed,
                dir: std::env::temp_dir().join(format!("qval-preview-{}", std::process::id())),
            })
            .await;
        if let Ok(built) = built {
            for method in built.iter().take(1) {
                let _ = method.evaluate_batch(&on, &ctx).await;
            }
        }
        let seen = recorder.seen.lock().expect("recorder lock").clone();
        let mut shown = std::collections::HashSet::new();
        for (i, req) in seen.iter().enumerate() {
            let text = qval_methods::llm::prompt::render(&req.messages);
            if !shown.insert(text.clone()) {
                continue;
            }
            out::line(&format!("##### {} request {} of {}\n", m.name, i + 1, seen.len()));
            out::line(&text);
        }
        if seen.is_empty() {
            out::line(&format!("##### {}: sends no request on these points", m.name));
        }
    }
    Ok(())
}

async fn check_backend(a: &BackendArgs) -> Result<()> {
    let entry = match (&a.backend, &a.base_url, &a.model) {
        (Some(name), _, _) => {
            let mut all = load_backends(&a.backends)?;
            let names: Vec<String> = all.keys().cloned().collect();
            all.remove(name).ok_or_else(|| {
                CliError::Usage(format!(
                    "{}: {}",
                    a.backends.display(),
                    spec::unknown("backend", name, &names.iter().map(String::as_str).collect::<Vec<_>>())
                ))
            })?
        }
        (None, Some(url), Some(model)) => BackendEntry {
            api_key_env: a.api_key_env.clone(),
            ..BackendEntry::new(url.clone(), model.clone())
        },
        _ => {
            return Err(CliError::Usage(
                "name a backend (--backend NAME) or an endpoint (--base-url URL --model M)".into(),
            ));
        }
    };
    let (backend, _) = entry.build(None, None)?;
    let question = "### Current State\n[Turn 1/30]\n@ F F F\nF H F H\nF F F H\nH F F G\n\n### Current Action\nright\n\n\
        In this FrozenLake grid (S start, F frozen, H hole, G goal, @ you; reward 1 at the goal, discount factor \
        γ=0.9), what is Q(s, a)? Answer with a number in <answer></answer> tags.";
    let req = ChatRequest {
        messages: vec![Message::text(Role::User, question)],
        sampling: Sampling::default(),
    };
    let t = std::time::Instant::now();
    let resp = backend.chat(&req).await?;
    out::line(&format!("backend  {}", backend.name()));
    out::line(&format!("model    {}", resp.model));
    out::line(&format!("latency  {:.0} ms", t.elapsed().as_secs_f64() * 1e3));
    out::line(&format!(
        "tokens   {} prompt, {} completion",
        resp.usage.prompt_tokens, resp.usage.completion_tokens
    ));
    match extract_number(&resp.text) {
        Ok(v) => out::line(&format!("answer   {v} (the true value is {:.4})", 0.9f64.powi(5))),
        Err(e) => out::line(&format!("answer   unparseable: {e}\n--- reply ---\n{}", resp.text)),
    }
    Ok(())
}

/// A second, worse code sample for the oracle's code replies: Manhattan distance to the
/// bottom-right corner, ignoring holes.
const CORNER_SAMPLE: &str = "def signal_function(state, action, next_state=None):\n    grid = [r.split() for r in (next_state or state).strip().splitlines() if r.strip()]\n    for i, row in enumerate(grid):\n        for j, c in enumerate(row):\n            if c == '@':\n                return -((len(grid) - 1 - i) + (len(row) - 1 - j))\n    return float('nan')\n";

fn serve_oracle(a: &ServeArgs) -> Result<()> {
    use qval_testkit::{Oracle, ServerConfig, TestServer};
    let server = TestServer::try_start(ServerConfig {
        port: a.port,
        oracle: Oracle {
            noise: a.noise,
            seed: 0,
        },
        latency: std::time::Duration::from_millis(a.latency_ms),
        code_samples: vec![
            qval_methods::code::EXAMPLE_SAMPLE.to_string(),
            CORNER_SAMPLE.to_string(),
        ],
        // The scoring families (sdpo, sdpo-gt, delta-belief) need vLLM's `/tokenize` and
        // prompt log-probs; the oracle's follow the true values.
        scoring: true,
        ..Default::default()
    })
    .map_err(|e| RunnerError::Usage(format!("cannot listen on 127.0.0.1:{}: {e}", a.port)))?;
    out::line(&server.base_url());
    out::line(&format!(
        "serving the FrozenLake oracle (noise {}, latency {} ms); use --base-url {} --model oracle",
        a.noise,
        a.latency_ms,
        server.base_url()
    ));
    if a.seconds == 0 {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(a.seconds));
    out::line(&format!("served {} requests", server.requests()));
    Ok(())
}
