//! TerminalBench in containers against bubblewrap, on the same tasks, in one go.
//!
//! ```text
//! cargo run --release --example bench_containers
//! ```
//! Needs root, podman, runc, a running dockerd and the base image in both (`bash
//! scripts/base_image.sh && bash scripts/docker_local.sh`). Prints the image build time per
//! Harbor task in podman and in docker (cold: the task's image and its build cache removed
//! first; cached: built again), steps per second for bubblewrap, podman and docker on four
//! shipped tasks (sequential and on two threads) and the ratios; then a podman step's parts
//! (restore of the state's layer, the container's run, the snapshot of its writable layer)
//! from a state 12 commands deep, and `restore = replay` at depth 0 and 12.

use qval::envs::terminalbench::{EngineKind, Restore, RuntimeChoice, ShellState, TerminalBench};
use qval::{Environment, QRng};
use rand::SeedableRng;
use std::time::{Duration, Instant};

const TASKS: [&str; 4] = ["count-errors", "csv-sum", "permissions", "symlink-release"];

fn main() {
    qval::cli::exit_on_error(run());
}

fn run() -> anyhow::Result<()> {
    for engine in [EngineKind::Podman, EngineKind::Docker] {
        builds(engine)?;
    }
    let tmp = tempfile::tempdir()?;
    let make = |r: RuntimeChoice, engine: EngineKind, name: &str| {
        TerminalBench::builder()
            .runtime(r)
            .engine(engine)
            .only(TASKS)
            .store_dir(tmp.path().join(name))
            .build()
    };
    let bwrap = make(RuntimeChoice::Bubblewrap, EngineKind::Podman, "bwrap")?;
    let podman = make(RuntimeChoice::Container, EngineKind::Podman, "podman")?;
    let docker = make(RuntimeChoice::Container, EngineKind::Docker, "docker")?;
    println!("\nSteps per second (each task's first solution command from its start, round robin):");
    println!("| runtime | threads | steps | seconds | steps/s | steps/s per core |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut rates = Vec::new();
    for (name, env) in [("bubblewrap", &bwrap), ("podman", &podman), ("docker", &docker)] {
        for threads in [1usize, 2] {
            let n = if name == "bubblewrap" { 200 } else { 16 };
            let rate = steps(env, threads, n, 0)?;
            println!(
                "| {name} | {threads} | {n} | {:.2} | {rate:.1} | {:.1} |",
                n as f64 / rate,
                rate / 2.0
            );
            rates.push(rate);
        }
    }
    for (name, i) in [("podman", 2), ("docker", 4)] {
        println!(
            "ratio bubblewrap / {name}: {:.1}x sequential, {:.1}x on 2 threads",
            rates[0] / rates[i],
            rates[1] / rates[i + 1]
        );
    }
    let deep = starts(&podman, 12)?;
    let before = podman.timings();
    let deep_rate = rate(&podman, &deep, 1, 12);
    let t = podman.timings();
    let runs = (t.runs - before.runs).max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / runs;
    println!(
        "\nContainer steps from a state 12 commands deep: {deep_rate:.1} steps/s; per step: restore {:.1} ms, run {:.1} ms, snapshot {:.1} ms",
        ms(t.restore - before.restore),
        ms(t.sandbox - before.sandbox),
        ms(t.snapshot - before.snapshot)
    );
    // restore = replay: the state's commands run again before each step. It reads the
    // same store, so the deep states above serve it too (made once, by snapshot steps).
    let replay = TerminalBench::builder()
        .runtime(RuntimeChoice::Container)
        .restore(Restore::Replay)
        .only(TASKS)
        .store_dir(tmp.path().join("podman"))
        .build()?;
    println!("\nContainer steps with restore = replay (the state's commands run again first):");
    for (depth, from) in [(0, starts(&replay, 0)?), (12, deep)] {
        println!(
            "  from a state {depth} commands deep: {:.1} steps/s",
            rate(&replay, &from, 1, 12)
        );
    }
    Ok(())
}

/// Image builds of the Harbor tasks in `engine`, cold and cached.
fn builds(engine: EngineKind) -> anyhow::Result<()> {
    let harbor = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/qval-envs/tasks/harbor");
    let tmp = tempfile::tempdir()?;
    let make = |name: &str| {
        TerminalBench::builder()
            .tasks_dir(&harbor)
            .runtime(RuntimeChoice::Container)
            .engine(engine)
            .store_dir(tmp.path().join(name))
            .build()
    };
    let env = make("a")?;
    let global: &[&str] = match engine {
        EngineKind::Podman => &["--runtime", "runc", "--cgroup-manager", "cgroupfs"],
        EngineKind::Docker => &[],
    };
    let engine_cmd = |args: &[&str]| {
        std::process::Command::new(engine.program())
            .args(global)
            .args(args)
            .output()
    };
    for (_, b) in env.image_builds() {
        engine_cmd(&["rmi", "-f", &b.tag])?;
    }
    engine_cmd(&["builder", "prune", "-f"]).ok();
    engine_cmd(&["image", "prune", "-f"])?;
    let cold = make("b")?;
    let warm = make("c")?;
    println!("\nImage builds of the Harbor tasks in {} (seconds):", engine.program());
    println!("| task | cold | cached |");
    println!("|---|---:|---:|");
    for ((id, c), (_, w)) in cold.image_builds().into_iter().zip(warm.image_builds()) {
        println!(
            "| {id} | {:.2}{} | {:.3}{} |",
            c.seconds,
            if c.fresh { "" } else { " (cached)" },
            w.seconds,
            if w.fresh { " (built)" } else { "" }
        );
    }
    Ok(())
}

/// Steps per second: `n` steps on `threads` threads, from each task's state `depth`
/// commands deep (a line appended to a file over and over, then the task's first command).
fn steps(env: &TerminalBench, threads: usize, n: usize, depth: usize) -> anyhow::Result<f64> {
    Ok(rate(env, &starts(env, depth)?, threads, n))
}

/// Each task's state `depth` commands deep and its solution's first command.
fn starts(env: &TerminalBench, depth: usize) -> anyhow::Result<Vec<(ShellState, String)>> {
    let mut rng = QRng::seed_from_u64(0);
    let mut starts: Vec<(ShellState, String)> = Vec::new();
    for id in TASKS {
        let task = env.tasks().into_iter().find(|t| t.id == id).expect("task");
        let mut s = env.reset(&task, &mut rng)?;
        for i in 0..depth {
            s = env
                .step(&s, &env.parse_action(&format!("echo {i} >> /app/depth.log")), &mut rng)?
                .state;
        }
        starts.push((s, env.solution_steps(id).expect("steps")[0].clone()));
    }
    Ok(starts)
}

/// Steps per second: `n` steps on `threads` threads from `starts`, round robin.
fn rate(env: &TerminalBench, starts: &[(ShellState, String)], threads: usize, n: usize) -> f64 {
    let t = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..threads {
            scope.spawn(move || {
                let mut rng = QRng::seed_from_u64(w as u64);
                for i in (w..n).step_by(threads) {
                    let (s, cmd) = &starts[i % starts.len()];
                    env.step(s, &env.parse_action(cmd), &mut rng).expect("step");
                }
            });
        }
    });
    n as f64 / t.elapsed().as_secs_f64()
}
