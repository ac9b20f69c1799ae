//! Ranking candidates where the action set is open (TerminalBench's shell commands), as the
//! published testbed samples them ("LLM mode"): the point's own action first, then up to
//! k - 1 alternatives, each asked for up to [`MAX_ROUNDS`] times until it brings an action
//! not seen yet for the state. An alternative is stepped from the point's state; a point left
//! with fewer than 2 candidates is dropped, one with 2..k is kept.
//!
//! The alternatives come from a [`CandidateProposer`]: an LLM told which actions are already
//! taken ([`LlmProposer`], the published "avoid seen" strategy), or any policy
//! ([`PolicyProposer`], offline: a noisy scripted agent's mistakes).

use async_trait::async_trait;
use futures::StreamExt as _;
use rand::Rng as _;
use std::collections::HashSet;
use std::sync::Arc;

use super::ranking::{SEP, stepped_candidate};
use crate::llm::{Backend, ChatRequest, LlmAgent, Message, Part, Sampling, extract_action};
use qval_core::seed::{rng_for, stable_hash};
use qval_core::{CoreError, Environment, EvaluationPoint, Policy, PolicyInput, Result};

/// Times one candidate slot is asked again when its answer repeats a seen action (published
/// `_MAX_RESAMPLE_ROUNDS`).
pub const MAX_ROUNDS: usize = 5;

/// Proposes one alternative action for a point's state.
///
/// # Example
/// ```
/// use async_trait::async_trait;
/// use qval_core::{Environment, EvaluationPoint, Result};
/// use qval_methods::prompting::CandidateProposer;
///
/// /// Proposes "ls" then "pwd", whatever the state.
/// struct Fixed;
///
/// #[async_trait]
/// impl<E: Environment> CandidateProposer<E> for Fixed {
///     fn name(&self) -> String {
///         "fixed".into()
///     }
///     async fn propose(&self, env: &E, _p: &EvaluationPoint, seen: &[String], _seed: u64) -> Result<Option<E::Action>> {
///         Ok(["ls", "pwd"].iter().find(|a| !seen.iter().any(|s| s == *a)).map(|a| env.parse_action(a)))
///     }
/// }
/// ```
#[async_trait]
pub trait CandidateProposer<E: Environment>: Send + Sync {
    /// A short name, recorded with the candidates.
    fn name(&self) -> String;
    /// An action for `point`'s state other than those in `seen` (their rendered texts), or
    /// `None` when the proposer has nothing (an empty reply). `seed` differs per slot and
    /// round.
    async fn propose(&self, env: &E, point: &EvaluationPoint, seen: &[String], seed: u64) -> Result<Option<E::Action>>;
}

/// The key candidates are told apart by (published `_candidate_key`): the action's text,
/// trimmed and lower-cased.
fn key(text: &str) -> String {
    text.trim().to_lowercase()
}

