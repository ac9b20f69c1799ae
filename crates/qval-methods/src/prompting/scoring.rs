//! The self-distillation family (sdpo, sdpo-gt) and Δbelief: ranking methods that read the
//! log-probabilities a model gives a *given* continuation ([`Backend::score`]), as the
//! published testbed defines them (`sdpo_ranking.py`, `delta_belief_ranking.py`):
//!
//! - **sdpo**: the candidate's action text is scored twice, as the reply to a student
//!   prompt (the state) and to a teacher prompt (the state and the environment's response to
//!   that action). Score = mean over its tokens of (teacher log-prob - student log-prob); NaN
//!   when either side has no tokens or the token counts differ.
//! - **sdpo-gt**: sdpo whose teacher also sees the next expert action from the resulting
//!   state and a summary of the stored expert rollout (the best MVMC rollout of the
//!   candidate's label, [`qval_core::ExpertRollout`]): an oracle-teacher ablation.
//! - **delta-belief**: belief = log p(Yes) - log(p(Yes) + p(No)) for a success question;
//!   score = belief after seeing the candidate and its outcome minus belief before (the
//!   "before" term is shared by a state's candidates, so it never changes their order).
//!
//! Scoring needs a backend with the `scoring` capability (vLLM); the constructors refuse
//! any other before a point is scored. Prompt texts follow the published wording; what names
//! the environment's states, actions and evidence is the environment's own
//! ([`qval_core::ScoringWording`], from `ctx.profile`: the generic wording unless the
//! environment gives its own); the state itself is shown as every qval prompt shows it.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

use super::base::{Base, ReportsUsage};
use crate::MethodsError;
use crate::llm::prompt::{Layout, Slot, fitted_layout_parts, system_and_user, system_head, system_tail};
use crate::llm::{Backend, LlmError, Message, Part, PromptOptions, SCORING_CAPABILITY, ScoreRequest};
use qval_core::{
    CoreError, DenseSignalMethod, EvaluationPoint, ExpertLabels, ExpertRollout, MethodContext, Result, Signal,
};

/// Which score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoringKind {
    /// Teacher (state and response) minus student (state), per token of the action.
    Sdpo,
    /// Sdpo whose teacher also sees the expert rollout from the resulting state.
    SdpoGt,
    /// Change of log p(success) once the candidate's outcome is shown.
    DeltaBelief,
}

impl ScoringKind {
    /// The method's published name.
    pub fn name(self) -> &'static str {
        match self {
            ScoringKind::Sdpo => "sdpo",
            ScoringKind::SdpoGt => "sdpo-gt",
            ScoringKind::DeltaBelief => "delta-belief",
        }
    }
}

const SUCCESS_QUESTION: &str = "Question: Given the task and reward function, is the agent likely to eventually \
    achieve a successful overall outcome from here, assuming optimal future decisions thereafter?\n\
    Answer with exactly one word: Yes or No.";
const ANSWER_NOT_DIRECTLY: &str = "Do not answer directly. The assistant continuation being scored is the one-word \
    answer to the success question below.";

/// The expert evidence block of an sdpo-gt teacher, in the published layout and wording
/// (published `ExpertContinuation.format_block`; the reward printed as Python's `:g`), with
/// the environment's labels (`ctx.profile.scoring().expert`).
pub fn expert_block(e: Option<&ExpertRollout>, l: &ExpertLabels) -> String {
    let Some(e) = e else {
        return "[No expert continuation was available for this candidate.]".into();
    };
    let mut lines = vec![
        format!(
            "The {} below occurs after the {} has already been executed in the {}.",
            l.unit, l.candidate, l.state
        ),
        format!(
            "Use it only as evidence about the original {}; it is not a replacement command to output.",
            l.candidate
        ),
        format!("{}: {}", l.next, e.next_action.as_deref().unwrap_or("unknown")),
        "Structured stored expert rollout summary:".into(),
    ];
    match e.success_step {
        Some(n) => {
            lines.push(format!("{}: yes", l.reached));
            lines.push(format!("{}: {n}", l.steps));
            lines.push(format!("Remaining distance proxy: {n} {}", l.remaining_success));
        }
        None => {
            lines.push(format!("{}: no success observed", l.reached));
            lines.push(format!("{}: {}", l.observed, e.steps.saturating_sub(1)));
            lines.push(format!("Remaining distance proxy: {}", l.remaining_missing));
        }
    }
    lines.push(format!(
        "{}: {}",
        l.reward,
        crate::code::eureka::format_g6(e.final_reward)
    ));
    lines.push(format!(
        "Stored expert rollout outcome: {}",
        if e.success_step.is_some() {
            "success"
        } else {
            "no success observed"
        }
    ));
    lines.join("\n")
}

/// A state's shared "before" belief, computed once.
type Belief = OnceCell<std::result::Result<f64, CoreError>>;

