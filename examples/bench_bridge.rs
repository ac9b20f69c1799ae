//! Steps per second of gymnasium FrozenLake through the Python bridge against native
//! FrozenLake, on the published maps, with 1 and 2 workers; and the overhead per step.
//!
//!   cargo run --release --example bench_bridge            # needs `pip install gymnasium`
//!
//! Each thread walks random episodes (uniform actions, up to the step budget) from its own
//! seed; with 2 workers, 2 threads step concurrently. "walk" steps forward from the state
//! the worker holds (no restore); "branch" restores a stored state before every step (as MVMC
//! labelling from sampled points does).

use qval_core::Environment;
use qval_core::seed::rng_for;
use qval_envs::frozenlake::FrozenLake;
use qval_envs::python::PythonEnv;
use rand::Rng as _;
use std::time::Instant;

fn walk<E: Environment>(env: &E, seed: u64, steps: usize) -> usize {
    let tasks = env.tasks();
    let mut rng = rng_for(seed, &[]);
    let mut done = 0;
    while done < steps {
        let task = &tasks[rng.random_range(0..tasks.len())];
        let mut s = env.reset(task, &mut rng).expect("reset");
        for _ in 0..env.spec().max_steps {
            let actions = env.legal_actions(&s).expect("closed action set");
            let a = &actions[rng.random_range(0..actions.len())];
            let out = env.step(&s, a, &mut rng).expect("step");
            done += 1;
            if out.terminated || done >= steps {
                break;
            }
            s = out.state;
        }
    }
    done
}

fn branch<E: Environment>(env: &E, seed: u64, steps: usize) -> usize {
    let task = &env.tasks()[0];
    let mut rng = rng_for(seed, &[]);
    let s0 = env.reset(task, &mut rng).expect("reset");
    let actions = env.legal_actions(&s0).expect("closed action set");
    // Alternate between two stored states so every step restores.
    let s1 = env.step(&s0, &actions[2], &mut rng).expect("step").state;
    for i in 0..steps {
        let from = if i % 2 == 0 { &s0 } else { &s1 };
        env.step(from, &actions[i % actions.len()], &mut rng).expect("step");
    }
    steps
}

fn rate<E: Environment>(env: &E, threads: usize, steps: usize, f: fn(&E, u64, usize) -> usize) -> f64 {
    let t = Instant::now();
    let total: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|i| sc.spawn(move || f(env, i as u64, steps)))
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    total as f64 / t.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let native = FrozenLake::builder().published_maps().build()?;
    let native_rate = rate(&native, 1, 2_000_000, walk);
    println!("native FrozenLake, 1 thread, walk: {native_rate:>12.0} steps/s");
    for workers in [1, 2] {
        let bridged = PythonEnv::builder("qval_bridge.adapters.gym_frozenlake:FrozenLakeAdapter")
            .args(serde_json::json!({"maps": "published"}))
            .workers(workers)
            .build()?;
        rate(&bridged, workers, 200, walk); // warm-up
        let w = rate(&bridged, workers, 5_000, walk);
        let b = rate(&bridged, workers, 5_000, branch);
        println!(
            "bridged, {workers} worker(s): walk {w:>8.0} steps/s ({:.1} us/step overhead over native per stream), branch {b:>8.0} steps/s",
            1e6 * workers as f64 / w - 1e6 / native_rate
        );
    }
    Ok(())
}
