//! TerminalBench speed: steps per second and the cost of restoring a state, on the
//! shipped tasks.
//!
//! ```text
//! cargo run --release --example bench_terminal
//! ```
//! Prints, per task, the snapshot size (entries, bytes) and the time to restore it into a
//! fresh folder and to snapshot it again; then steps per second for a typical command
//! (sequential and on all threads), with the time split into restore, sandbox and snapshot;
//! and for scale the bare cost of starting bubblewrap and of bash without a sandbox.

use qval::envs::terminalbench::{ShellAction, ShellState, TerminalBench};
use qval::{Environment, QRng, Task};
use rand::SeedableRng;
use std::time::{Duration, Instant};

fn per_call(n: usize, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed() / n as u32
}

fn main() {
    qval::cli::exit_on_error(run());
}

fn run() -> anyhow::Result<()> {
    let env = TerminalBench::builder().build()?;
    let tasks = env.tasks();
    restore_table(&env, &tasks)?;

    // Steps: each task's first solution command from its starting state, round robin.
    let starts = step_starts(&env, &tasks);
    let steps = 400;
    sequential_steps(&env, &starts, steps)?;
    parallel_steps(&env, &starts, steps);
    // The floor: a command that does nothing.
    noop_steps(&env, &starts[0].0)?;
    // SUBMIT (the tests) from each task's solved state.
    submit_steps(&env, &tasks)?;

    // For scale: bubblewrap alone, bash alone.
    bare_costs();
    Ok(())
}

/// The restore table: per task, its starting snapshot's entries and bytes, and the time to
/// restore it into a fresh folder and to snapshot it again; then the means.
fn restore_table(env: &TerminalBench, tasks: &[Task]) -> anyhow::Result<()> {
    let mut rng = QRng::seed_from_u64(0);
    println!(
        "State restore on the {} shipped tasks (each state's /app snapshot):",
        tasks.len()
    );
    println!("| task | entries | bytes | restore | snapshot |");
    println!("|---|---:|---:|---:|---:|");
    let (mut tot_restore, mut tot_snap) = (Duration::ZERO, Duration::ZERO);
    for task in tasks {
        let (restore, snap) = restore_row(env, task, &mut rng)?;
        tot_restore += restore;
        tot_snap += snap;
    }
    println!(
        "mean restore {:.3} ms, mean snapshot {:.3} ms",
        tot_restore.as_secs_f64() * 1e3 / tasks.len() as f64,
        tot_snap.as_secs_f64() * 1e3 / tasks.len() as f64
    );
    Ok(())
}

/// One task's row of the restore table; returns its restore and snapshot times.
fn restore_row(env: &TerminalBench, task: &Task, rng: &mut QRng) -> anyhow::Result<(Duration, Duration)> {
    let s = env.reset(task, rng)?;
    let entries = env.store().tree(&s.tree)?;
    let bytes: u64 = entries
        .iter()
        .map(|e| match &e.kind {
            qval::envs::terminalbench::store::EntryKind::File { size, .. } => *size,
            _ => 0,
        })
        .sum();
    let n = 200;
    let dirs: Vec<tempfile::TempDir> = (0..n)
        .map(|_| tempfile::tempdir_in(env.work_dir()))
        .collect::<Result<_, _>>()?;
    let mut it = dirs.iter();
    let restore = per_call(n, || {
        env.store()
            .restore(&s.tree, it.next().expect("a folder").path())
            .expect("restore");
    });
    let snap = per_call(n, || {
        env.store().snapshot(dirs[0].path(), &[], 1 << 30).expect("snapshot");
    });
    println!(
        "| {} | {} | {} | {:.3} ms | {:.3} ms |",
        task.id,
        entries.len(),
        bytes,
        restore.as_secs_f64() * 1e3,
        snap.as_secs_f64() * 1e3
    );
    Ok((restore, snap))
}

/// Each task's starting state with the last command of its solution.
fn step_starts(env: &TerminalBench, tasks: &[Task]) -> Vec<(ShellState, ShellAction)> {
    tasks
        .iter()
        .map(|t| {
            let s = env.reset(t, &mut QRng::seed_from_u64(0)).expect("reset");
            let cmd = env
                .solution_steps(&t.id)
                .expect("loaded")
                .last()
                .expect("a step")
                .clone();
            (s, env.parse_action(&cmd))
        })
        .collect()
}

