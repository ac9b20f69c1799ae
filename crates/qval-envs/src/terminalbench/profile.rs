//! What TerminalBench tells methods about itself ([`qval_core::EnvProfile`]): the scoring
//! family's wording and the published context's prompt minimums.

use qval_core::{EnvProfile, ExpertLabels, MinChars, ScoringWording};

/// TerminalBench's profile.
pub(crate) fn profile() -> EnvProfile {
    EnvProfile::default()
        .with_scoring(scoring_wording())
        .with_min_chars(min_chars())
}

/// The published TerminalBench context's minimums (`tblite_easy_40ms_react_tags.yaml`):
/// history observations 2048 characters, current and next state 4096.
pub fn min_chars() -> MinChars {
    MinChars {
        history: Some(2048),
        current: Some(4096),
        next: Some(4096),
    }
}

/// How the scoring family's prompts (sdpo, sdpo-gt, Δbelief) name TerminalBench's shell
/// session, commands and verifier evidence.
pub fn scoring_wording() -> ScoringWording {
    ScoringWording {
        // The openings and the student's closing are qval's wording in the published shape.
        student_opening: "Choose the next shell command for the following terminal task decision point.".into(),
        student_closing: "Respond with exactly one shell command and no explanation. The assistant continuation \
            being scored is that command itself."
            .into(),
        teacher_opening: "Choose again from the same terminal decision point after seeing the immediate shell \
            response produced by one candidate command."
            .into(),
        teacher_closing: "Use this one-turn shell response only as evidence about the candidate command's quality \
            in the current TerminalBench task: whether it made durable file or configuration progress, produced \
            useful diagnostics, revealed or resolved an error, preserved shell state, avoided redundant probes, \
            and moved toward eventual verifier success. A command with no output can still be good if it changed \
            state usefully; an error can be useful only when it provides needed diagnostic information. Do not \
            reward a command merely because its output makes the command easy to reconstruct. The assistant \
            continuation being scored is the original candidate command itself, so do not rewrite or replace it \
            here."
            .into(),
        expert_opening: "Choose again from the same TerminalBench shell state after seeing the immediate shell \
            response produced by one candidate command, the next expert command from the resulting state, and a \
            structured verifier outcome summary from the stored expert rollout."
            .into(),
        expert_closing: "Use the immediate shell response, next expert command, and structured verifier outcome \
            summary to judge the original candidate command from the current TerminalBench shell state. Prefer \
            commands that make durable file or configuration progress, produce useful diagnostics or validation \
            evidence, preserve needed shell state, reduce expert distance to verifier success, and avoid redundant \
            probes or noisy dead ends. Treat a short successful stored expert rollout as strong positive evidence; \
            treat no observed success as weaker evidence, not proof that the state is unsolvable. Do not reward a \
            command merely because its output or the next expert command makes it easy to reconstruct. The \
            assistant continuation being scored is the original candidate command itself, so do not rewrite or \
            replace it."
            .into(),
        response_heading: "**Immediate Shell Response After The Candidate Command:**".into(),
        expert_heading: "**Expert Shell Rollout Evidence After The Candidate Command:**".into(),
        sdpo_guidance: Some(
            "For TerminalBench, this SDPO signal is per-turn: the teacher may use only the immediate shell \
             response after the candidate command. Treat that response as evidence about concrete progress toward \
             the task and eventual verifier success, including useful file changes, targeted diagnostics, \
             validation signals, and unresolved errors."
                .into(),
        ),
        gt_guidance: Some(
            "For TerminalBench, this SDPO variant is an oracle-teacher ablation: the teacher may use the immediate \
             shell response after the candidate command, the next expert shell command from the resulting \
             persistent shell state, and a structured stored verifier outcome summary. Treat that evidence as \
             information about durable task progress, useful diagnostics, validation signals, shell-state \
             preservation, remaining distance to verifier success, and unresolved errors."
                .into(),
        ),
        expert: ExpertLabels {
            state: "persistent TerminalBench shell session".into(),
            unit: "expert command".into(),
            candidate: "candidate command".into(),
            next: "Best next expert command after candidate result".into(),
            reached: "Stored expert rollout reached verifier success".into(),
            steps: "Expert shell steps from candidate result to success".into(),
            observed: "Expert shell steps from candidate result observed".into(),
            remaining_success: "expert shell step(s) to verifier success".into(),
            remaining_missing: "verifier success was not observed in the stored expert rollout".into(),
            reward: "Final observed verifier reward".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_holds_the_published_texts_and_minimums() {
        let p = profile();
        assert_eq!(p.min_chars().history, Some(2048));
        assert!(p.goal_texts().is_none() && !p.gives_images());
        assert_eq!(p.scoring().expert.state, "persistent TerminalBench shell session");
    }
}