/// Candidates for each point (ids `<point>~<j>`, the point's own action as `~0`), sampled as
/// the module docs say. Points are worked on `concurrency` at a time; each draws from
/// generators derived from `seed` and its id, so the result does not depend on the
/// concurrency.
///
/// # Errors
/// A state that cannot be restored, or a step that fails in the environment.
pub async fn sample_candidates<E: Environment>(
    env: &E,
    points: &[EvaluationPoint],
    proposer: &dyn CandidateProposer<E>,
    k: usize,
    seed: u64,
    concurrency: usize,
) -> Result<Vec<EvaluationPoint>> {
    if k < 2 {
        return Err(CoreError::invalid("k", k, "at least 2 candidates per state"));
    }
    // Boxed first: a stream of futures made by a closure is not `Send` for every lifetime.
    type Work<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<EvaluationPoint>>> + Send + 'a>>;
    let work: Vec<Work<'_>> = points
        .iter()
        .map(|p| Box::pin(point_candidates(env, p, proposer, k, seed)) as Work<'_>)
        .collect();
    let per_point: Vec<Result<Vec<EvaluationPoint>>> =
        futures::stream::iter(work).buffered(concurrency.max(1)).collect().await;
    let mut out = Vec::new();
    for c in per_point {
        out.extend(c?);
    }
    Ok(out)
}

async fn point_candidates<E: Environment>(
    env: &E,
    p: &EvaluationPoint,
    proposer: &dyn CandidateProposer<E>,
    k: usize,
    seed: u64,
) -> Result<Vec<EvaluationPoint>> {
    let state: E::State = p.state_as()?;
    let mut out = vec![EvaluationPoint {
        id: format!("{}{SEP}0", p.id),
        candidate_of: Some(p.id.clone()),
        ..p.clone()
    }];
    let mut seen = vec![p.action_text.clone()];
    let mut keys: HashSet<String> = std::iter::once(key(&p.action_text)).collect();
    for slot in 1..k {
        for round in 0..MAX_ROUNDS {
            let s: u64 = rng_for(seed, &[stable_hash(&p.id), slot as u64, round as u64]).random();
            // A failed request counts as a round without an answer (published: ranking is
            // auxiliary data, its failures are swallowed).
            let Ok(Some(action)) = proposer.propose(env, p, &seen, s).await else {
                continue;
            };
            let text = env.render_action(&action);
            let kk = key(&text);
            if kk.is_empty() || keys.contains(&kk) {
                continue;
            }
            let id = format!("{}{SEP}{}", p.id, out.len());
            out.push(stepped_candidate(env, &state, p, &action, id, seed)?);
            keys.insert(kk);
            seen.push(text);
            break;
        }
    }
    Ok(if out.len() >= 2 { out } else { Vec::new() })
}

/// The published "avoid seen" request: the actions already taken, listed as forbidden (one
/// `- action` per line, or `<forbidden_action>` blocks when one spans lines).
pub fn avoid_block(seen: &[String]) -> String {
    let items: Vec<&str> = seen.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    let multi = items.iter().any(|s| s.contains('\n'));
    let lines: Vec<String> = items
        .iter()
        .map(|a| {
            if multi {
                format!("<forbidden_action>\n{a}\n</forbidden_action>")
            } else {
                format!("- {a}")
            }
        })
        .collect();
    format!(
        "Generate exactly one action for the current state. Your chosen action should be a valid and sensible action \
         to attempt in the current state. However, do NOT generate any of the following actions; they are forbidden \
         at this moment:\n{}",
        lines.join("\n")
    )
}

/// The published reminder of the answer format (the `react_tags` scheme).
pub const FORMAT_REMINDER: &str = "Provide exactly one command inside <action> tags. Do not include <thought> tags, \
explanations, or extra text. The command must be the only content inside the <action> tags. Do not output anything \
after the closing </action> tag.";

/// Alternatives from an LLM: the agent's prompt for the point's state (task, recent turns,
/// observation) with the published avoid-seen block and format reminder appended, sampled as
/// the published TerminalBench collection does (temperature 0.2, top-p 1, at most 4,096
/// tokens) unless overridden.
pub struct LlmProposer {
    agent: LlmAgent,
    backend: Arc<dyn Backend>,
    sampling: Sampling,
}

impl LlmProposer {
    /// A proposer over `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        LlmProposer {
            agent: LlmAgent::new(backend.clone()),
            backend,
            sampling: Sampling {
                temperature: Some(0.2),
                top_p: Some(1.0),
                max_tokens: Some(4096),
                ..Sampling::default()
            },
        }
    }

    /// Overrides the sampling (the seed is set per request).
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// The messages asking for an alternative to `seen` at `point`.
    pub fn messages<E: Environment>(&self, env: &E, point: &EvaluationPoint, seen: &[String]) -> Vec<Message> {
        let spec = env.spec();
        let mut messages = self.agent.messages(
            spec,
            &point.task.instruction,
            &point.observation.text,
            point.step_index,
            spec.max_steps,
            &point.history,
        );
        if let Some(Part::Text { text }) = messages.last_mut().and_then(|m| m.parts.last_mut()) {
            text.push_str(&format!("\n\n{}\n\n{FORMAT_REMINDER}", avoid_block(seen)));
        }
        messages
    }
}

#[async_trait]
impl<E: Environment> CandidateProposer<E> for LlmProposer {
    fn name(&self) -> String {
        format!("llm({})", self.backend.name())
    }

    async fn propose(&self, env: &E, point: &EvaluationPoint, seen: &[String], seed: u64) -> Result<Option<E::Action>> {
        let req = ChatRequest {
            messages: self.messages(env, point, seen),
            sampling: Sampling {
                seed: Some(seed),
                ..self.sampling.clone()
            },
        };
        let reply = self
            .backend
            .chat(&req)
            .await
            .map_err(|e| CoreError::Method(format!("candidate request failed: {e}").into()))?;
        let text = extract_action(&reply.text);
        Ok((!text.trim().is_empty()).then(|| env.parse_action(&text)))
    }
}

/// Alternatives from a policy acting in the point's state (it does not see the taken
/// actions; asking again with another seed is how it varies).
pub struct PolicyProposer<E: Environment> {
    policy: Arc<dyn Policy<E>>,
}

impl<E: Environment> PolicyProposer<E> {
    /// A proposer asking `policy`.
    pub fn new(policy: Arc<dyn Policy<E>>) -> Self {
        PolicyProposer { policy }
    }
}

#[async_trait]
impl<E: Environment> CandidateProposer<E> for PolicyProposer<E> {
    fn name(&self) -> String {
        self.policy.name()
    }

    async fn propose(
        &self,
        env: &E,
        point: &EvaluationPoint,
        _seen: &[String],
        seed: u64,
    ) -> Result<Option<E::Action>> {
        let state: E::State = point.state_as()?;
        let mut rng = rng_for(seed, &[]);
        let input = PolicyInput {
            task: &point.task,
            state: &state,
            step: point.step_index,
            max_steps: env.spec().max_steps,
            history: &point.history,
        };
        self.policy.act(env, input, &mut rng).await.map(Some)
    }
}
