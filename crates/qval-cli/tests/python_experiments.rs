//! The shipped experiment files for Python environments (issue 15), run as a user runs them:
//! `qval run experiments/python-*.toml` from the repository root. Each must finish, and its
//! MVMC labels (one rollout of the adapter's reference policy) must equal its exact labels
//! (the adapter's own exact values) point for point: the reference is optimal and the worlds
//! are deterministic, so a difference means the bridge, the adapter or the labeller is wrong.
//!
//! Needs Python 3 with gymnasium 1.2.0 and textworld 1.6.2 (`scripts/test.sh` installs them);
//! without them the test fails and names the pip command.

mod common;

use common::python::{GYMNASIUM, TEXTWORLD, need};
use common::{oracle, oracle_backend, qval_run, repo, rows, succeeded, write_experiment};
use std::path::Path;
use std::time::Duration;

/// A label file's values by point id, in file order (the metadata line skipped).
fn labels(path: &Path) -> Vec<(String, f64)> {
    rows(path)
        .iter()
        .map(|v| {
            (
                v["point_id"].as_str().unwrap().to_string(),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_shipped_python_experiment_runs_and_its_mvmc_labels_are_exact() {
    need(&GYMNASIUM);
    need(&TEXTWORLD);
    let out = tempfile::tempdir().unwrap();
    for (name, min_points) in [
        ("python-frozenlake", 200),
        ("python-taxi", 100),
        ("python-cliffwalking", 100),
        ("python-textworld", 50),
    ] {
        let run = out.path().join(name);
        let stdout = run_experiment(Path::new(&format!("experiments/{name}.toml")), &run, &[]);
        assert!(run.join("summary.json").is_file(), "{name}: no summary");
        assert!(stdout.contains("| random-q |"), "{name}: no random-q row:\n{stdout}");
        // Label sets compared with each other come under their own heading, after the
        // methods' tables, never as a method of the first table.
        let heading = stdout
            .find("## Label sets compared with each other")
            .unwrap_or_else(|| panic!("{name}: no heading for the label sets' comparison:\n{stdout}"));
        assert!(
            !stdout[..heading].contains("| exact-q |"),
            "{name}: exact-q listed as a method:\n{stdout}"
        );
        assert!(stdout[heading..].contains("exact-q"), "{name}:\n{stdout}");
        // Success is each environment's own: CliffWalking's goal pays -1 like every step, so
        // a positive final reward (the default rule) would count none.
        if name == "python-cliffwalking" {
            let collect = stdout.lines().find(|l| l.contains("1. collect")).unwrap_or_default();
            // `1. collect   24 trajectories (N steps), K succeeded (P%)`
            let succeeded: usize = collect
                .split_once("), ")
                .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            assert!(succeeded > 12, "{name}: most of 24 reach the goal: {collect}");
        }

        let mvmc = labels(&run.join("labels/mvmc-q.jsonl"));
        let exact = labels(&run.join("labels/exact-q.jsonl"));
        assert!(mvmc.len() >= min_points, "{name}: {} points", mvmc.len());
        assert_eq!(mvmc.len(), exact.len(), "{name}");
        for ((id, m), (id2, e)) in mvmc.iter().zip(&exact) {
            assert_eq!(id, id2, "{name}");
            // Rollout sums and dynamic programming add the same terms in other orders.
            assert!(
                (m - e).abs() <= 1e-12 * e.abs().max(1.0),
                "{name} {id}: MVMC {m} vs exact {e}"
            );
        }
        let mut distinct: Vec<u64> = exact.iter().map(|(_, v)| v.to_bits()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            distinct.len() >= 4,
            "{name}: only {} distinct label values",
            distinct.len()
        );
    }
}

/// `qval run FILE --out RUN` from the repository root, as a user runs it; its standard output.
fn run_experiment(file: &Path, run: &Path, extra: &[&str]) -> String {
    succeeded(qval_run(file, run).current_dir(repo()).args(extra))
}

#[test]
fn textworld_ranking_candidates_are_drawn_from_the_admissible_commands() {
    need(&TEXTWORLD);
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let file = write_experiment(
        dir.path(),
        "tw.toml",
        &format!(
            r#"name = "tw-ranking"
seed = 42

[environment]
type = "python"
adapter = "qval_bridge.adapters.textworld_games:TextWorldAdapter"
workers = 2
args = {{ max_steps = 40, gamma = 0.95, purity = "snapshot" }}

[dataset]
trajectories = 4
collector = {{ type = "epsilon-greedy", epsilon = 0.3 }}
sampling = {{ per_trajectory = 2, discard_first = 1, discard_last = 1 }}
candidates = {{ k = 5 }}

[[labels]]
rollouts = 1

[[labels]]
name = "exact-q"
method = "exact"

{backend}
[[methods]]
type = "ranking"
backend = "oracle"
"#,
            backend = oracle_backend(&server, "max_attempts = 1\n")
        ),
    );
    let run = dir.path().join("run");
    // The oracle cannot read TextWorld states: ranking fails on every point, which exits 3
    // unless allowed.
    let stdout = run_experiment(&file, &run, &["--allow-failures"]);
    assert!(stdout.contains("(the legal actions, at most 5 a state)"), "{stdout}");

    // Each state's candidates are among its admissible commands, its own action one of them.
    let points = rows(&run.join("points.jsonl"));
    let candidates = rows(&run.join("candidates.jsonl"));
    assert!(points.len() >= 4, "{} points", points.len());
    for p in &points {
        let id = p["id"].as_str().unwrap();
        let legal: Vec<&str> = p["state"]["legal"]
            .as_array()
            .expect("a TextWorld state lists its admissible commands")
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let mut offered: Vec<&str> = candidates
            .iter()
            .filter(|c| c["candidate_of"] == id)
            .map(|c| c["action_text"].as_str().unwrap())
            .collect();
        assert!(legal.len() >= 2, "{id}: {legal:?}");
        assert!(offered.contains(&p["action_text"].as_str().unwrap()), "{id}");
        // As published: the state's own action and k - 1 = 4 others, all distinct.
        assert_eq!(offered.len(), legal.len().min(5), "{id}");
        assert!(offered.iter().all(|a| legal.contains(a)), "{id}: {offered:?}");
        offered.sort_unstable();
        offered.dedup();
        assert_eq!(offered.len(), legal.len().min(5), "{id}");
    }
    // Every candidate is labelled, MVMC as the exact values.
    let mvmc = rows(&run.join("labels/ranking-mvmc-q.jsonl"));
    let exact = rows(&run.join("labels/ranking-exact-q.jsonl"));
    assert_eq!(mvmc.len(), candidates.len());
    assert_eq!(exact.len(), candidates.len());
    for (m, e) in mvmc.iter().zip(&exact) {
        assert_eq!(m["point_id"], e["point_id"]);
        let (m, e) = (m["value"].as_f64().unwrap(), e["value"].as_f64().unwrap());
        assert!((m - e).abs() <= 1e-12 * e.abs().max(1.0), "MVMC {m} vs exact {e}");
    }
    assert!(exact.iter().any(|e| e["value"].as_f64() > Some(0.0)));
    // The ranking method writes a row for every candidate. The loopback oracle reads only
    // FrozenLake grids, so here its rows are NaN, each with the reason.
    let predictions = rows(&run.join("predictions/ranking-q.jsonl"));
    assert_eq!(predictions.len(), candidates.len());
    for p in &predictions {
        assert!(
            p["value"].is_f64() || p["error"].as_str().is_some_and(|e| !e.is_empty()),
            "a NaN without a reason: {p}"
        );
    }
}
