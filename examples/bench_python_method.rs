//! Points per second of a method written in Python through qval's method bridge, with
//! batches of 1 and 64 points and 1 and 2 workers, against the same scorer called in a plain
//! Python loop over the same points (one process, no bridge): the cost of the bridge.
//!
//!   cargo run --release --example bench_python_method     # needs `pip install numpy`
//!
//! The scorer is the shipped numpy FrozenLake distance heuristic
//! (`experiments/python/frozenlake_distance.py`), on 4,096 points of random walks over the
//! published 8x8 maps.

use qval_core::seed::rng_for;
use qval_core::{DenseSignalMethod, Environment, EvaluationPoint, MethodContext, Signal};
use qval_envs::frozenlake::FrozenLake;
use qval_methods::python::PythonMethod;
use rand::Rng as _;
use std::time::Instant;

const POINTS: usize = 4096;
const SCORER: &str = "experiments/python/frozenlake_distance.py:Distance";

fn points(env: &FrozenLake) -> anyhow::Result<Vec<EvaluationPoint>> {
    let tasks = env.tasks();
    let mut rng = rng_for(7, &[]);
    let mut out = Vec::new();
    let mut t = 0;
    while out.len() < POINTS {
        let task = &tasks[t % tasks.len()];
        let mut s = env.reset(task, &mut rng)?;
        for step in 0..env.spec().max_steps {
            let actions = env.legal_actions(&s).expect("closed action set");
            let a = &actions[rng.random_range(0..actions.len())];
            out.push(EvaluationPoint::from_step(env, task, t, step, &s, a, &mut rng)?);
            let next = env.step(&s, a, &mut rng)?;
            if next.terminated || out.len() == POINTS {
                break;
            }
            s = next.state;
        }
        t += 1;
    }
    Ok(out)
}

/// The same scorer in a plain Python loop over the points (as JSON lines on stdin): points/s.
fn plain_loop(points: &[EvaluationPoint]) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("points.jsonl");
    let lines: Vec<String> = points.iter().map(serde_json::to_string).collect::<Result<_, _>>()?;
    std::fs::write(&file, lines.join("\n"))?;
    let script = r#"
import json, sys, time
sys.path.insert(0, "experiments/python")
from frozenlake_distance import Distance
points = [json.loads(l) for l in open(sys.argv[1])]
ctx = {"signal": "q"}
m = Distance(seed=0)
for p in points[:64]:
    m.score(p, ctx)
m = Distance(seed=0)
t = time.perf_counter()
for p in points:
    m.score(p, ctx)
print(len(points) / (time.perf_counter() - t))
"#;
    let out = std::process::Command::new(qval_python::default_python())
        .args(["-c", script])
        .arg(&file)
        .env("PYTHONPATH", qval_python::default_bridge_dir())
        .output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = FrozenLake::builder().published_maps().build()?;
    let points = points(&env)?;
    let ctx = MethodContext::for_env(&env);
    let plain = plain_loop(&points)?;
    println!("{POINTS} FrozenLake points, numpy distance scorer");
    println!("plain Python loop (one process, no bridge): {plain:>10.0} points/s");
    for (workers, batch) in [(1, 1), (1, 64), (2, 64)] {
        let m = PythonMethod::builder(SCORER, Signal::Q)
            .workers(workers)
            .batch_size(batch)
            .build()?;
        m.evaluate_batch(&points[..256], &ctx).await; // warm-up
        let t = Instant::now();
        // As the predict stage calls it: 64 points a call.
        for chunk in points.chunks(64) {
            let r = m.evaluate_batch(chunk, &ctx).await;
            anyhow::ensure!(r.iter().all(|v| v.is_ok()), "a point failed");
        }
        let rate = POINTS as f64 / t.elapsed().as_secs_f64();
        println!(
            "qval bridge, {workers} worker(s), batch {batch:>2}:       {rate:>10.0} points/s ({:.2}x the plain loop)",
            rate / plain
        );
    }
    Ok(())
}
