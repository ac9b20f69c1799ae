//! LLM access: the [`Backend`] trait, an OpenAI-compatible HTTP backend, layers (cache,
//! retry, concurrency limit, request log, token accounting), named backends from a TOML
//! file, prompts and answer extraction.

pub mod agent;
pub mod backend;
pub mod config;
pub mod extract;
pub mod layers;
pub mod openai;
pub mod prompt;

pub use agent::LlmAgent;
pub use backend::{
    Backend, Capabilities, ChatRequest, ChatResponse, LlmError, Message, Part, Role, Sampling, TokenLogprob, Usage,
};
pub use config::{BackendEntry, load_backends};
pub use extract::{
    extract_action, extract_list, extract_number, extract_permutation, last_tag, last_tag_code, strip_thinking,
};
pub use layers::{Cache, ConcurrencyLimit, Metered, RequestLog, Retry, RetryPolicy, StackBuilder, UsageCounter};
pub use openai::{OpenAiBackend, OpenAiConfig};
pub use prompt::{Budget, Modality, PromptOptions, preview};
