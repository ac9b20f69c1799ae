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

mod base;
mod candidates;
mod criteria;
mod direct;
pub mod examples;
pub mod prompt;
mod ranking;
mod scoring;
mod usc;
mod verifier;
mod wording;

pub use candidates::{
    CandidateProposer, FORMAT_REMINDER, LlmProposer, MAX_ROUNDS, PolicyProposer, avoid_block, sample_candidates,
};
pub use criteria::{VERIFIER_CRITERIA, VerifierCriterion};
pub use direct::{Direct, DirectMode, Gvl};
pub use ranking::{Ranking, expand_candidates, scores_from_answer};
pub use scoring::{ContinuationScoring, ScoringKind, expert_block};
pub use usc::{MAX_CANDIDATE_CHARS, Usc, parse_usc};
pub use verifier::{
    Grouping, LETTERS, Verifier, verifier_score, verifier_score_at, verifier_text_score, verifier_text_score_at,
};

pub use base::ReportsUsage;
