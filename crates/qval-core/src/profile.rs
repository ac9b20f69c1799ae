//! [`EnvProfile`]: what an environment tells methods about itself, as plain data.
//!
//! Methods never ask *which* environment they are in; they read the profile the environment
//! offers ([`crate::Environment::profile`]), carried to them by
//! [`MethodContext::profile`](crate::MethodContext::profile):
//!
//! - [`ScoringWording`]: how the scoring family's prompts (sdpo, sdpo-gt, Δbelief) name the
//!   environment's states, actions and evidence;
//! - [`GoalTexts`]: what the embedding family compares states with, for text and for pictures;
//! - [`MinChars`]: how short prompt fields may be cut to meet a token budget;
//! - whether observations carry pictures.
//!
//! [`EnvProfile::default`] is the generic profile: the published generic wording, no goal
//! texts, no pictures, fields never cut.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A text of the profile: borrowed for the texts compiled into qval, owned for the others
/// (such as a Python adapter's).
pub type Text = Cow<'static, str>;

/// The texts an embedding method compares with, per environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalTexts {
    /// The goal description (`None`: the task's instruction).
    #[serde(default)]
    pub goal: Option<String>,
    /// A neutral description of the environment (VLM-RM's baseline).
    pub baseline: String,
    /// Descriptions of outcomes other than the goal (SOR's negatives).
    #[serde(default)]
    pub negatives: Vec<String>,
}

/// The shortest a field may be cut to (characters), as the published environment contexts
/// set them (for example history observations 2048, current and next state 4096). `None`:
/// the field is never cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinChars {
    /// Observations of earlier turns.
    pub history: Option<usize>,
    /// The current state.
    pub current: Option<usize>,
    /// The resulting state.
    pub next: Option<usize>,
}

/// How the scoring family's prompts name things in an environment (the published texts).
///
/// The [`Default`] is the published generic wording, for environments that give none. In a
/// profile read from JSON, a missing field keeps its generic text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringWording {
    /// The first paragraph of the student prompt (sdpo), before the state.
    pub student_opening: Text,
    /// The last paragraph of the student prompt, after the state.
    pub student_closing: Text,
    /// The first paragraph of sdpo's teacher prompt.
    pub teacher_opening: Text,
    /// The last paragraph of sdpo's teacher prompt.
    pub teacher_closing: Text,
    /// The first paragraph of sdpo-gt's teacher prompt.
    pub expert_opening: Text,
    /// The last paragraph of sdpo-gt's teacher prompt.
    pub expert_closing: Text,
    /// The heading of the response to the candidate in a teacher prompt.
    pub response_heading: Text,
    /// The heading of the expert evidence in sdpo-gt's teacher prompt.
    pub expert_heading: Text,
    /// The per-environment system guidance of sdpo (published: none for the generic family).
    pub sdpo_guidance: Option<Text>,
    /// The per-environment system guidance of sdpo-gt.
    pub gt_guidance: Option<Text>,
    /// The labels of the expert block (published `ExpertContinuation.format_block`).
    pub expert: ExpertLabels,
}

/// The labels of sdpo-gt's expert evidence block (published `ExpertContinuation.format_block`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExpertLabels {
    /// Where the expert acts (`FrozenLake grid state`).
    pub state: Text,
    /// One expert step (`expert move`).
    pub unit: Text,
    /// The candidate (`candidate move`).
    pub candidate: Text,
    /// The label of the next expert action.
    pub next: Text,
    /// The label of whether the stored rollout reached the goal.
    pub reached: Text,
    /// The label of the steps to success.
    pub steps: Text,
    /// The label of the steps observed without success.
    pub observed: Text,
    /// What the remaining distance counts, after the number of steps.
    pub remaining_success: Text,
    /// The remaining distance where no success was observed.
    pub remaining_missing: Text,
    /// The label of the final reward.
    pub reward: Text,
}

impl Default for ScoringWording {
    fn default() -> Self {
        ScoringWording {
            student_opening: "Choose the next action for the following decision point.".into(),
            student_closing: "Respond with exactly one action and no explanation. The assistant continuation being \
                scored is that action itself."
                .into(),
            teacher_opening: "Choose again from the same decision point after seeing the immediate environment \
                response produced by one candidate action."
                .into(),
            teacher_closing: GENERIC_CLOSING.into(),
            // The published sdpo-gt has no generic family: these follow its fallback's headings.
            expert_opening: "Choose again from the same decision point after seeing the immediate environment \
                response produced by one candidate action."
                .into(),
            expert_closing: GENERIC_CLOSING.into(),
            response_heading: "**Immediate Environment Response After The Candidate Action:**".into(),
            expert_heading: "**Short Expert Continuation After The Candidate Action:**".into(),
            sdpo_guidance: None,
            gt_guidance: None,
            expert: ExpertLabels::default(),
        }
    }
}