/// sdpo, sdpo-gt or Δbelief over a scoring backend. Each candidate point (from
/// [`super::expand_candidates`], or any point with an action) is scored on its own; the
/// per-state evaluation ranks a state's candidates by these scores.
pub struct ContinuationScoring {
    base: Base,
    kind: ScoringKind,
    expert: HashMap<String, ExpertRollout>,
    before: Mutex<HashMap<String, Arc<Belief>>>,
}

impl ContinuationScoring {
    /// The method `kind` over `backend`.
    ///
    /// # Errors
    /// [`MethodsError::Unsupported`] if the backend lacks the `scoring` capability: checked
    /// here, before any point is scored.
    pub fn new(
        kind: ScoringKind,
        backend: Arc<dyn Backend>,
        options: PromptOptions,
    ) -> std::result::Result<Self, MethodsError> {
        if !backend.capabilities().scoring {
            return Err(MethodsError::Unsupported {
                method: kind.name().into(),
                message: format!("backend `{}` lacks {SCORING_CAPABILITY}", backend.name()),
            });
        }
        Ok(ContinuationScoring {
            base: Base::new(backend, Signal::Q, options),
            kind,
            expert: HashMap::new(),
            before: Mutex::new(HashMap::new()),
        })
    }

    /// The stored expert rollouts sdpo-gt's teacher sees, by point id (from the candidates'
    /// Q labels, [`qval_core::Label::expert`]).
    pub fn with_expert(mut self, expert: HashMap<String, ExpertRollout>) -> Self {
        self.expert = expert;
        self
    }

    /// The state's description: task, history and current state (no action).
    fn state_parts(&self, point: &EvaluationPoint, ctx: &MethodContext, reserved: usize) -> Vec<Part> {
        let mut state_only = ctx.clone();
        state_only.include_next_state = false;
        fitted_layout_parts(
            point,
            &state_only,
            Signal::V,
            &self.base.options,
            reserved,
            Layout::Scoring,
        )
    }

    /// The published system prompt: the ranking opener (Δbelief: its own), the Q-value
    /// definition, the method's paragraph and per-environment guidance, the preset's guidance
    /// and the environment.
    fn system(&self, ctx: &MethodContext) -> String {
        let f = ctx.profile.scoring();
        let mut head = system_head(ctx, self.base.options.preset, Slot::Ranking, Signal::Q);
        let own: Vec<String> = match self.kind {
            ScoringKind::Sdpo => std::iter::once(
                "You will evaluate one fixed candidate action at a time. The base policy scores the candidate from the \
                 original state. A self-teacher may additionally see environment feedback produced after that same \
                 action was attempted, and should use that feedback as per-turn evidence about whether the original \
                 action improved expected future success from the current state."
                    .to_string(),
            )
            .chain(f.sdpo_guidance.as_deref().map(String::from))
            .collect(),
            ScoringKind::SdpoGt => std::iter::once(
                "You will evaluate one fixed candidate action at a time. The base policy scores the candidate from the \
                 original state. A self-teacher may additionally see environment feedback produced after that same \
                 action was attempted, the next expert action from the resulting state, and a compact stored expert \
                 rollout summary. It should use that privileged evidence to judge whether the original action \
                 improved expected future success from the current state."
                    .to_string(),
            )
            .chain(f.gt_guidance.as_deref().map(String::from))
            .collect(),
            ScoringKind::DeltaBelief => {
                head[0] = "You are an expert at judging how candidate actions change an agent's probability of \
                           eventual success in a sequential decision-making environment."
                    .into();
                vec![
                    "Interpret 'successful overall outcome' using the task and reward function below. For \
                     sparse-success tasks, this means eventually completing the task. For dense-reward tasks, this \
                     means achieving a strong overall return."
                        .into(),
                    "Each candidate is scored by the change in log-probability of the one-word answer 'Yes' to a \
                     success question after the candidate's observed outcome is revealed."
                        .into(),
                ]
            }
        };
        let mut parts: Vec<String> = head.drain(..2).collect();
        parts.extend(own);
        parts.extend(head);
        parts.extend(system_tail(ctx));
        parts.join("\n\n")
    }

    fn text(t: impl Into<String>) -> Part {
        Part::Text { text: t.into() }
    }

    /// The response to the candidate, as the teacher (or Δbelief's "after") sees it.
    fn response_text(point: &EvaluationPoint, ctx: &MethodContext) -> Option<String> {
        ctx.include_next_state.then(|| point.next_observation.text.clone())
    }

    /// Sdpo's (student, teacher) messages for a candidate.
    pub fn sdpo_messages(&self, point: &EvaluationPoint, ctx: &MethodContext) -> (Vec<Message>, Vec<Message>) {
        let f = ctx.profile.scoring();
        let system = self.system(ctx);
        let mut student = vec![Self::text(&*f.student_opening)];
        student.extend(self.state_parts(point, ctx, system.len()));
        student.push(Self::text(&*f.student_closing));
        let gt = self.kind == ScoringKind::SdpoGt;
        let mut teacher = vec![Self::text(if gt { &*f.expert_opening } else { &*f.teacher_opening })];
        teacher.extend(self.state_parts(point, ctx, system.len()));
        let feedback = Self::response_text(point, ctx)
            .unwrap_or_else(|| "[No explicit feedback was available for this action.]".into());
        teacher.push(Self::text(format!("{}\n{feedback}", f.response_heading)));
        if gt {
            teacher.push(Self::text(format!(
                "{}\n{}",
                f.expert_heading,
                expert_block(self.expert.get(&point.id), &f.expert)
            )));
        }
        teacher.push(Self::text(if gt { &*f.expert_closing } else { &*f.teacher_closing }));
        (system_and_user(&system, student), system_and_user(&system, teacher))
    }

