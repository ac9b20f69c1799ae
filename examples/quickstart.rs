//! The five QVal stages end to end on FrozenLake, offline, in seconds.
//!
//! ```text
//! cargo run --release --example quickstart
//! cargo run --release --example quickstart -- --out runs/mine --seed 7
//! ```
//!
//! 1. collect 50 trajectories on 8 random 8x8 maps with the epsilon-greedy collector (0.1);
//! 2. sample 5 points per trajectory;
//! 3. label them with Max-Value Monte Carlo Q-values (reference policy: value iteration);
//! 4. run the methods under test (a random baseline and a distance heuristic);
//! 5. evaluate: Spearman (with a 95% bootstrap interval and p-value), Kendall, Pearson and
//!    pairwise accuracy of each method against the labels, written as `summary.json`,
//!    `summary.md` and plots.
//!
//! Every artifact is written under `--out` as JSON Lines; rerunning resumes (finished
//! stages are read back, not recomputed).

use clap::Parser;
use std::sync::Arc;
use std::time::Instant;

use qval::envs::frozenlake::{EpsilonGreedy, FrozenLake, OptimalPolicy};
use qval::methods::{FrozenLakeDistance, RandomBaseline};
use qval::metrics::{EvaluateConfig, evaluate_run};
use qval::{
    CollectConfig, DenseSignalMethod, Environment, MethodContext, MvmcConfig, MvmcLabeler, SampleConfig, Signal,
    StageOptions, Strategy, collect, io, label, predict, sample_points, stage::layout,
};

#[derive(Parser, Debug)]
#[command(about = "Run the five QVal stages on FrozenLake and print Spearman's rho per method")]
struct Args {
    /// Folder for all artifacts (trajectories, points, labels, predictions).
    #[arg(long, default_value = "runs/quickstart")]
    out: std::path::PathBuf,
    /// Root seed of maps, collection, sampling and labels.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Trajectories to collect.
    #[arg(long, default_value_t = 50)]
    trajectories: usize,
    /// Points sampled per trajectory.
    #[arg(long, default_value_t = 5)]
    per_trajectory: usize,
    /// MVMC rollouts per point (1 is exact here: deterministic map, deterministic reference).
    #[arg(long, default_value_t = 1)]
    rollouts: usize,
    /// Collector's chance of a random move.
    #[arg(long, default_value_t = 0.1)]
    epsilon: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let run = args.out.as_path();

    // The environment: 8 random 8x8 maps, not slippery, 30 steps, gamma 0.95.
    let env = Arc::new(FrozenLake::builder().random_maps(8, 8, args.seed).build()?);
    let spec = env.spec().clone();
    println!(
        "qval quickstart: {} ({} maps, {} steps, gamma {})",
        spec.name,
        env.maps().len(),
        spec.max_steps,
        spec.gamma
    );

    // 1. Collect.
    let t = Instant::now();
    let collector = EpsilonGreedy::new(&env, args.epsilon)?;
    let config = CollectConfig {
        trajectories: args.trajectories,
        seed: args.seed,
        ..Default::default()
    };
    let trajectories = collect(
        &*env,
        &collector,
        &env.tasks(),
        &config,
        &StageOptions::to_file(layout::trajectories(run)),
    )
    .await?;
    let successes = trajectories.iter().filter(|t| t.succeeded()).count();
    println!(
        "1. collect   {} trajectories, {} reached the goal ({:.0}%), {:.2}s",
        trajectories.len(),
        successes,
        100.0 * successes as f64 / trajectories.len() as f64,
        t.elapsed().as_secs_f64()
    );

    // 2. Sample.
    let sampling = SampleConfig::builder()
        .per_trajectory(args.per_trajectory)
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
    println!(
        "2. sample    {} points ({} per trajectory at most)",
        points.len(),
        args.per_trajectory
    );

    // 3. Label with MVMC.
    let t = Instant::now();
    let reference = Arc::new(OptimalPolicy::for_env(&env));
    let labeler = MvmcLabeler::new(
        env.clone(),
        reference,
        MvmcConfig::builder().rollouts(args.rollouts).seed(args.seed).build()?,
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
        Box::new(FrozenLakeDistance::new(Signal::Q)),
    ];
    let mut results = Vec::new();
    for m in &methods {
        let preds = predict(
            m.as_ref(),
            &points,
            &ctx,
            &StageOptions::to_file(layout::predictions(run, &m.name())),
        )
        .await?;
        results.push((m.name(), m.signal(), preds));
    }
    println!("4. predict   {} methods", methods.len());

    // 5. Evaluate: every statistic, bootstrap intervals, summary.json, summary.md and plots.
    let t = Instant::now();
    let summary = evaluate_run(run, &EvaluateConfig::default())?;
    let (written, warnings) = summary.write(run, "summary")?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "5. evaluate  {} files written, {:.2}s\n",
        written.len(),
        t.elapsed().as_secs_f64()
    );
    print!("{}", summary.markdown());
    println!(
        "\nArtifacts in {}/ ; total {:.2}s",
        run.display(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "LLM, code and embedding methods plug in through the same DenseSignalMethod trait (see examples/custom_method.rs)."
    );
    Ok(())
}