const GENERIC_CLOSING: &str = "Use this one-turn response only as evidence about whether the candidate action \
    improved expected future success from the current state. Do not reward an action merely because the response \
    makes the action easy to reconstruct. The assistant continuation being scored is the original candidate action \
    itself, so do not rewrite or replace it here.";

impl Default for ExpertLabels {
    /// The published fallback labels (which name ALFWorld, as published).
    fn default() -> Self {
        ExpertLabels {
            state: "ALFWorld state".into(),
            unit: "expert command".into(),
            candidate: "candidate command".into(),
            next: "Best next expert command after candidate result".into(),
            reached: "Stored expert rollout reached goal".into(),
            steps: "Expert steps from candidate result to success".into(),
            observed: "Expert steps from candidate result observed".into(),
            remaining_success: "expert step(s) to task completion".into(),
            remaining_missing: "task completion was not observed in the stored expert rollout".into(),
            reward: "Final observed task reward".into(),
        }
    }
}

/// What an environment offers methods about itself: plain data, no behaviour.
///
/// Built with the `with_*` setters from [`EnvProfile::default`] (the generic profile), or
/// read from JSON (a Python adapter's `profile()`), where every field is optional:
///
/// ```
/// use qval_core::{EnvProfile, GoalTexts, MinChars};
///
/// let p = EnvProfile::default()
///     .with_goal_texts(GoalTexts { goal: None, baseline: "a maze".into(), negatives: vec![] })
///     .with_min_chars(MinChars { history: Some(2048), ..Default::default() });
/// assert_eq!(p.goal_texts().unwrap().baseline, "a maze");
/// assert!(p.image_goal_texts().is_none() && !p.gives_images());
///
/// let read: EnvProfile = serde_json::from_str(
///     r#"{"scoring": {"response_heading": "**What The Maze Did:**"}}"#,
/// ).unwrap();
/// assert_eq!(read.scoring().response_heading, "**What The Maze Did:**");
/// assert_eq!(read.scoring().student_opening, EnvProfile::default().scoring().student_opening);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvProfile {
    scoring: ScoringWording,
    goal_texts: Option<GoalTexts>,
    image_goal_texts: Option<GoalTexts>,
    images: bool,
    min_chars: MinChars,
}

impl EnvProfile {
    /// The scoring family's wording (default: the generic wording).
    pub fn scoring(&self) -> &ScoringWording {
        &self.scoring
    }

    /// The embedding family's texts for text observations, if the environment defines them.
    pub fn goal_texts(&self) -> Option<&GoalTexts> {
        self.goal_texts.as_ref()
    }

    /// The embedding family's texts for pictures (the published VLE texts), if defined.
    pub fn image_goal_texts(&self) -> Option<&GoalTexts> {
        self.image_goal_texts.as_ref()
    }

    /// Whether observations carry pictures (`Observation::images`), as configured.
    pub fn gives_images(&self) -> bool {
        self.images
    }

    /// How short prompt fields may be cut to meet a token budget (default: never cut).
    pub fn min_chars(&self) -> MinChars {
        self.min_chars
    }

    /// With `wording` for the scoring family.
    pub fn with_scoring(mut self, wording: ScoringWording) -> Self {
        self.scoring = wording;
        self
    }

    /// With goal texts for the embedding family.
    pub fn with_goal_texts(mut self, texts: GoalTexts) -> Self {
        self.goal_texts = Some(texts);
        self
    }

    /// With the texts the embedding family compares pictures with.
    pub fn with_image_goal_texts(mut self, texts: GoalTexts) -> Self {
        self.image_goal_texts = Some(texts);
        self
    }

    /// Whether observations carry pictures.
    pub fn with_images(mut self, yes: bool) -> Self {
        self.images = yes;
        self
    }

    /// How short prompt fields may be cut.
    pub fn with_min_chars(mut self, min: MinChars) -> Self {
        self.min_chars = min;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_generic_profile_and_round_trips_through_json() {
        let p = EnvProfile::default();
        assert!(p.scoring().sdpo_guidance.is_none() && p.goal_texts().is_none());
        assert_eq!(p.min_chars(), MinChars::default());
        let full = p.clone().with_images(true).with_image_goal_texts(GoalTexts {
            goal: Some("g".into()),
            baseline: "b".into(),
            negatives: vec!["n".into()],
        });
        let back: EnvProfile = serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
        assert_eq!(back, full);
        assert_eq!(serde_json::from_str::<EnvProfile>("{}").unwrap(), p);
        let typo = serde_json::from_str::<EnvProfile>(r#"{"scoring": {"student_openin": "x"}}"#).unwrap_err();
        assert!(typo.to_string().contains("unknown field `student_openin`"), "{typo}");
    }
}
