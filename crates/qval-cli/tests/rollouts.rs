//! Reference labels with an LLM reference policy against the loopback server: label sets
//! that differ only in aggregation cost the requests of one; a second run on the same points
//! reads the rollout store (zero rollouts, the same label bytes), also from a moved run
//! folder; pass@k from the labels' rollouts; MCTS labels; `qval rollouts list|prune`; and
//! refusals of wrong settings at their key.

mod common;

use common::*;
use qval_testkit::{ServerConfig, TestServer};
use std::path::Path;

/// An agent that walks right, then down, then right...: a deterministic LLM reference.
fn agent_server() -> TestServer {
    TestServer::start(ServerConfig {
        agent_script: ["right", "down", "right", "down", "down", "right"]
            .iter()
            .map(|a| format!("<action>{a}</action>"))
            .collect(),
        ..Default::default()
    })
}

fn experiment(server: &TestServer, labels: &str, extra: &str) -> String {
    format!(
        r#"name = "rollouts"
seed = 5

[environment]
type = "frozenlake"
maps = 2
max_steps = 8

[dataset]
trajectories = 6
collector = {{ type = "epsilon-greedy", epsilon = 0.3 }}
sampling = {{ per_trajectory = 2 }}

{labels}

[[methods]]
type = "heuristic"

[evaluate]
min_points = 3
bootstrap = 200

[backends.agent]
base_url = "{}"
model = "agent"
{extra}"#,
        server.base_url()
    )
}

const MAX_AND_MEAN: &str = r#"[[labels]]
rollouts = 3
reference = { type = "llm", backend = "agent" }

[[labels]]
rollouts = 3
aggregation = "mean"
reference = { type = "llm", backend = "agent" }
"#;

fn rollouts_run(run: &Path, set: &str) -> (u64, u64) {
    let m = json(&run.join("run.json"));
    let r = &m["stages"][format!("label:{set}")]["rollouts"];
    (r["run"].as_u64().unwrap(), r["reused"].as_u64().unwrap())
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn max_and_mean_cost_one_set_of_requests_and_a_second_run_reads_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = agent_server();
    let file = write_experiment(
        dir.path(),
        "e.toml",
        &experiment(&server, MAX_AND_MEAN, "\n[passk]\nsource = \"labels\"\nk = [1, 2, 3]\n"),
    );
    let a = dir.path().join("a");
    let text = succeeded(qval_run(&file, &a));
    let requests = server.requests();
    assert!(requests > 0, "{text}");
    let (run_max, reused_max) = rollouts_run(&a, "mvmc-q");
    let (run_mean, reused_mean) = rollouts_run(&a, "mvmc-q-mean");
    assert!(run_max > 0 && reused_max == 0, "{run_max} {reused_max}");
    assert_eq!(
        (run_mean, reused_mean),
        (0, run_max),
        "the mean set reuses every rollout"
    );
    // Requests: only those of the max set's rollouts (the mean set sent none).
    let m = json(&a.join("run.json"));
    assert_eq!(m["stages"]["label:mvmc-q-mean"]["requests"], 0);
    assert_eq!(
        m["stages"]["label:mvmc-q"]["requests"].as_u64().unwrap() as usize,
        requests
    );
    // The summary shows each set's cost and the reference policy's pass@k.
    let md = std::fs::read_to_string(a.join("summary.md")).unwrap();
    assert!(md.contains("## Reference labels"), "{md}");
    // Its rows read the labels: the mean set rests on as many rollouts as the max set, all
    // shared with it, and the same steps.
    let row = |set: &str| -> Vec<String> {
        let section = &md[md.find("## Reference labels").expect("the section")..];
        let line = section
            .lines()
            .find(|l| l.starts_with(&format!("| {set} | ")))
            .unwrap_or_else(|| panic!("no row {set}: {md}"));
        line.split('|').map(|c| c.trim().to_string()).collect()
    };
    let (max, mean) = (row("mvmc-q"), row("mvmc-q-mean"));
    assert_eq!(mean[2], "k = 3, Mean", "{md}");
    let labels: usize = max[3].parse().unwrap();
    assert_eq!(max[4], (3 * labels).to_string(), "3 rollouts a label: {md}");
    assert_eq!((max[5].as_str(), mean[5].as_str()), ("0", max[4].as_str()), "{md}");
    assert_eq!(max[6], mean[6], "the same rollouts, the same steps: {md}");
    assert!(max[6].parse::<u64>().unwrap() >= 3 * labels as u64, "{md}");
    assert!(md.contains("Reference policy: pass@1 "), "{md}");
    let passk = json(&a.join("passk.json"));
    assert_eq!(
        passk["metadata"]["rollouts_run"], 0,
        "pass@k from the labels costs nothing"
    );
    assert!(passk["per_task"].as_array().unwrap().len() <= 2);
    assert!(passk["by_point"]["per_task"].as_array().unwrap().len() >= 3);
    assert_eq!(
        passk["aggregate"]["pass_at_k"]["3"]["num_tasks"].as_u64().unwrap() as usize,
        passk["per_task"].as_array().unwrap().len()
    );

    // A second run on the same points, in a fresh folder (no LLM cache), with a's store.
    let b = dir.path().join("b");
    let store = a.join("rollouts");
    succeeded(qval_run(&file, &b).args(["--rollout-store", s(&store)]));
    assert_eq!(
        server.requests(),
        requests,
        "no request: every rollout came from the store"
    );
    assert_eq!(rollouts_run(&b, "mvmc-q").0, 0);
    for f in ["labels/mvmc-q.jsonl", "labels/mvmc-q-mean.jsonl", "summary.md"] {
        assert_eq!(bytes(&a.join(f)), bytes(&b.join(f)), "{f}: the same bytes");
    }

    // The run folder moved elsewhere: its own store still hits.
    let moved = dir.path().join("elsewhere").join("moved");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&a, &moved).unwrap();
    succeeded(qval_run(&file, &moved).args(["--redo", "label"]));
    assert_eq!(rollouts_run(&moved, "mvmc-q").0, 0);
    assert_eq!(server.requests(), requests);
    assert_eq!(
        bytes(&moved.join("labels/mvmc-q.jsonl")),
        bytes(&b.join("labels/mvmc-q.jsonl"))
    );

    // The store can be listed and pruned.
    let listed = run_ok(&["rollouts", "list", s(&moved.join("rollouts"))]);
    assert!(listed.contains("llm-agent("), "{listed}");
    let pruned = run_ok(&["rollouts", "prune", s(&moved.join("rollouts")), "--policy", "llm-agent"]);
    assert!(pruned.contains("removed") && !pruned.contains("removed 0 "), "{pruned}");
    let listed = run_ok(&["rollouts", "list", s(&moved.join("rollouts"))]);
    assert!(listed.contains(": 0 entries"), "{listed}");
    refused(&["rollouts", "prune", s(&moved.join("rollouts"))], 2);
}

