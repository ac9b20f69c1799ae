//! Issue 24, items 15 and 16: every count of an experiment file has an upper bound, checked
//! before any work with the bound and its reason at the file's line and column, and ranking
//! needs at least 2 candidates a state.

mod common;

use common::refused_experiment;
use std::time::Duration;

const HEAD: &str = "name = \"bad\"\n[environment]\ntype = \"frozenlake\"\n";
const BACKEND: &str = "[backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";

#[test]
fn every_oversized_count_is_refused_at_once_with_its_bound_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        (
            format!("{HEAD}[dataset]\ntrajectories = 4000000000\n"),
            "bad.toml:5:1",
            vec![
                "`dataset.trajectories`",
                "4000000000 is above the limit 1000000",
                "in memory",
            ],
        ),
        (
            format!("{HEAD}[dataset]\ntrajectories = 1000000000\n"),
            "bad.toml:5:1",
            vec!["1000000000 is above the limit 1000000"],
        ),
        (
            format!("{HEAD}[dataset]\nconcurrency = 100000\n"),
            "bad.toml:5:1",
            vec!["`dataset.concurrency`", "above the limit 4096"],
        ),
        (
            format!("{HEAD}[dataset]\nsampling = {{ per_trajectory = 20000 }}\n"),
            "bad.toml:5:14",
            vec!["`dataset.sampling.per_trajectory`", "20000 is above the limit 10000"],
        ),
        (
            format!("{HEAD}[dataset]\ntrajectories = 1000000\nsampling = {{ per_trajectory = 11 }}\n"),
            "bad.toml:6:14",
            vec!["1000000 trajectories x 11 points is above the limit 10000000 points"],
        ),
        (
            format!("{HEAD}[dataset]\nsampling = {{ discard_first = 20000 }}\n"),
            "bad.toml:5:14",
            vec!["`dataset.sampling.discard_first`", "above the limit 10000"],
        ),
        (
            format!("{HEAD}[dataset]\ncandidates = {{ k = 1000 }}\n"),
            "bad.toml:5:16",
            vec!["`dataset.candidates.k`", "1000 is above the limit 64"],
        ),
        (
            format!("{HEAD}[[labels]]\nrollouts = 4000000000\n"),
            "bad.toml:5:1",
            vec![
                "`labels[0].rollouts`",
                "4000000000 is above the limit 100000",
                "rollout returns are kept in memory",
            ],
        ),
        (
            format!("{HEAD}[[labels]]\nconcurrency = 100000\n"),
            "bad.toml:5:1",
            vec!["`labels[0].concurrency`", "above the limit 4096"],
        ),
        (
            format!("{HEAD}[[methods]]\ntype = \"random\"\npoints = 100000000\n"),
            "bad.toml:6:1",
            vec!["`methods[0].points`", "above the limit 10000000"],
        ),
        (
            format!("{HEAD}[[methods]]\ntype = \"direct\"\nbackend = \"x\"\nmax_history_turns = 100000\n{BACKEND}"),
            "bad.toml:7:1",
            vec!["`methods[0].max_history_turns`", "above the limit 10000"],
        ),
        (
            format!("{HEAD}[evaluate]\nbootstrap = 10000000\n"),
            "bad.toml:5:1",
            vec!["`evaluate.bootstrap`", "above the limit 100000"],
        ),
        (
            format!("{HEAD}[evaluate]\nmin_points = 100000000\n"),
            "bad.toml:5:1",
            vec!["`evaluate.min_points`", "above the limit 10000000"],
        ),
        (
            format!(
                "{HEAD}[dataset]\ncollector = {{ type = \"llm\", backend = \"x\", history_turns = 100000 }}\n{BACKEND}"
            ),
            "bad.toml:5:",
            vec!["history_turns", "above the limit 10000"],
        ),
        (
            format!("{HEAD}[[methods]]\ntype = \"codegen\"\nbackend = \"x\"\nsamples = 100000\n{BACKEND}"),
            "bad.toml:7:1",
            vec!["`methods[0].samples`", "above the limit 1000"],
        ),
        (
            format!("{HEAD}[[methods]]\ntype = \"direct\"\nbackend = \"x\"\nmode = \"multi\"\nn = 100000\n{BACKEND}"),
            "bad.toml:8:1",
            vec!["`methods[0].n`", "above the limit 1000"],
        ),
        (
            format!("{HEAD}[[methods]]\ntype = \"eureka\"\nbackend = \"x\"\niterations = 100000\n{BACKEND}"),
            "bad.toml:7:1",
            vec!["`methods[0].iterations`", "above the limit 1000"],
        ),
        (
            format!(
                "{HEAD}[[methods]]\ntype = \"verifier\"\nbackend = \"x\"\nnum_verifications = 100000\n\
                 [backends.x]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\nlogprobs = true\n"
            ),
            "bad.toml:7:1",
            vec!["`methods[0].num_verifications`", "above the limit 100"],
        ),
        (
            "name = \"bad\"\n[environment]\ntype = \"terminalbench\"\nmax_steps = 100000\n".to_string(),
            "bad.toml:4:1",
            vec!["`environment.max_steps`", "above the limit 10000"],
        ),
        (
            "name = \"bad\"\n[environment]\ntype = \"terminalbench\"\nruntime = \"bubblewrap\"\nengine = \"docker\"\n"
                .to_string(),
            "bad.toml:5:1",
            vec!["`environment.engine`", "give runtime = \"container\" or \"auto\""],
        ),
        (
            "name = \"bad\"\n[environment]\ntype = \"terminalbench\"\nengine = \"lxc\"\n".to_string(),
            "bad.toml:4:",
            vec!["lxc", "podman", "docker"],
        ),
    ];
    for (text, at, words) in cases {
        let (err, took) = refused_experiment(dir.path(), "bad.toml", &text);
        assert!(err.contains(at), "expected {at}:\n{text}\n{err}");
        for w in words {
            assert!(err.contains(w), "expected `{w}`:\n{text}\n{err}");
        }
        assert!(took < Duration::from_secs(10), "{took:?} to refuse:\n{text}");
    }
}

