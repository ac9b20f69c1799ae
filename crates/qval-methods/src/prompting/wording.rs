//! Sentences of the published prompts that depend on a method's options: the policy
//! assumption, the disclosed step penalty and the guidance on the actor's reasoning.

use qval_core::{MethodContext, PolicyAssumption};

/// The published phrase of the policy assumption: "assuming optimal play thereafter" or
/// "assuming you are the agent making all future decisions".
pub fn policy_phrase(ctx: &MethodContext) -> &'static str {
    match ctx.policy {
        PolicyAssumption::Optimal => "assuming optimal play thereafter",
        PolicyAssumption::Own => "assuming you are the agent making all future decisions",
    }
}

/// The published noun of the policy assumption: "the optimal policy" or "your own policy".
pub fn policy_noun(ctx: &MethodContext) -> &'static str {
    match ctx.policy {
        PolicyAssumption::Optimal => "the optimal policy",
        PolicyAssumption::Own => "your own policy",
    }
}

/// The published sentence appended to the reward description when the step penalty is
/// disclosed (the penalty as Python prints a float).
pub fn step_penalty_sentence(penalty: f64) -> String {
    format!("\nAdditionally, a penalty of -{penalty:?} is applied at every step to encourage shorter solutions.")
}

/// The published `actor_reasoning_guidance` block, when the prompts show the acting agent's
/// reasoning (before the evaluation instructions of direct, verifier and ranking prompts).
pub fn actor_reasoning_guidance(ctx: &MethodContext) -> Option<&'static str> {
    (ctx.include_current_thoughts || ctx.include_history_thoughts).then_some(
        "The provided information includes the acting agent's brief reasoning at each step, representing their \
         stated rationale for each action. This provides context about the agent's decision-making process, which \
         may help you better assess the quality and consequences of the chosen actions. Your evaluation should \
         focus on the actual quality of the actions and resulting states.",
    )
}
