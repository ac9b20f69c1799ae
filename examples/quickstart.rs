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
//! 4. run the methods under test (a random baseline and a distance heuristic; with
//!    `--backend NAME` or `--base-url URL --model M`, also direct prompting and ranking);
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
use qval::methods::llm::{Backend, BackendEntry, load_backends};
use qval::methods::prompting::{Direct, DirectMode, Ranking, ReportsUsage, expand_candidates, parent_of};
use qval::methods::{FrozenLakeDistance, RandomBaseline};
use qval::metrics::{EvaluateConfig, StateCandidates, evaluate_run, per_state_ranking};
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
    /// Also run the LLM prompting methods with this named backend (see backends.example.toml).
    #[arg(long)]
    backend: Option<String>,
    /// The file of named backends.
    #[arg(long, default_value = "backends.toml")]
    backends: std::path::PathBuf,
    /// Or: an OpenAI-compatible endpoint for the prompting methods...
    #[arg(long, requires = "model", conflicts_with = "backend")]
    base_url: Option<String>,
    /// ...and its model.
    #[arg(long, requires = "base_url")]
    model: Option<String>,
    /// ...and the environment variable holding its API key, if it needs one.
    #[arg(long)]
    api_key_env: Option<String>,
    /// The LLM methods score the first N points (published: 100).
    #[arg(long, default_value_t = 100)]
    llm_points: usize,
}

/// The LLM backend the arguments name, if any: with a response cache and a request log in
/// the run folder.
fn llm_backend(args: &Args, run: &std::path::Path) -> anyhow::Result<Option<Arc<dyn Backend>>> {
    let cache = Some(run.join("llm-cache"));
    let log = Some(run.join("llm-requests.jsonl"));
    if let Some(name) = &args.backend {
        let entries = load_backends(&args.backends)?;
        let entry = entries.get(name).ok_or_else(|| {
            anyhow::anyhow!(
                "no backend `{name}` in {} (it has: {:?})",
                args.backends.display(),
                entries.keys().collect::<Vec<_>>()
            )
        })?;
        return Ok(Some(entry.build(cache, log)?.0));
    }
    if let (Some(url), Some(model)) = (&args.base_url, &args.model) {
        let entry = BackendEntry {
            api_key_env: args.api_key_env.clone(),
            ..BackendEntry::new(url.clone(), model.clone())
        };
        return Ok(Some(entry.build(cache, log)?.0));
    }
    Ok(None)
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

    // 4b. The LLM prompting methods, when a backend is named.
    match llm_backend(&args, run)? {
        None => println!(
            "   (LLM prompting methods: add --backend NAME with a backends.toml, see backends.example.toml, \
             or --base-url URL --model M)"
        ),
        Some(backend) => {
            let t = Instant::now();
            let first: Vec<_> = points.iter().take(args.llm_points).cloned().collect();
            let direct = Direct::new(backend.clone(), Signal::Q, DirectMode::Single, Default::default());
            let preds = predict(
                &direct,
                &first,
                &ctx,
                &StageOptions::to_file(layout::predictions(run, &direct.name())),
            )
            .await?;
            let failed = preds.iter().filter(|p| p.value.is_nan()).count();
            println!(
                "   {} on {} points ({failed} failed), usage {}",
                direct.name(),
                first.len(),
                direct.usage()
            );
            // Ranking: every move of each state, labelled, ranked, evaluated per state.
            let candidates = expand_candidates(&*env, &first, args.seed)?;
            let rank_dir = run.join("ranking");
            let cand_labels = label(
                &labeler,
                &candidates,
                0.3,
                &StageOptions::to_file(rank_dir.join("labels.jsonl")),
            )
            .await?;
            let ranking = Ranking::new(backend, &candidates, Default::default());
            let cand_preds = predict(
                &ranking,
                &candidates,
                &ctx,
                &StageOptions::to_file(rank_dir.join("predictions.jsonl")),
            )
            .await?;
            let mut states: Vec<StateCandidates> = Vec::new();
            for (l, p) in cand_labels.iter().zip(&cand_preds) {
                let parent = parent_of(&l.point_id);
                if states.last().is_none_or(|s| s.state != parent) {
                    states.push(StateCandidates {
                        state: parent.to_string(),
                        labels: vec![],
                        predictions: vec![],
                    });
                }
                let s = states.last_mut().expect("just pushed");
                s.labels.push(l.value);
                s.predictions.push(p.value);
            }
            let r = per_state_ranking(&states, None);
            println!(
                "   ranking-q per state: mean rho {:.3} (std {:.3}) over {} states, {} skipped; {:.1}s",
                r.mean,
                r.std,
                r.used,
                states.len() - r.used,
                t.elapsed().as_secs_f64()
            );
        }
    }

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
