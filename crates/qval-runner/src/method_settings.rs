//! What a method entry sets for every method it expands into ([`MethodSettings`]), and how
//! it changes what the methods are told ([`MethodSettings::apply`]).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a method entry sets for every method it expands into (the keys of [`MethodSpec`]
/// of the same names, which are read there so that a wrong value is reported at its own
/// line and column): what an LLM method's prompts show and how many points it scores.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodSettings {
    /// Whether prompts state the discount factor (default: no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclose_discount_factor: Option<bool>,
    /// Whether Q prompts and code see the resulting state (default: yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_next_state: Option<bool>,
    /// Earlier turns a prompt shows (default 40).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_history_turns: Option<usize>,
    /// Only the first N points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<usize>,
    /// Whose future play the values assume (one of the entry's list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_assumption: Option<qval_core::PolicyAssumption>,
    /// Whether prompts state the step penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclose_step_penalty: Option<bool>,
    /// The example trajectories' file, as the entry names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example_trajectories: Option<PathBuf>,
    /// Their `## Example Trajectories` section, read and rendered when the plan is made.
    #[serde(skip)]
    pub examples: Derived<std::sync::Arc<str>>,
    /// The label sets' step penalty, for a method that sends prompts (set when the plan is
    /// made; other methods are told none, so their stored context does not change).
    #[serde(skip)]
    pub step_penalty: Derived<f64>,
    /// Whether prompts show the agent's reasoning for the current action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_current_thoughts: Option<bool>,
    /// Whether prompts show the agent's reasoning in the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_history_thoughts: Option<bool>,
}

/// What the plan derives for a method from elsewhere (a file it names, the label sets): not
/// written to `run.json` (what it comes from is) and not compared (two plans of one file
/// derive the same).
#[derive(Clone, Debug)]
pub struct Derived<T>(pub Option<T>);

impl<T> Default for Derived<T> {
    fn default() -> Self {
        Derived(None)
    }
}

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl MethodSettings {
    /// `base` with the prompt keys set here.
    pub fn apply(&self, base: &qval_core::MethodContext) -> qval_core::MethodContext {
        let mut c = base.clone();
        if let Some(p) = self.policy_assumption {
            c.policy = p;
        }
        if let Some(d) = self.disclose_step_penalty {
            c.disclose_step_penalty = d;
        }
        if let Some(t) = self.include_current_thoughts {
            c.include_current_thoughts = t;
        }
        if let Some(t) = self.include_history_thoughts {
            c.include_history_thoughts = t;
        }
        if let Some(p) = self.step_penalty.0 {
            c.step_penalty = p;
        }
        if let Some(text) = &self.examples.0 {
            c.example_trajectories = text.to_string();
        }
        if let Some(d) = self.disclose_discount_factor {
            c.disclose_gamma = d;
        }
        if let Some(n) = self.include_next_state {
            c.include_next_state = n;
        }
        if let Some(h) = self.max_history_turns {
            c.history_limit = h;
        }
        c
    }
}
