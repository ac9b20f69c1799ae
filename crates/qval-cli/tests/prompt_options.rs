//! The published prompt options, as `qval preview` shows them, against the published wording
//! (bethgelab/qval `src/qval/prompts.py` and `method_factory.py`), block by block:
//! `policy_assumption` (optimal / self; a list expands into named variants, as it does for
//! the switches), `disclose_step_penalty` (the sentence after the reward description, or the efficiency
//! guidance when a positive penalty is hidden) and `example_trajectories` (the published
//! file layout, rendered as `## Example Trajectories` after `## Reward Functions`). Each is
//! refused, at its key, on a method that sends no prompt.

mod common;

use common::{frozenlake, oracle, oracle_backend, qval_run, refused_experiment, run_ok, succeeded, write_experiment};
use std::path::Path;
use std::time::Duration;

const EFFICIENCY: &str = "All else being equal, reaching the goal in fewer steps is preferable — states and actions \
that lead to shorter successful trajectories should generally be valued higher, reflecting the importance of efficiency.";

/// The example trajectories' file, in the published layout.
const EXAMPLES: &str = r#"{"trajectories": [
  {"total_reward": 1.0, "success": true, "transitions": [
    {"observation": "SFF\nFHF\nFFG, agent at (0,0)", "raw_action": "I go right", "extracted_action": "right",
     "resolved_action": null, "reward": 0.0, "terminated": false},
    {"observation": "agent at (0,1)", "raw_action": "down", "extracted_action": "", "resolved_action": "down",
     "reward": 1.0, "terminated": true}]},
  {"total_reward": 0, "success": false, "transitions": [
    {"observation": "agent at (0,0)", "raw_action": "jump", "extracted_action": null, "resolved_action": null,
     "reward": 0, "terminated": true}]}
]}"#;

/// The published rendering of [`EXAMPLES`] (`_format_example_trajectories`).
const EXAMPLES_SECTION: &str = "## Example Trajectories\n\n### Example 1\n**Outcome: Success** (reward: 1.0)\n\n\
[Turn 1]\nObservation: SFF\nFHF\nFFG, agent at (0,0)\nAction: right\nReward: 0.0\n\n\
[Turn 2]\nObservation: agent at (0,1)\nAction: down\nReward: 1.0\n\n\
### Example 2\n**Outcome: Failure** (reward: 0)\n\n[Turn 1]\nObservation: agent at (0,0)\nAction: jump\nReward: 0";

fn preview(run: &Path, method: &str) -> String {
    run_ok(&["preview", run.to_str().unwrap(), "--method", method, "--points", "1"])
}

