//! What FrozenLake tells methods about itself ([`qval_core::EnvProfile`]): the scoring
//! family's wording and the embedding family's goal texts, as published.

use qval_core::{EnvProfile, ExpertLabels, GoalTexts, ScoringWording};

/// FrozenLake's profile; `images`: whether observations carry pictures as configured.
pub(crate) fn profile(images: bool) -> EnvProfile {
    EnvProfile::default()
        .with_scoring(scoring_wording())
        .with_goal_texts(goal_texts())
        .with_image_goal_texts(vision_goal_texts())
        .with_images(images)
}

/// How the scoring family's prompts (sdpo, sdpo-gt, Δbelief) name FrozenLake's grid, moves
/// and expert evidence: the published texts.
pub fn scoring_wording() -> ScoringWording {
    ScoringWording {
        student_opening: "Choose the next FrozenLake move for the following decision point. Use the current grid, \
            the agent position marked '@', the goal (G), holes (H), and the available moves: left, down, right, up."
            .into(),
        student_closing: "Respond with exactly one valid FrozenLake move from: left, down, right, up. Prefer moves \
            that keep the agent on safe frozen tiles, make progress toward the goal, avoid holes, and avoid \
            wasting the limited step budget. The assistant continuation being scored is that move itself."
            .into(),
        teacher_opening: "Choose again from the same FrozenLake grid position after seeing the immediate \
            environment response produced by one candidate move."
            .into(),
        teacher_closing: "Use this one-turn response only as evidence about the candidate move's quality in the \
            current FrozenLake state: whether it kept the agent on safe ice, avoided holes, moved closer to the \
            goal along a viable path, avoided off-grid no-ops or backtracking, preserved future safe moves, and \
            used the remaining step budget efficiently. If the response shows the agent reached the goal, heavily \
            reward the move; if it shows the agent fell into a hole or entered a dead-end region, heavily \
            penalize it. Do not reward a move merely because the response makes the move easy to reconstruct. \
            The assistant continuation being scored is the original candidate move itself, so do not rewrite or \
            replace it here."
            .into(),
        expert_opening: "Choose again from the same FrozenLake grid position after seeing the immediate \
            environment response produced by one candidate move, the next expert move from the resulting grid \
            state, and a structured outcome summary from the stored expert rollout."
            .into(),
        expert_closing: "Use the immediate grid response, next expert move, and structured rollout summary to \
            judge the original candidate move from the current FrozenLake grid state. Prefer moves that keep the \
            agent on safe ice, avoid holes and off-grid no-ops, reduce expert distance to the goal, preserve \
            future safe moves, and use the remaining step budget efficiently. Treat a short successful stored \
            expert rollout as strong positive evidence; treat no observed success as weaker evidence, not proof \
            that the state is unsolvable. Do not reward a move merely because the response or next expert move \
            makes it easy to reconstruct. The assistant continuation being scored is the original candidate move \
            itself, so do not rewrite or replace it."
            .into(),
        response_heading: "**Immediate FrozenLake Response After The Candidate Move:**".into(),
        expert_heading: "**Expert Rollout Evidence After The Candidate Move:**".into(),
        sdpo_guidance: Some(
            "For FrozenLake, this SDPO signal is per-turn: the teacher may use only the immediate grid response \
             after the candidate move. Treat that response as evidence about sparse goal-reaching progress, hole \
             avoidance, shortest safe path progress, off-grid no-ops, backtracking, terminal success or failure, \
             and the remaining step budget from the resulting grid state."
                .into(),
        ),
        gt_guidance: Some(
            "For FrozenLake, this SDPO variant is an oracle-teacher ablation: the teacher may use the immediate \
             grid response after the candidate move, the next expert move from the resulting grid state, and a \
             structured stored rollout summary. Treat that evidence as information about goal-reaching progress, \
             hole avoidance, off-grid no-ops, backtracking, remaining safe path distance to the goal, and terminal \
             success or failure."
                .into(),
        ),
        expert: ExpertLabels {
            state: "FrozenLake grid state".into(),
            unit: "expert move".into(),
            candidate: "candidate move".into(),
            next: "Best next expert move after candidate result".into(),
            reached: "Stored expert rollout reached goal".into(),
            steps: "Expert moves from candidate result to success".into(),
            observed: "Expert moves from candidate result observed".into(),
            remaining_success: "expert move(s) to goal".into(),
            remaining_missing: "goal was not observed in the stored expert rollout".into(),
            reward: "Final observed environment reward".into(),
        },
    }
}

/// The embedding family's texts for FrozenLake's text observations.
pub fn goal_texts() -> GoalTexts {
    GoalTexts {
        goal: Some("The agent @ has reached the goal G of the frozen lake.".into()),
        baseline: "A frozen lake grid with a start S, frozen tiles F, holes H and a goal G.".into(),
        negatives: vec![
            "The agent @ has fallen into a hole H.".into(),
            "The agent @ is still at the start S, far from the goal.".into(),
            "The agent @ is walking on frozen tiles F away from the goal.".into(),
        ],
    }
}

/// FrozenLake's texts for pictures, as published for the VLE methods: the goal is each
/// point's task text; baseline "a blank frozen lake grid"; negatives "the agent fell into
/// a hole", "an empty frozen lake", "a random unrelated scene".
pub fn vision_goal_texts() -> GoalTexts {
    GoalTexts {
        goal: None,
        baseline: "a blank frozen lake grid".into(),
        negatives: vec![
            "the agent fell into a hole".into(),
            "an empty frozen lake".into(),
            "a random unrelated scene".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_holds_the_published_texts() {
        let p = profile(false);
        assert_eq!(vision_goal_texts().negatives.len(), 3);
        assert!(!p.gives_images() && profile(true).gives_images());
        assert_eq!(p.goal_texts(), Some(&goal_texts()));
        assert_eq!(
            p.scoring().response_heading,
            "**Immediate FrozenLake Response After The Candidate Move:**"
        );
        assert_eq!(p.min_chars(), Default::default(), "never cut, as published");
    }
}
