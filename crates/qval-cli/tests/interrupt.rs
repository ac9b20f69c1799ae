//! Ctrl-C (SIGINT) stops `qval run` within a second or two in any stage, keeping the work
//! done: labels are checkpointed as they finish, and a rerun resumes from them.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{exit_within, line_count, qval_run, signal, wait_for, write_experiment};

/// FrozenLake with so many rollouts a point that labelling takes about a minute, and a
/// bootstrap large enough that evaluation takes seconds.
fn slow_experiment(dir: &Path, rollouts: usize, bootstrap: usize) -> std::path::PathBuf {
    let text = format!(
        r#"name = "slow"
seed = 5

[environment]
type = "frozenlake"
maps = 4
slippery = true

[dataset]
trajectories = 40
collector = {{ type = "epsilon-greedy", epsilon = 0.1 }}

[[labels]]
rollouts = {rollouts}
concurrency = 2

[evaluate]
bootstrap = {bootstrap}

[[methods]]
type = "random"

[[methods]]
type = "heuristic"
name = "distance"
"#
    );
    write_experiment(dir, "slow.toml", &text)
}

fn start(file: &Path, run: &Path) -> Child {
    qval_run(file, run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGINT and returns how long the process took to exit, and its status code.
fn interrupt(child: &mut Child) -> (Duration, Option<i32>) {
    let t = Instant::now();
    signal(child, libc::SIGINT);
    let status = exit_within(child, Duration::from_secs(20)).expect("qval run ignored Ctrl-C for 20 s");
    (t.elapsed(), status.code())
}

/// The labels checkpointed in `partial` (its lines after the metadata line).
fn labels_in(partial: &Path) -> usize {
    line_count(partial).saturating_sub(1)
}

#[test]
fn ctrl_c_in_the_label_stage_stops_at_once_and_keeps_the_finished_labels() {
    let dir = tempfile::tempdir().unwrap();
    let file = slow_experiment(dir.path(), 40_000, 200);
    let run = dir.path().join("run");
    let mut child = start(&file, &run);
    let partial = run.join("labels").join("mvmc-q.jsonl.partial");
    wait_for(
        &mut child,
        Duration::from_secs(120),
        "3 labels were checkpointed",
        || labels_in(&partial) >= 3,
    );
    let (took, code) = interrupt(&mut child);
    assert_eq!(code, Some(130));
    assert!(took < Duration::from_secs(3), "Ctrl-C took {took:?}");
    let kept = labels_in(&partial);
    assert!(kept >= 3, "{kept} labels kept");
    assert!(
        !run.join("labels").join("mvmc-q.jsonl").exists(),
        "the stage did not finish"
    );
    // A rerun starts from the kept labels (it is interrupted again: resuming is what counts).
    let mut again = start(&file, &run);
    wait_for(
        &mut again,
        Duration::from_secs(120),
        "the rerun labelled a point",
        || labels_in(&partial) > kept,
    );
    let (took, _) = interrupt(&mut again);
    assert!(took < Duration::from_secs(3), "Ctrl-C took {took:?}");
    assert!(labels_in(&partial) > kept);
}

#[test]
fn ctrl_c_during_evaluation_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = slow_experiment(dir.path(), 1, 100_000);
    let run = dir.path().join("run");
    let mut child = start(&file, &run);
    // Wait for the last prediction line: evaluation (100,000 bootstrap resamples) follows.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let t = Instant::now();
    loop {
        let line = lines.next().expect("the run printed its stages").unwrap();
        if line.contains("4. predict   distance-q") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "evaluation finished too fast to test"
    );
    let (took, code) = interrupt(&mut child);
    assert_eq!(code, Some(130));
    assert!(took < Duration::from_secs(3), "Ctrl-C during evaluation took {took:?}");
    assert!(!run.join("summary.json").exists());
}
