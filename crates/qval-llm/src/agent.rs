//! An LLM as the acting agent (a [`Policy`] for any environment): the task, the reward
//! description, the earlier turns and the current observation in; one action out, read
//! with the reference's extraction (`<action>` tag, then `<answer>`, then the raw text).

use async_trait::async_trait;
use rand::Rng as _;
use std::sync::Arc;

use super::{Backend, ChatRequest, Message, Role, Sampling, extract_action};
use qval_core::{CoreError, EnvSpec, Environment, Policy, PolicyInput, QRng, Result, Turn};

/// The LLM agent. Every request carries a seed drawn from the rollout's generator, so a
/// rerun sends identical requests (and is served from a response cache when the backend
/// stack has one). A request that still fails after the backend's retries fails the
/// episode or rollout with the reason (the labeler then records the point as NaN).
#[derive(Clone)]
pub struct LlmAgent {
    backend: Arc<dyn Backend>,
    sampling: Sampling,
    history_turns: usize,
}

impl LlmAgent {
    /// The version of the prompt [`messages`](Self::messages) writes, part of the
    /// fingerprint of stored rollouts: bump it whenever the wording changes.
    pub const PROMPT_VERSION: u32 = 1;

    /// An agent over `backend` with the backend's default sampling, showing the last 40
    /// turns (the reference's history length).
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        LlmAgent {
            backend,
            sampling: Sampling::default(),
            history_turns: 40,
        }
    }

    /// Overrides the sampling parameters (the seed is drawn per request unless set here).
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Shows at most `n` earlier turns.
    pub fn with_history_turns(mut self, n: usize) -> Self {
        self.history_turns = n;
        self
    }

    /// The messages for one decision.
    pub fn messages(
        &self,
        spec: &EnvSpec,
        instruction: &str,
        observation: &str,
        step: usize,
        max_steps: usize,
        history: &[Turn],
    ) -> Vec<Message> {
        let system = format!(
            "You are an agent acting in the environment `{}`, one action per turn, at most {} turns.\n\
             Reward: {}\n{}\n\
             Think as briefly as you can, then give exactly one action inside <action>...</action>.",
            spec.name, max_steps, spec.reward_description, spec.notes
        );
        let mut user = format!("Task: {instruction}\n\n");
        let shown = &history[history.len().saturating_sub(self.history_turns)..];
        if !shown.is_empty() {
            user.push_str("Earlier turns:\n");
            for t in shown {
                user.push_str(&format!(
                    "Turn {}/{max_steps}\nObservation:\n{}\nAction: {}\n\n",
                    t.step + 1,
                    t.observation.trim_end(),
                    t.action
                ));
            }
        }
        user.push_str(&format!(
            "Now turn {}/{max_steps}. Observation:\n{}\n\nYour action, inside <action>...</action>:",
            step + 1,
            observation.trim_end()
        ));
        vec![Message::text(Role::System, system), Message::text(Role::User, user)]
    }
}

#[async_trait]
impl<E: Environment> Policy<E> for LlmAgent {
    fn name(&self) -> String {
        format!("llm-agent({})", self.backend.name())
    }

    fn uses_history(&self) -> bool {
        true
    }

    /// The backend (model and server), the sampling, the history shown and the prompt's
    /// version ([`LlmAgent::PROMPT_VERSION`]).
    fn fingerprint(&self) -> String {
        format!(
            "llm-agent({}) sampling={:?} history_turns={} prompt={}",
            self.backend.name(),
            self.sampling,
            self.history_turns,
            Self::PROMPT_VERSION
        )
    }

    async fn act(&self, env: &E, input: PolicyInput<'_, E::State>, rng: &mut QRng) -> Result<E::Action> {
        Ok(Policy::<E>::act_explained(self, env, input, rng).await?.0)
    }

    /// The action the reply names and the reasoning it states ([`crate::extract_thought`]).
    async fn act_explained(
        &self,
        env: &E,
        input: PolicyInput<'_, E::State>,
        rng: &mut QRng,
    ) -> Result<(E::Action, Option<String>)> {
        let observation = env.observe(input.state).text;
        let messages = self.messages(
            env.spec(),
            &input.task.instruction,
            &observation,
            input.step,
            input.max_steps,
            input.history,
        );
        let mut sampling = self.sampling.clone();
        let seed: u64 = rng.random();
        sampling.seed.get_or_insert(seed);
        let reply = self
            .backend
            .chat(&ChatRequest { messages, sampling })
            .await
            .map_err(|e| CoreError::Policy {
                policy: Policy::<E>::name(self),
                message: format!("the model call failed: {e}"),
            })?;
        let thought = crate::extract_thought(&crate::strip_thinking(&reply.text));
        Ok((env.parse_action(&extract_action(&reply.text)), thought))
    }
}
