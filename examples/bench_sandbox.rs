//! Sandbox throughput: points per second for one generated sample over 10,000 FrozenLake
//! points (a persistent worker fed JSON lines), the cost of 16 samples, and a process per
//! point for comparison.
//!
//! ```text
//! cargo run --release --example bench_sandbox            # needs bubblewrap: apt-get install bubblewrap
//! ```

use std::sync::Arc;
use std::time::Instant;

use qval::envs::frozenlake::{EpsilonGreedy, FrozenLake};
use qval::methods::code::{CodeSample, EXAMPLE_SAMPLE, GeneratedSample, Sandbox, SandboxConfig, args_for};
use qval::{
    CollectConfig, Environment, MethodContext, SampleConfig, Signal, StageOptions, collect, predict, sample_points,
};

#[tokio::main]
async fn main() {
    qval::cli::exit_on_error(run().await);
}

async fn run() -> anyhow::Result<()> {
    let env = FrozenLake::builder().random_maps(8, 8, 42).build()?;
    let collector = EpsilonGreedy::new(&env, 0.1)?;
    let cfg = CollectConfig::new(2_500, 1, 16)?;
    let trajectories = collect(&env, &collector, &env.tasks(), &cfg, &StageOptions::default()).await?;
    let mut points = sample_points(&trajectories, &SampleConfig::builder().seed(1).build()?);
    points.truncate(10_000);
    anyhow::ensure!(points.len() == 10_000, "only {} points", points.len());
    let ctx = MethodContext::from_spec(env.spec());
    let config = SandboxConfig::builder().build()?;
    let sample = |i| GeneratedSample {
        index: i,
        source: Some(EXAMPLE_SAMPLE.to_string()),
        error: None,
        transient: false,
    };

    // One sample, one persistent worker.
    let m = CodeSample::new(sample(0), Signal::Q, config.clone(), "bench");
    let t = Instant::now();
    let preds = predict(&m, &points, &ctx, &StageOptions::default()).await?;
    let one = t.elapsed().as_secs_f64();
    m.close().await;
    let nan = preds.iter().filter(|p| p.value.is_nan()).count();
    println!(
        "1 sample x 10,000 points (persistent worker): {one:.2}s = {:.0} points/s ({nan} NaN)",
        10_000.0 / one
    );

    // 16 samples, in parallel (each its own worker).
    let samples: Vec<Arc<CodeSample>> = (0..16)
        .map(|i| Arc::new(CodeSample::new(sample(i), Signal::Q, config.clone(), "bench")))
        .collect();
    let t = Instant::now();
    let opts = StageOptions::default();
    let runs = futures::future::join_all(samples.iter().map(|s| predict(&**s, &points, &ctx, &opts))).await;
    let sixteen = t.elapsed().as_secs_f64();
    for s in &samples {
        s.close().await;
    }
    anyhow::ensure!(runs.iter().all(|r| r.is_ok()));
    println!(
        "16 samples x 10,000 points: {sixteen:.2}s = {:.0} points/s overall, 2 cores",
        160_000.0 / sixteen
    );

    // A process per point: start a sandbox, load the sample, call once, stop.
    let n = 100;
    let t = Instant::now();
    for p in &points[..n] {
        let mut sb = Sandbox::new(&config, EXAMPLE_SAMPLE, &["state", "action", "next_state"])
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        sb.call(&args_for(p, Signal::Q, true))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        sb.close().await;
    }
    let per = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "a process per point: {:.1} ms per point = {:.0} points/s; the persistent worker is {:.0}x faster",
        per * 1e3,
        1.0 / per,
        (10_000.0 / one) * per
    );
    Ok(())
}
