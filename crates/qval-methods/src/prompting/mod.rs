//! The prompting family: an LLM is asked for the value of a step (direct, GVL), a letter grade
//! read from its log-probabilities (verifier), or an order of candidate actions (ranking).
//!
//! | method | published name | what one request covers |
//! |---|---|---|
//! | [`Direct`] with [`DirectMode::Single`] | direct-single | one point |
//! | [`Direct`] with [`DirectMode::Multi`] | direct-16 | one point, N independent passes (mean of non-NaN) |
//! | [`Direct`] with [`DirectMode::Batched`] | direct-batched | 4 points, answered as a list |
//! | [`Direct`] with [`DirectMode::Sequential`] | direct-sequential | 8 points as turns of one conversation |
//! | [`Gvl`] | gvl | one point, the rest of its trajectory shuffled as context |
//! | [`Verifier`] | verifier | one point, a letter A..T read from the top-20 log-probabilities (per pass; passes and criteria averaged) |
//! | [`Ranking`] | ranking | all candidate actions of a state |
//! | [`ContinuationScoring`] | sdpo, sdpo-gt, delta-belief | one candidate: log-probs of its action (or of Yes/No) under two prompts |
//!
//! Every failure (a request that failed after retries, an answer without a number) is an
//! error for that point, which the predict stage records as NaN with the reason.

mod candidates;
mod criteria;
mod direct;
pub mod prompt;
mod ranking;
mod scoring;

pub use candidates::{
    CandidateProposer, FORMAT_REMINDER, LlmProposer, MAX_ROUNDS, PolicyProposer, avoid_block, sample_candidates,
};
pub use criteria::{VERIFIER_CRITERIA, VerifierCriterion};
pub use direct::{Direct, DirectMode, Gvl, Verifier};
pub use ranking::{Ranking, expand_candidates, scores_from_answer};
pub use scoring::{ContinuationScoring, ScoringKind, expert_block};

use std::sync::Arc;

use crate::llm::{Backend, ChatRequest, Message, Metered, PromptOptions, Sampling, UsageCounter};
use qval_core::{CoreError, Signal};

/// What every prompting method holds: its backend (metered, so the method can report its
/// token usage), the signal, prompt options and sampling overrides.
#[derive(Clone)]
pub(crate) struct Base {
    pub backend: Arc<dyn Backend>,
    pub usage: Arc<UsageCounter>,
    pub signal: Signal,
    pub options: PromptOptions,
    pub sampling: Sampling,
}

impl Base {
    pub fn new(backend: Arc<dyn Backend>, signal: Signal, options: PromptOptions) -> Self {
        let usage = Arc::new(UsageCounter::default());
        let metered: Arc<dyn Backend> = Arc::new(Metered::new(backend, usage.clone()));
        Base {
            backend: metered,
            usage,
            signal,
            options,
            sampling: Sampling::default(),
        }
    }

    /// Asks and parses the reply with `parse`, returning the value and the reply text; a
    /// reply that does not parse is reported to the backend ([`Backend::unparsed`]), so a
    /// cache can re-ask it on a later run.
    pub async fn ask_parsed<T>(
        &self,
        messages: Vec<Message>,
        sampling: Sampling,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<(T, String), CoreError> {
        let req = ChatRequest { messages, sampling };
        let text = self
            .backend
            .chat(&req)
            .await
            .map(|r| r.text)
            .map_err(|e| crate::llm::failed("LLM request failed", e))?;
        match parse(&text) {
            Ok(v) => Ok((v, text)),
            Err(e) => {
                self.backend.unparsed(&req);
                Err(CoreError::Method(e.into()))
            }
        }
    }
}

/// Token usage of a method so far (requests, failures, prompt and completion tokens).
pub trait ReportsUsage {
    /// The usage counters as JSON.
    fn usage(&self) -> serde_json::Value;
}
