//! Labelling throughput on slippery FrozenLake 8x8: MVMC rollouts and environment steps per
//! second (rollouts kept in memory), then the same labels with a rollout store on disk (the
//! first pass writes every rollout, the second reads them all back), then MCTS at the same
//! number of simulation returns.
//!
//! ```text
//! cargo run --release --example bench_mvmc                 # 10,000 points, k = 32
//! cargo run --release --example bench_mvmc -- --points 2000 --rollouts 8
//! ```

use async_trait::async_trait;
use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use qval::envs::frozenlake::{EpsilonGreedy, FrozenLake, FrozenLakeAction, FrozenLakeState, OptimalPolicy};
use qval::rollout::{RolloutStore, Rollouts};
use qval::{
    CollectConfig, Environment, Labeler, MctsConfig, MctsLabeler, MvmcConfig, MvmcLabeler, Policy, PolicyInput, QRng,
    SampleConfig, StageOptions, collect, sample_points,
};

#[derive(Parser)]
struct Args {
    /// Evaluation points to label.
    #[arg(long, default_value_t = 10_000)]
    points: usize,
    /// Rollouts per point (k).
    #[arg(long, default_value_t = 32)]
    rollouts: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// The reference policy, counting its decisions (one per environment step after the forced one).
struct Counting {
    inner: OptimalPolicy,
    steps: AtomicU64,
}

#[async_trait]
impl Policy<FrozenLake> for Counting {
    fn name(&self) -> String {
        self.inner.name()
    }
    async fn act(
        &self,
        env: &FrozenLake,
        input: PolicyInput<'_, FrozenLakeState>,
        rng: &mut QRng,
    ) -> qval::Result<FrozenLakeAction> {
        self.steps.fetch_add(1, Ordering::Relaxed);
        self.inner.act(env, input, rng).await
    }
}

fn main() {
    qval::cli::exit_on_error(run());
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let env = Arc::new(FrozenLake::builder().random_maps(8, 8, 42).slippery(true).build()?);
    let points = rt.block_on(async {
        let collector = EpsilonGreedy::new(&env, 0.1)?;
        let n_traj = args.points.div_ceil(5) * 2;
        let cfg = CollectConfig::new(n_traj, 1, 16)?;
        let trajectories = collect(&*env, &collector, &env.tasks(), &cfg, &StageOptions::default()).await?;
        let mut points = sample_points(&trajectories, &SampleConfig::builder().seed(1).build()?);
        points.truncate(args.points);
        anyhow::Ok(points)
    })?;
    anyhow::ensure!(points.len() == args.points, "collected only {} points", points.len());
    let policy = Arc::new(Counting {
        inner: OptimalPolicy::for_env(&env),
        steps: AtomicU64::new(0),
    });
    let labeler = MvmcLabeler::new(
        env.clone(),
        policy.clone(),
        MvmcConfig::builder().rollouts(args.rollouts).seed(7).build()?,
    );
    let t = Instant::now();
    let labels = rt.block_on(labeler.label_batch(&points));
    let secs = t.elapsed().as_secs_f64();
    let aborted = labels.iter().filter(|l| l.aborted.is_some()).count();
    let rollouts = (points.len() * args.rollouts) as f64;
    // Every rollout takes one forced step plus one per policy decision.
    let steps = rollouts + policy.steps.load(Ordering::Relaxed) as f64;
    println!(
        "MVMC on {} ({} threads): {} points x k = {}, {aborted} aborted",
        env.spec().name,
        threads,
        points.len(),
        args.rollouts
    );
    println!("  time            {secs:.3} s");
    println!("  rollouts/s      {:.0}", rollouts / secs);
    println!("  env steps/s     {:.0}", steps / secs);
    println!("  steps/rollout   {:.1}", steps / rollouts);

    let dir = tempfile::tempdir()?;
    for pass in ["writes", "reads back"] {
        let stored = Arc::new(Rollouts::stored(RolloutStore::new(dir.path())));
        let labeler = MvmcLabeler::new(
            env.clone(),
            policy.clone(),
            MvmcConfig::builder().rollouts(args.rollouts).seed(7).build()?,
        )
        .with_rollouts(stored.clone());
        let t = Instant::now();
        let again = rt.block_on(labeler.label_batch(&points));
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(again == labels, "the store changed a label");
        let c = stored.counts();
        println!(
            "  with a store, {pass}: {secs:.3} s, {:.0} rollouts/s ({} run, {} read back)",
            rollouts / secs,
            c.run,
            c.reused
        );
    }

    let counts = Arc::new(Rollouts::in_memory());
    let mcts = MctsLabeler::new(
        env.clone(),
        Arc::new(OptimalPolicy::for_env(&env)),
        MctsConfig::builder().iterations(args.rollouts).seed(7).build()?,
    )
    .with_counts(counts.clone());
    let t = Instant::now();
    let searched = rt.block_on(mcts.label_batch(&points));
    let secs = t.elapsed().as_secs_f64();
    let aborted = searched.iter().filter(|l| l.aborted.is_some()).count();
    let c = counts.counts();
    println!(
        "MCTS, {} returns a point (width 5): {secs:.3} s, {:.0} returns/s, {:.0} env steps/s, {aborted} aborted",
        args.rollouts,
        rollouts / secs,
        c.steps as f64 / secs
    );
    Ok(())
}
