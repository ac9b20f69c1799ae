//! Few-shot example trajectories (published `example_trajectories_file`): read from the
//! published JSON layout and rendered as the prompts' `## Example Trajectories` section.
//!
//! The file: `{"trajectories": [{"total_reward", "success", "transitions": [{"observation",
//! "raw_action", "extracted_action", "resolved_action", "reward", "terminated"}]}]}`. Each
//! example is `### Example i`, `**Outcome: Success|Failure** (reward: R)`, then one
//! `[Turn j]` block per transition (observation, the action as resolved, else as extracted,
//! else as written, and the reward), the blocks separated by blank lines. Numbers are written
//! as the file gives them (`1` stays `1`, `1.0` stays `1.0`), as Python prints them.
//!
//! ```
//! use qval_methods::prompting::examples::example_trajectories_section;
//! let json = r#"{"trajectories": [{"total_reward": 1.0, "success": true, "transitions": [
//!     {"observation": "S at (0,0)", "raw_action": "go right", "extracted_action": "right",
//!      "resolved_action": null, "reward": 0.0, "terminated": false}]}]}"#;
//! assert_eq!(
//!     example_trajectories_section(json).unwrap(),
//!     "## Example Trajectories\n\n### Example 1\n**Outcome: Success** (reward: 1.0)\n\n\
//!      [Turn 1]\nObservation: S at (0,0)\nAction: right\nReward: 0.0"
//! );
//! ```

use serde::Deserialize;
use serde_json::Number;

#[derive(Deserialize)]
struct File {
    trajectories: Vec<Example>,
}

#[derive(Deserialize)]
struct Example {
    total_reward: Number,
    success: bool,
    transitions: Vec<Transition>,
}

#[derive(Deserialize)]
struct Transition {
    observation: String,
    #[serde(default)]
    raw_action: Option<String>,
    #[serde(default)]
    extracted_action: Option<String>,
    #[serde(default)]
    resolved_action: Option<String>,
    reward: Number,
    #[allow(dead_code)]
    #[serde(default)]
    terminated: bool,
}

/// The most example trajectories a file may hold (each goes into every prompt).
pub const MAX_EXAMPLES: usize = 100;

/// The `## Example Trajectories` section of the file's text (published layout).
///
/// # Errors
/// Text that is not the published layout (the JSON error, with its line and column), or
/// more than [`MAX_EXAMPLES`] trajectories.
pub fn example_trajectories_section(json: &str) -> Result<String, String> {
    let file: File = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if file.trajectories.is_empty() {
        return Err("no trajectories".into());
    }
    if file.trajectories.len() > MAX_EXAMPLES {
        return Err(format!(
            "{} trajectories: at most {MAX_EXAMPLES} (each goes into every prompt)",
            file.trajectories.len()
        ));
    }
    let mut parts = vec!["## Example Trajectories".to_string()];
    for (i, t) in file.trajectories.iter().enumerate() {
        let outcome = if t.success { "Success" } else { "Failure" };
        let mut turns = vec![format!(
            "### Example {}\n**Outcome: {outcome}** (reward: {})",
            i + 1,
            t.total_reward
        )];
        for (j, tr) in t.transitions.iter().enumerate() {
            // Python's `a or b or c`: the first that is neither None nor empty.
            let action = [&tr.resolved_action, &tr.extracted_action, &tr.raw_action]
                .into_iter()
                .flatten()
                .find(|a| !a.is_empty())
                .map(String::as_str)
                .unwrap_or_else(|| tr.raw_action.as_deref().unwrap_or("None"));
            turns.push(format!(
                "[Turn {}]\nObservation: {}\nAction: {action}\nReward: {}",
                j + 1,
                tr.observation,
                tr.reward
            ));
        }
        parts.push(turns.join("\n\n"));
    }
    Ok(parts.join("\n\n"))
}