    /// Δbelief's messages: before any outcome (`None`), or after `point`'s candidate.
    pub fn belief_messages(&self, point: &EvaluationPoint, ctx: &MethodContext, after: bool) -> Vec<Message> {
        let system = self.system(ctx);
        let mut parts = vec![Self::text(if after {
            "Re-assess the same situation after one specific candidate action has been attempted and its observed \
             outcome is available."
        } else {
            "Assess the current situation before any candidate outcome is shown."
        })];
        parts.extend(self.state_parts(point, ctx, system.len()));
        if after {
            parts.push(Self::text(format!("**Candidate Action:**\n{}", point.action_text)));
            // As published, the outcome block only when the context shows next states.
            if let Some(observed) = Self::response_text(point, ctx) {
                parts.push(Self::text(format!("**Observed Resulting State:**\n{observed}")));
            }
        }
        parts.push(Self::text(ANSWER_NOT_DIRECTLY));
        parts.push(Self::text(SUCCESS_QUESTION));
        system_and_user(&system, parts)
    }

    async fn log_success(&self, messages: Vec<Message>) -> Result<f64, CoreError> {
        let ask = |c: &str| ScoreRequest {
            messages: messages.clone(),
            continuation: c.to_string(),
        };
        let r = self.base.backend.score_batch(&[ask("Yes"), ask("No")]).await;
        let mut lp = [0.0; 2];
        for (i, x) in r.into_iter().enumerate() {
            lp[i] = x.map_err(scoring_failed)?.sum();
        }
        if !lp.iter().all(|x| x.is_finite()) {
            return Err(CoreError::Method("the server returned no tokens for Yes or No".into()));
        }
        let (y, n) = (lp[0], lp[1]);
        let m = y.max(n);
        Ok(y - (m + ((y - m).exp() + (n - m).exp()).ln()))
    }

    async fn score(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64, CoreError> {
        match self.kind {
            ScoringKind::Sdpo | ScoringKind::SdpoGt => {
                let action = point.action_text.trim();
                if action.is_empty() {
                    return Err(CoreError::Method("the candidate's action text is empty".into()));
                }
                let (student, teacher) = self.sdpo_messages(point, ctx);
                let ask = |messages| ScoreRequest {
                    messages,
                    continuation: point.action_text.clone(),
                };
                let mut r = self.base.backend.score_batch(&[ask(student), ask(teacher)]).await;
                let teacher = r.pop().expect("two results").map_err(scoring_failed)?;
                let student = r.pop().expect("two results").map_err(scoring_failed)?;
                if teacher.tokens.is_empty() || student.tokens.is_empty() {
                    return Err(CoreError::Method("the server returned no tokens for the action".into()));
                }
                if teacher.tokens.len() != student.tokens.len() {
                    return Err(CoreError::Method(
                        format!(
                            "token-length mismatch: {} teacher tokens, {} student tokens",
                            teacher.tokens.len(),
                            student.tokens.len()
                        )
                        .into(),
                    ));
                }
                let n = teacher.tokens.len() as f64;
                Ok(teacher
                    .tokens
                    .iter()
                    .zip(&student.tokens)
                    .map(|(t, s)| t.logprob - s.logprob)
                    .sum::<f64>()
                    / n)
            }
            ScoringKind::DeltaBelief => {
                let state = point.candidate_of.clone().unwrap_or_else(|| point.id.clone());
                let cell = self.before.lock().expect("lock").entry(state).or_default().clone();
                let before = cell
                    .get_or_init(|| self.log_success(self.belief_messages(point, ctx, false)))
                    .await
                    .as_ref()
                    .map(|v| *v)
                    .map_err(CoreError::for_each_point)?;
                let after = self.log_success(self.belief_messages(point, ctx, true)).await?;
                Ok(after - before)
            }
        }
    }
}

fn scoring_failed(e: LlmError) -> CoreError {
    crate::llm::failed("LLM scoring failed", e)
}

impl ReportsUsage for ContinuationScoring {
    fn usage(&self) -> serde_json::Value {
        self.base.usage.snapshot()
    }
}

#[async_trait]
impl DenseSignalMethod for ContinuationScoring {
    fn name(&self) -> String {
        format!("{}-q", self.kind.name())
    }
    fn signal(&self) -> Signal {
        Signal::Q
    }
    async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        self.score(point, ctx).await
    }
}