/// `steps` steps on one thread, round robin over `starts`: steps per second and the time
/// per step split into restore, sandbox and snapshot.
fn sequential_steps(env: &TerminalBench, starts: &[(ShellState, ShellAction)], steps: usize) -> anyhow::Result<()> {
    let before = env.timings();
    let t = Instant::now();
    for i in 0..steps {
        let (s, a) = &starts[i % starts.len()];
        env.step(s, a, &mut QRng::seed_from_u64(0))?;
    }
    let seq = t.elapsed();
    let after = env.timings();
    let runs = (after.runs - before.runs) as f64;
    println!(
        "\nSteps, one thread: {steps} steps in {:.2} s = {:.1} steps/s ({:.2} ms per step: restore {:.3} ms, sandbox {:.2} ms, snapshot {:.3} ms)",
        seq.as_secs_f64(),
        steps as f64 / seq.as_secs_f64(),
        seq.as_secs_f64() * 1e3 / steps as f64,
        (after.restore - before.restore).as_secs_f64() * 1e3 / runs,
        (after.sandbox - before.sandbox).as_secs_f64() * 1e3 / runs,
        (after.snapshot - before.snapshot).as_secs_f64() * 1e3 / runs,
    );
    Ok(())
}

/// The same steps on as many threads as cores, then twice as many: steps per second.
fn parallel_steps(env: &TerminalBench, starts: &[(ShellState, ShellAction)], steps: usize) {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    for th in [threads, 2 * threads] {
        let t = Instant::now();
        std::thread::scope(|sc| {
            for k in 0..th {
                sc.spawn(move || {
                    for i in (k..steps).step_by(th) {
                        let (s, a) = &starts[i % starts.len()];
                        env.step(s, a, &mut QRng::seed_from_u64(0)).expect("step");
                    }
                });
            }
        });
        let el = t.elapsed();
        println!("Steps, {th} threads: {:.1} steps/s", steps as f64 / el.as_secs_f64());
    }
}

/// 200 steps of `true` from `s0` on one thread: the time each.
fn noop_steps(env: &TerminalBench, s0: &ShellState) -> anyhow::Result<()> {
    let noop = env.parse_action("true");
    let t = Instant::now();
    for _ in 0..200 {
        env.step(s0, &noop, &mut QRng::seed_from_u64(0))?;
    }
    println!(
        "Steps of `true`, one thread: {:.2} ms each",
        t.elapsed().as_secs_f64() * 1e3 / 200.0
    );
    Ok(())
}

/// 100 SUBMIT steps, round robin over each task's state after its whole solution: the time
/// each.
fn submit_steps(env: &TerminalBench, tasks: &[Task]) -> anyhow::Result<()> {
    let solved: Vec<_> = tasks
        .iter()
        .map(|t| {
            let s = env.reset(t, &mut QRng::seed_from_u64(0)).expect("reset");
            let sol = env.task(&t.id).expect("loaded").solution.clone();
            env.step(&s, &env.parse_action(&sol), &mut QRng::seed_from_u64(0))
                .expect("step")
                .state
        })
        .collect();
    let n = 100;
    let t = Instant::now();
    for i in 0..n {
        let s = &solved[i % solved.len()];
        env.step(s, &env.parse_action("SUBMIT"), &mut QRng::seed_from_u64(0))?;
    }
    println!(
        "SUBMIT (tests in a sandbox), one thread: {:.2} ms each",
        t.elapsed().as_secs_f64() * 1e3 / n as f64
    );
    Ok(())
}

/// The bare cost of starting bubblewrap on `/usr/bin/true`, and of `bash -c true` without
/// a sandbox.
fn bare_costs() {
    let bare_bwrap = per_call(200, || {
        let ok = qval::sandbox::Bwrap::new()
            .command(["/usr/bin/true"])
            .status()
            .expect("bwrap")
            .success();
        assert!(ok);
    });
    let bare_bash = per_call(200, || {
        std::process::Command::new("/usr/bin/bash")
            .args(["-c", "true"])
            .status()
            .expect("bash");
    });
    println!(
        "For scale: bubblewrap running /usr/bin/true {:.2} ms; bash -c true without a sandbox {:.2} ms",
        bare_bwrap.as_secs_f64() * 1e3,
        bare_bash.as_secs_f64() * 1e3
    );
}
