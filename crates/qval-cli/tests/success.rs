//! Issue 24, item 7: "succeeded" is the environment's own definition. An environment whose
//! every step costs -1, the goal's too (CliffWalking), succeeds by reaching its goal; one that
//! says nothing keeps the default rule (a positive final reward).

mod common;

use common::{qval_run, succeeded, write_experiment};
use std::path::Path;

/// A corridor whose every step costs -1, the goal's too (as CliffWalking's): the episode ends
/// at cell 4. `Goal` says so with `succeeded()`; `Plain` leaves success to qval's default.
const CORRIDOR: &str = r#"
from qval_bridge import Adapter


class Plain(Adapter):
    purity = "snapshot"

    def __init__(self, **args):
        super().__init__(**args)
        self.pos = 0

    def spec(self):
        return {"name": "corridor", "max_steps": 10, "gamma": 0.95, "reward_description": "-1 per step", "notes": ""}

    def tasks(self):
        return [{"id": "corridor-0", "instruction": "reach 4", "params": {}}]

    def reset(self, task, rng):
        self.pos = 0

    def step(self, action, rng):
        if self.pos == 4:
            return 0.0, True
        self.pos = min(4, self.pos + 1) if action == "right" else max(0, self.pos - 1)
        return -1.0, self.pos == 4

    def observe(self):
        return f"at {self.pos}"

    def legal_actions(self):
        return ["left", "right"]

    def snapshot(self):
        return str(self.pos).encode()

    def restore(self, data, task):
        self.pos = int(data)

    def reference_action(self):
        return "right"


class Goal(Plain):
    def succeeded(self):
        return self.pos == 4
"#;

/// Runs the corridor with the adapter class `class` (every trajectory walks to the goal) and
/// returns the collect line of the output.
fn collect_line(dir: &Path, class: &str) -> String {
    std::fs::write(dir.join("corridor.py"), CORRIDOR).unwrap();
    let file = write_experiment(
        dir,
        &format!("{class}.toml"),
        &format!(
            "name = \"corridor\"\n[environment]\ntype = \"python\"\nadapter = \"corridor.py:{class}\"\n\
             [dataset]\ntrajectories = 6\ncollector = {{ type = \"reference\" }}\n\
             sampling = {{ per_trajectory = 2 }}\n[[labels]]\nrollouts = 1\n[[methods]]\ntype = \"random\"\n"
        ),
    );
    let stdout = succeeded(qval_run(&file, dir.join(class)));
    stdout
        .lines()
        .find(|l| l.contains("1. collect"))
        .unwrap_or_else(|| panic!("no collect line:\n{stdout}"))
        .to_string()
}

#[test]
fn success_is_the_environments_own_reaching_the_goal_not_a_positive_reward() {
    let dir = tempfile::tempdir().unwrap();
    let line = collect_line(dir.path(), "Goal");
    assert!(line.contains("6 succeeded (100%)"), "{line}");
    // Without `succeeded()` the default rule holds: a positive final reward, never here.
    let line = collect_line(dir.path(), "Plain");
    assert!(line.contains("0 succeeded (0%)"), "{line}");
}