#[test]
fn a_count_written_as_a_float_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let (err, _) = refused_experiment(
        dir.path(),
        "bad.toml",
        &format!("{HEAD}[dataset]\ntrajectories = 1e9\n"),
    );
    assert!(err.contains("bad.toml:5:"), "{err}");
    assert!(err.contains("expected a whole number"), "{err}");
}

#[test]
fn ranking_needs_at_least_two_candidates_a_state() {
    let dir = tempfile::tempdir().unwrap();
    for k in [0, 1] {
        let (err, _) = refused_experiment(
            dir.path(),
            "bad.toml",
            &format!("{HEAD}[dataset]\ncandidates = {{ k = {k} }}\n"),
        );
        assert!(err.contains("bad.toml:5:16"), "{err}");
        assert!(
            err.contains(&format!("`dataset.candidates.k`: {k}: give at least 2")),
            "{err}"
        );
    }
}

/// Issue 23: whatever stage 5 would refuse is refused when the file is read, at its key. Every
/// key of `[evaluate]`, one bad value each.
#[test]
fn every_evaluate_key_stage_5_would_refuse_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, &str, &str)> = vec![
        ("min_points = 2", "bad.toml:5:1", "2: at least 3"),
        ("bootstrap = 50", "bad.toml:5:1", "50"),
        ("confidence = 1.5", "bad.toml:5:1", "1.5"),
        (
            "bootstrap = 0\nconfidence = 0.0",
            "bad.toml:6:1",
            "give a level in (0, 1)",
        ),
        ("seed = -1", "bad.toml:5:", "seed"),
        (
            "correlation_methods = [\"spearman\", \"spearmen\"]",
            "bad.toml:5:36",
            "did you mean `spearman`?",
        ),
        ("exclude_zero_points = \"yes\"", "bad.toml:5:", "exclude_zero_points"),
        ("ranking_ties = \"sometimes\"", "bad.toml:5:", "ranking_ties"),
        ("relabel = 1", "bad.toml:5:", "relabel"),
        ("paired = \"no\"", "bad.toml:5:", "paired"),
        ("label_noise = 0", "bad.toml:5:", "label_noise"),
        ("bootstap = 100", "bad.toml:5:1", "bootstap"),
    ];
    for (line, at, says) in cases {
        let text = format!("{HEAD}[evaluate]\n{line}\n");
        let (err, _) = refused_experiment(dir.path(), "bad.toml", &text);
        assert!(err.contains(at) && err.contains(says), "{line}\n{err}");
    }
}
