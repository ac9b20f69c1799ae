//! # qval-llm
//!
//! qval's LLM client, on its own so that a user who wants only the baselines or the metrics
//! does not compile an HTTP stack:
//!
//! - the [`Backend`] trait and its request and response types;
//! - [`OpenAiBackend`], any OpenAI-compatible server (vLLM, llama.cpp, OpenRouter, OpenAI);
//! - layers that wrap any backend: [`Cache`], [`Retry`], [`ConcurrencyLimit`], [`RequestLog`],
//!   [`Metered`], assembled by [`StackBuilder`];
//! - named backends from a `backends.toml` ([`load_backends`]);
//! - answer extraction ([`extract_number`] and friends);
//! - [`HttpEncoder`], text and image embeddings from an OpenAI-compatible `/embeddings`
//!   endpoint (vLLM serving CLIP or SigLIP, Infinity, text-embeddings-inference);
//! - [`LlmAgent`], a [`qval_core::Policy`] that asks a model for the next action.
#![deny(missing_docs)]

pub mod agent;
pub mod backend;
pub mod config;
pub mod embeddings;
pub mod extract;
pub mod layers;
pub mod openai;

pub use agent::LlmAgent;
pub use backend::{
    Backend, Capabilities, ChatRequest, ChatResponse, LlmError, Message, Part, REASONING_EFFORTS, Reply, Role,
    SCORING_CAPABILITY, Sampling, ScoreRequest, ScoreResponse, ScoredToken, Thinking, TokenLogprob, Usage,
};
pub use config::{BackendEntry, load_backends};
pub use embeddings::{HttpEncoder, HttpEncoderBuilder};
pub use extract::{
    extract_action, extract_list, extract_number, extract_permutation, extract_thought, last_tag, last_tag_code,
    strip_thinking,
};
pub use layers::{
    Cache, ConcurrencyLimit, EARLY_STOPPING_SUFFIX, Metered, QUOTA_SCHEDULE_SECS, QuotaWait, RequestLog, Retry,
    RetryPolicy, SECOND_ELICITATION_PROMPT, SecondElicitation, StackBuilder, UsageCounter, quota_schedule,
};
pub use openai::{Api, OpenAiBackend, OpenAiConfig};