#[test]
fn mcts_labels_run_and_their_settings_are_checked_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = agent_server();
    let mcts = "[[labels]]\nmethod = \"mcts\"\nsignal = \"v\"\nmcts_iterations = 6\nmcts_expansion_width = 2\n";
    let file = write_experiment(dir.path(), "m.toml", &experiment(&server, mcts, ""));
    let run = dir.path().join("m");
    let text = succeeded(qval_run(&file, &run));
    assert!(text.contains("MCTS, 6 returns, width 2"), "{text}");
    let labels = rows(&run.join("labels/mcts-v.jsonl"));
    assert!(labels.len() >= 6);
    for l in &labels {
        assert_eq!(l["returns"].as_array().unwrap().len(), 6, "{l}");
    }
    let (simulations, _) = rollouts_run(&run, "mcts-v");
    assert!(simulations > 0);

    for (labels, at, words) in [
        (
            "[[labels]]\nmethod = \"mcts\"\nmcts_iterations = 0\n",
            "mcts_iterations",
            "1..=100000",
        ),
        (
            "[[labels]]\nmethod = \"mcts\"\nmcts_exploration_constant = -1.0\n",
            "mcts_exploration_constant",
            ">= 0",
        ),
        (
            "[[labels]]\nmcts_expansion_width = 3\n",
            "mcts_expansion_width",
            "`method = \"mcts\"`",
        ),
    ] {
        let (line, _) = refused_experiment(dir.path(), "bad.toml", &experiment(&server, labels, ""));
        assert!(
            line.contains(at) && line.contains(words) && line.contains("bad.toml:"),
            "{line}"
        );
    }
    for (passk, words) in [
        ("[passk]\nk = [0]\n", "passk.k[0]"),
        (
            "[passk]\nsource = \"fresh\"\nlabel_set = \"mvmc-q\"\n",
            "passk.label_set",
        ),
        ("[passk]\nlabel_set = \"nope\"\n", "unknown label set"),
        ("[passk]\nwarn_below = 2.0\n", "passk.warn_below"),
    ] {
        let text = experiment(&server, "[[labels]]\nrollouts = 1\n", &format!("\n{passk}"));
        let (line, _) = refused_experiment(dir.path(), "bad.toml", &text);
        assert!(line.contains(words) && line.contains("bad.toml:"), "{line}");
    }
}