#[test]
fn every_prompt_option_reads_as_published_in_qval_preview() {
    let server = oracle(Duration::ZERO, vec![]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("examples.json"), EXAMPLES).unwrap();
    let rest = format!(
        r#"gamma = 0.95

[[labels]]
rollouts = 1
step_penalty = 0.01
{backend}
[[methods]]
type = "random"

[[methods]]
type = "direct"
backend = "oracle"
signal = ["q", "v", "advantage", "potential"]
policy_assumption = ["optimal", "self"]

[[methods]]
type = "direct"
name = "told"
backend = "oracle"
disclose_step_penalty = [true, false]
disclose_discount_factor = true

[[methods]]
type = "ranking"
backend = "oracle"
example_trajectories = "examples.json"
"#,
        backend = oracle_backend(&server, "")
    );
    // `gamma` belongs to the environment table: put it there.
    let text = frozenlake("options", 7, 12, &rest).replace("maps = 4\n", "maps = 4\ngamma = 0.95\n");
    let text = text.replacen("gamma = 0.95\n\n[[labels]]", "\n[[labels]]", 1);
    let file = write_experiment(dir.path(), "options.toml", &text);
    let run = dir.path().join("run");
    succeeded(qval_run(&file, &run).args(["--only", "random"]));

    let ret = "discounted cumulative reward";
    // policy_assumption: optimal (the default wording) and self, per signal.
    for (policy, phrase, noun) in [
        ("optimal", "assuming optimal play thereafter", "the optimal policy"),
        (
            "self",
            "assuming you are the agent making all future decisions",
            "your own policy",
        ),
    ] {
        let q = preview(&run, &format!("direct-q-{policy}"));
        let blocks = [
            format!(
                "The Q-value Q(s,a) represents the expected {ret} when taking action a in state s and then following \
                 {noun} thereafter. In other words, Q(s,a) is the expected return given that action a is taken in \
                 state s, {phrase}. It depends on both the state and the specific action taken."
            ),
            format!(
                "You will receive the episode's state-action history (if any), the current state, the action taken, \
                 and the resulting next state. Estimate Q(s,a) for the **Current Action** in the **Current State** — \
                 the expected {ret} when taking this action in this state, {phrase}. The history provides context \
                 about how the agent reached the current state."
            ),
        ];
        for b in &blocks {
            assert!(
                q.contains(&format!("\n\n{b}\n\n")),
                "direct-q-{policy} lacks the block\n{b}\n---\n{q}"
            );
        }
        let v = preview(&run, &format!("direct-v-{policy}"));
        for b in [
            format!(
                "The state-value V(s) represents the expected {ret} starting from state s, {phrase}. It depends only \
                 on the current state, not on any specific action."
            ),
            format!(
                "You will receive the episode's state-action history (if any) and the current state. Estimate V(s) \
                 for the **Current State** — the expected {ret} from that state, {phrase}. The history provides \
                 context about how the agent reached the current state."
            ),
        ] {
            assert!(
                v.contains(&format!("\n\n{b}\n\n")),
                "direct-v-{policy} lacks\n{b}\n---\n{v}"
            );
        }
        let a = preview(&run, &format!("direct-advantage-{policy}"));
        for b in [
            format!(
                "The advantage A(s,a) = Q(s,a) - V(s) measures how much better or worse action a is compared to the \
                 average action in state s under {noun}. Positive values mean the action is better than average; \
                 negative values mean worse. A value of 0.0 means no advantage over the average."
            ),
            format!(
                "You will receive the episode's state-action history (if any), the current state, the action taken, \
                 and the resulting next state. Estimate A(s,a) for the **Current Action** in the **Current State** — \
                 how much better or worse this action is compared to the average action, {phrase}. The history \
                 provides context about how the agent reached the current state."
            ),
        ] {
            assert!(
                a.contains(&format!("\n\n{b}\n\n")),
                "direct-advantage-{policy} lacks\n{b}\n---\n{a}"
            );
        }
        // Potentials ignore the assumption (as published).
        let p = preview(&run, &format!("direct-potential-{policy}"));
        assert!(
            p.contains("under optimal play. It depends only on the current state"),
            "{p}"
        );
        assert!(
            !p.contains("your own policy") && !p.contains("making all future decisions"),
            "{p}"
        );
        // The penalty is hidden and gamma < 1 undisclosed: the efficiency guidance.
        assert!(q.contains(EFFICIENCY), "{q}");
    }

    // disclose_step_penalty: the sentence after the reward description; no efficiency hint.
    let told = preview(&run, "told-q-penalty-disclosed");
    let sentence = "\nAdditionally, a penalty of -0.01 is applied at every step to encourage shorter solutions.";
    let rewards = told
        .split("## Reward Functions\n")
        .nth(1)
        .and_then(|r| r.split("\n\n").next())
        .unwrap_or_else(|| panic!("no reward functions:\n{told}"));
    assert!(rewards.ends_with(sentence), "{rewards:?}");
    assert!(
        told.contains("(discount factor γ=0.95)") && !told.contains(EFFICIENCY),
        "{told}"
    );
    // Gamma disclosed but the positive penalty hidden: the hint stays (published rule).
    let gamma_told = preview(&run, "told-q-penalty-hidden");
    assert!(
        gamma_told.contains(EFFICIENCY) && !gamma_told.contains("Additionally, a penalty"),
        "{gamma_told}"
    );

    // example_trajectories: right after `## Reward Functions`.
    let ranking = preview(&run, "ranking-q");
    let at = ranking
        .find(&format!("\n\n{EXAMPLES_SECTION}\n\n"))
        .unwrap_or_else(|| panic!("no example trajectories section:\n{ranking}"));
    let before = &ranking[..at];
    let last = before.rfind("\n\n## ").map(|i| &before[i + 2..]).unwrap_or_default();
    assert!(last.starts_with("## Reward Functions\n"), "{last}");
    assert!(!preview(&run, "told-q-penalty-hidden").contains("## Example Trajectories"));
}

#[test]
fn prompt_options_are_refused_at_their_key_where_they_cannot_apply() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), r#"{"trajectories": [{"success": true}]}"#).unwrap();
    let backend = "\n[backends.m]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";
    for (entry, says) in [
        (
            "type = \"random\"\npolicy_assumption = \"self\"",
            "`methods[0].policy_assumption`: `random` sends no prompts",
        ),
        (
            "type = \"heuristic\"\ndisclose_step_penalty = true",
            "`methods[0].disclose_step_penalty`: `heuristic` sends no prompts",
        ),
        (
            "type = \"random\"\nexample_trajectories = \"x.json\"",
            "`methods[0].example_trajectories`: `random` sends no prompts",
        ),
        (
            "type = \"random\"\ninclude_current_thoughts = true",
            "`methods[0].include_current_thoughts`: `random` sends no prompts",
        ),
        (
            "type = \"heuristic\"\ninclude_history_thoughts = true",
            "`methods[0].include_history_thoughts`: `heuristic` sends no prompts",
        ),
        (
            "type = \"direct\"\nbackend = \"m\"\npolicy_assumption = [\"optimal\", \"greedy\"]",
            "unknown policy assumption `greedy`",
        ),
        (
            "type = \"direct\"\nbackend = \"m\"\nexample_trajectories = \"none.json\"",
            "none.json: No such file",
        ),
        (
            "type = \"direct\"\nbackend = \"m\"\nexample_trajectories = \"bad.json\"",
            "missing field `total_reward`",
        ),
    ] {
        let text = frozenlake(
            "refused",
            3,
            4,
            &format!("\n[[labels]]\nrollouts = 1\n{backend}\n[[methods]]\n{entry}\n"),
        );
        let (msg, _) = refused_experiment(dir.path(), "refused.toml", &text);
        assert!(msg.contains(says), "{entry}: {msg}");
        assert!(msg.contains("refused.toml:"), "{entry}: {msg}");
    }
}
