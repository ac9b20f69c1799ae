//! Steps per second of TextWorld through the Python bridge (the shipped games), with snapshot
//! restore and with replay, on 1 and 2 workers.
//!
//!   cargo run --release -p qval-envs --example bench_textworld   # needs `pip install textworld==1.6.2`
//!
//! "walk": each thread plays random episodes (uniform admissible commands, up to 20 steps),
//! stepping from the state its worker holds (no restore). "branch": each thread alternates
//! between two stored states 6 and 7 steps into a game, so every step first restores a state
//! (a snapshot, or reset + 6-7 replayed steps), as MVMC labelling from sampled points does.
//! With 2 workers, 2 threads step concurrently.

use qval_core::Environment;
use qval_core::seed::rng_for;
use qval_envs::python::{PythonEnv, PythonState};
use rand::Rng as _;
use serde_json::json;
use std::time::Instant;

const DEPTH: usize = 6;

fn walk(env: &PythonEnv, seed: u64, steps: usize) -> usize {
    let tasks = env.tasks();
    let mut rng = rng_for(seed, &[]);
    let mut done = 0;
    while done < steps {
        let task = &tasks[rng.random_range(0..tasks.len())];
        let mut s = env.reset(task, &mut rng).expect("reset");
        for _ in 0..20 {
            let actions = env.legal_actions(&s).expect("admissible commands");
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

/// Two states DEPTH and DEPTH + 1 steps into a game (random admissible commands that do not
/// end it).
fn stored(env: &PythonEnv, seed: u64) -> (PythonState, PythonState) {
    let tasks = env.tasks();
    let mut rng = rng_for(seed, &[]);
    'again: loop {
        let task = &tasks[rng.random_range(0..tasks.len())];
        let mut s = env.reset(task, &mut rng).expect("reset");
        let mut path = vec![s.clone()];
        for _ in 0..=DEPTH {
            let actions = env.legal_actions(&s).expect("admissible commands");
            let out = env
                .step(&s, &actions[rng.random_range(0..actions.len())], &mut rng)
                .expect("step");
            if out.terminated {
                continue 'again;
            }
            s = out.state;
            path.push(s.clone());
        }
        return (path[DEPTH].clone(), path[DEPTH + 1].clone());
    }
}

fn branch(env: &PythonEnv, seed: u64, steps: usize) -> usize {
    let (s0, s1) = stored(env, 100 + seed);
    let mut rng = rng_for(seed, &[]);
    for i in 0..steps {
        let from = if i % 2 == 0 { &s0 } else { &s1 };
        let actions = env.legal_actions(from).expect("admissible commands");
        env.step(from, &actions[i % actions.len()], &mut rng).expect("step");
    }
    steps
}

fn rate(env: &PythonEnv, threads: usize, steps: usize, f: fn(&PythonEnv, u64, usize) -> usize) -> f64 {
    let t = Instant::now();
    let total: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|i| sc.spawn(move || f(env, i as u64, steps)))
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    total as f64 / t.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for purity in ["snapshot", "replay"] {
        for workers in [1, 2] {
            let env = PythonEnv::builder("qval_bridge.adapters.textworld_games:TextWorldAdapter")
                .args(json!({ "purity": purity }))
                .workers(workers)
                .build()?;
            rate(&env, workers, 20, walk); // warm-up: every worker loads the games
            let w = rate(&env, workers, 300, walk);
            let b = rate(&env, workers, 300, branch);
            println!(
                "TextWorld {purity:>8}, {workers} worker(s): walk {w:>6.1} steps/s, branch (restore before every step) {b:>6.1} steps/s ({:.1} ms per step and worker)",
                1e3 * workers as f64 / b
            );
        }
    }
    Ok(())
}
