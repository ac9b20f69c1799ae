//! TerminalBench end to end, offline: collect with the scripted noisy collector (or an LLM
//! agent with `--agent-base-url URL --agent-model M`), sample one
//! point per trajectory, label with MVMC and the oracle reference (the task's solution.sh,
//! then SUBMIT), evaluate the random baseline and a shell heuristic, print the table.
//!
//! ```text
//! cargo run --release --example terminal_bench
//! ```
//! Needs bubblewrap (`apt-get install bubblewrap`). Every stage checkpoints under `--out`,
//! and the snapshot store lives in `--out/store`, so a rerun resumes and points stay
//! restorable.

use clap::Parser;
use std::sync::Arc;
use std::time::Instant;

use qval::envs::terminalbench::{NoisyScripted, OracleSolution, TerminalBench};
use qval::methods::llm::{BackendEntry, LlmAgent};
use qval::methods::{RandomBaseline, ShellHeuristic};
use qval::metrics::{EvaluateConfig, evaluate_run};
use qval::{
    CollectConfig, DenseSignalMethod, Environment, MethodContext, MvmcConfig, MvmcLabeler, Policy, SampleConfig,
    Signal, StageOptions, Strategy, collect, io, label, predict, sample_points, stage::layout,
};

#[derive(Parser, Debug)]
#[command(about = "The QVal stages on the shipped TerminalBench tasks, offline")]
struct Args {
    /// Output folder (checkpoints, labels, predictions, summary, snapshot store).
    #[arg(long, default_value = "runs/terminal_bench")]
    out: std::path::PathBuf,
    /// Root seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Trajectories per task.
    #[arg(long, default_value_t = 4)]
    per_task: usize,
    /// The collector's chance of a mistake per step.
    #[arg(long, default_value_t = 0.25)]
    epsilon: f64,
    /// MVMC rollouts per point (the oracle is deterministic: 1 is exact).
    #[arg(long, default_value_t = 1)]
    rollouts: usize,
    /// Points labelled at once (a few per core is best for sandboxes).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// The folder of task folders (default: the shipped tasks).
    #[arg(long)]
    tasks: Option<std::path::PathBuf>,
    /// Collect with an LLM agent at this OpenAI-compatible endpoint instead of the noisy
    /// collector (e.g. http://localhost:8000/v1); needs --agent-model.
    #[arg(long, requires = "agent_model")]
    agent_base_url: Option<String>,
    /// The agent's model name.
    #[arg(long, requires = "agent_base_url")]
    agent_model: Option<String>,
    /// The environment variable holding the endpoint's API key, if it needs one.
    #[arg(long)]
    agent_api_key_env: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let run = args.out.as_path();
    let mut builder = TerminalBench::builder().store_dir(run.join("store"));
    if let Some(t) = &args.tasks {
        builder = builder.tasks_dir(t);
    }
    let env = Arc::new(builder.build()?);
    let spec = env.spec().clone();
    let tasks = env.tasks();
    println!(
        "qval terminal_bench: {} tasks, {} steps max, gamma {}",
        tasks.len(),
        spec.max_steps,
        spec.gamma
    );

    // 1. Collect.
    let t = Instant::now();
    let collector: Box<dyn Policy<TerminalBench>> = match (&args.agent_base_url, &args.agent_model) {
        (Some(url), Some(model)) => {
            let entry = BackendEntry {
                api_key_env: args.agent_api_key_env.clone(),
                ..BackendEntry::new(url.clone(), model.clone())
            };
            let (backend, _) = entry.build(Some(run.join("llm-cache")), Some(run.join("llm-requests.jsonl")))?;
            Box::new(LlmAgent::new(backend))
        }
        _ => Box::new(NoisyScripted::new(args.epsilon)?),
    };
    let config = CollectConfig {
        trajectories: args.per_task * tasks.len(),
        seed: args.seed,
        ..Default::default()
    };
    let trajectories = collect(
        &*env,
        collector.as_ref(),
        &tasks,
        &config,
        &StageOptions::to_file(layout::trajectories(run)),
    )
    .await?;
    let successes = trajectories.iter().filter(|t| t.succeeded()).count();
    let steps: usize = trajectories.iter().map(|t| t.transitions.len()).sum();
    println!(
        "1. collect   {} trajectories ({} steps), {} passed the tests ({:.0}%), {:.2}s",
        trajectories.len(),
        steps,
        successes,
        100.0 * successes as f64 / trajectories.len() as f64,
        t.elapsed().as_secs_f64()
    );

    // 2. Sample: one point per trajectory, the reference's discards (first and last 3 turns;
    // all turns are eligible when nothing is left).
    let sampling = SampleConfig::builder()
        .per_trajectory(1)
        .discard_first(3)
        .discard_last(3)
        .strategy(Strategy::Random)
        .seed(args.seed)
        .build()?;
    let points = sample_points(&trajectories, &sampling);
    io::write_jsonl(
        &layout::points(run),
        &io::Metadata::new(io::Kind::Points, "sample_points")
            .with_seed(args.seed)
            .with_params(serde_json::to_value(&sampling)?),
        &points,
    )?;
    println!("2. sample    {} points", points.len());

    // 3. Label: restore s, force a, run the oracle (solution.sh, SUBMIT).
    let t = Instant::now();
    let labeler = MvmcLabeler::new(
        env.clone(),
        Arc::new(OracleSolution),
        MvmcConfig::builder()
            .rollouts(args.rollouts)
            .seed(args.seed)
            .concurrency(args.concurrency)
            .build()?,
    );
    let labels = label(
        &labeler,
        &points,
        0.3,
        &StageOptions::to_file(layout::labels(run, &qval::Labeler::name(&labeler))),
    )
    .await?;
    let positive = labels.iter().filter(|l| l.value > 0.0).count();
    println!(
        "3. label     {} MVMC Q labels (k = {}), {} with value > 0, {:.2}s",
        labels.len(),
        args.rollouts,
        positive,
        t.elapsed().as_secs_f64()
    );

    // 4. Predict.
    let ctx = MethodContext::from_spec(&spec);
    let methods: Vec<Box<dyn DenseSignalMethod>> = vec![
        Box::new(RandomBaseline::new(args.seed, Signal::Q)),
        Box::new(ShellHeuristic),
    ];
    for m in &methods {
        predict(
            m.as_ref(),
            &points,
            &ctx,
            &StageOptions::to_file(layout::predictions(run, &m.name())),
        )
        .await?;
    }
    println!("4. predict   {} methods", methods.len());

    // 5. Evaluate.
    let summary = evaluate_run(run, &EvaluateConfig::default())?;
    let (written, warnings) = summary.write(run, "summary")?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    println!("5. evaluate  {} files written\n", written.len());
    print!("{}", summary.markdown());

    let tm = env.timings();
    let (objects, bytes) = env.store().disk_usage();
    if tm.runs > 0 {
        println!(
            "\nSandbox runs this process: {} (restore {:.2} ms, sandbox {:.2} ms, snapshot {:.2} ms on average); \
             store: {} objects, {:.1} KiB",
            tm.runs,
            tm.restore.as_secs_f64() * 1e3 / tm.runs as f64,
            tm.sandbox.as_secs_f64() * 1e3 / tm.runs as f64,
            tm.snapshot.as_secs_f64() * 1e3 / tm.runs as f64,
            objects,
            bytes as f64 / 1024.0
        );
    }
    println!(
        "Artifacts in {}/ ; total {:.2}s",
        run.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
