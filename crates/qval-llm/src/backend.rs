//! The [`Backend`] trait and the request and response types of a chat completion.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Who speaks a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The user (the prompt).
    User,
    /// The model (earlier answers in a conversation).
    Assistant,
}

/// A part of a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image as a URL (a `data:` URL for local images).
    Image {
        /// The URL.
        url: String,
    },
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// The speaker.
    pub role: Role,
    /// Text and images, in order.
    pub parts: Vec<Part>,
}

impl Message {
    /// A text message.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            parts: vec![Part::Text { text: text.into() }],
        }
    }

    /// All text parts joined (images left out).
    pub fn joined_text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                Part::Image { .. } => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the message carries an image.
    pub fn has_image(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Image { .. }))
    }
}

/// Sampling parameters. `None` leaves a parameter to the server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (vLLM and llama.cpp accept it; OpenAI ignores it).
    pub top_k: Option<u32>,
    /// Maximum tokens to generate.
    pub max_tokens: Option<u32>,
    /// Sampling seed, where the server honours it.
    pub seed: Option<u64>,
    /// Ask for this many top log-probabilities per generated token.
    pub top_logprobs: Option<u32>,
    /// Thinking control (`None`: the server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
}

/// Thinking control, sent the way the server takes it ([`crate::OpenAiConfig::api`]): vLLM
/// through the chat template's `enable_thinking`, OpenRouter through its `reasoning` object
/// (`effort`, or `max_tokens` for a budget; effort `none` when disabled), OpenAI as
/// `reasoning_effort`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Thinking {
    /// Think or not (vLLM: `chat_template_kwargs.enable_thinking`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// A reasoning effort: `xhigh`, `high`, `medium`, `low`, `minimal` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// At most this many thinking tokens (OpenRouter `reasoning.max_tokens`; vLLM's server
    /// has no such control, as the published testbed notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u32>,
    /// Leave the reasoning text out of the response (OpenRouter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<bool>,
}

/// The reasoning efforts OpenRouter and OpenAI take.
pub const REASONING_EFFORTS: [&str; 6] = ["xhigh", "high", "medium", "low", "minimal", "none"];

impl Thinking {
    /// Thinking switched off.
    pub fn off() -> Self {
        Thinking {
            enabled: Some(false),
            ..Default::default()
        }
    }
}

impl Sampling {
    /// The published settings for thinking models: temperature 0.6, top_p 0.95, top_k 20,
    /// 8192 tokens, thinking on with a budget of 6144 tokens.
    pub fn thinking() -> Self {
        Sampling {
            temperature: Some(0.6),
            top_p: Some(0.95),
            top_k: Some(20),
            max_tokens: Some(8192),
            thinking: Some(Thinking {
                enabled: Some(true),
                budget: Some(6144),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The published settings for other models: temperature 0.1, 4096 tokens.
    pub fn standard() -> Self {
        Sampling {
            temperature: Some(0.1),
            max_tokens: Some(4096),
            ..Default::default()
        }
    }
}

/// A chat completion request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Sampling parameters.
    pub sampling: Sampling,
}

/// Tokens used by a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
}

/// One generated token with its log-probability and the top alternatives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f64,
    /// The most likely tokens at this position, with their log-probabilities.
    pub top: Vec<(String, f64)>,
}

/// A chat completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The generated text.
    pub text: String,
    /// Token usage.
    pub usage: Usage,
    /// Per-token log-probabilities, when asked for and supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// The model that answered.
    pub model: String,
    /// Why generation stopped (`stop`, `length` at the token limit, ...), when the server
    /// says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Whether the response came from the on-disk cache rather than the model (set by the
    /// cache layer; never stored).
    #[serde(default, skip)]
    pub cached: bool,
}

impl ChatResponse {
    /// Whether generation stopped at the token limit.
    pub fn truncated(&self) -> bool {
        self.finish_reason.as_deref() == Some("length")
    }
}

/// What a backend can do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Returns top log-probabilities of generated tokens.
    pub logprobs: bool,
    /// Accepts images in messages.
    pub images: bool,
    /// Scores a given assistant continuation token by token ([`Backend::score`]): vLLM's
    /// OpenAI-compatible server can (its `/tokenize` endpoint and prompt log-probs); hosted
    /// APIs such as OpenRouter and OpenAI cannot.
    #[serde(default)]
    pub scoring: bool,
}

/// The capability [`Backend::score`] needs, in words, for errors.
pub const SCORING_CAPABILITY: &str = "the capability `scoring` (log-probabilities of a given assistant \
continuation): it needs a vLLM OpenAI-compatible server (its /tokenize endpoint and prompt_logprobs; declare it \
with `scoring = true` in backends.toml); OpenRouter, OpenAI and most hosted APIs cannot do it";

/// A request to score a given assistant text: the log-probability of each of its tokens
/// when the model continues `messages` (chat template applied by the server, thinking off).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreRequest {
    /// The conversation the continuation follows (system and user messages).
    pub messages: Vec<Message>,
    /// The assistant text to score.
    pub continuation: String,
}

/// One token of a scored continuation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredToken {
    /// The token text, as the server decodes it.
    pub token: String,
    /// Its log-probability given everything before it.
    pub logprob: f64,
}

/// The log-probabilities of a continuation's tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreResponse {
    /// The continuation's tokens, in order (those the server's own tokenization puts after
    /// the prompt).
    pub tokens: Vec<ScoredToken>,
    /// Token usage (the prompt is the whole scored sequence).
    pub usage: Usage,
    /// The model that scored.
    pub model: String,
    /// Whether the response came from the on-disk cache (set by the cache layer; never stored).
    #[serde(default, skip)]
    pub cached: bool,
}

impl ScoreResponse {
    /// The sum of the tokens' log-probabilities: log p(continuation | messages); NaN for no
    /// tokens.
    pub fn sum(&self) -> f64 {
        if self.tokens.is_empty() {
            f64::NAN
        } else {
            self.tokens.iter().map(|t| t.logprob).sum()
        }
    }

    /// The mean log-probability per token; NaN for no tokens.
    pub fn mean(&self) -> f64 {
        self.sum() / self.tokens.len() as f64
    }
}

/// What the layers need to know of a response, chat or scoring alike.
pub trait Reply: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    /// Token usage.
    fn usage(&self) -> Usage;
    /// Whether the cache served it.
    fn is_cached(&self) -> bool;
    /// Marks it as served by the cache.
    fn set_cached(&mut self);
    /// What the request log records of it.
    fn logged(&self) -> serde_json::Value;
}

/// Implements [`Reply`] for a response type with `usage` and `cached` fields; `|r| logged`
/// says what the request log records of the response `r`.
macro_rules! reply {
    ($ty:ty, |$r:ident| $logged:expr) => {
        impl Reply for $ty {
            fn usage(&self) -> Usage {
                self.usage
            }
            fn is_cached(&self) -> bool {
                self.cached
            }
            fn set_cached(&mut self) {
                self.cached = true;
            }
            fn logged(&self) -> serde_json::Value {
                let $r = self;
                $logged
            }
        }
    };
}
reply!(ChatResponse, |r| serde_json::json!(r.text));
reply!(
    ScoreResponse,
    |r| serde_json::json!({"tokens": r.tokens.len(), "sum_logprob": r.sum()})
);

/// Why a request failed. [`LlmError::is_transient`] says whether a retry may help.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The server answered with an error status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The response body (truncated to 2,000 characters).
        body: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The provider says the quota is exhausted: retrying will not help.
    #[error("quota exhausted: {0}")]
    Quota(String),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection failed.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The response was not the JSON expected.
    #[error("malformed response ({message}): {body}")]
    Malformed {
        /// What was wrong.
        message: String,
        /// The raw body (truncated to 2,000 characters).
        body: String,
    },
    /// The response had no choices.
    #[error("response has no choices: {0}")]
    NoChoices(String),
    /// The request asks for something the backend cannot do.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The backend is misconfigured (no key, bad URL).
    #[error("configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// Whether retrying may succeed: 429 (not an exhausted quota), 5xx, 408, timeouts and
    /// connection errors.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            LlmError::Timeout(_) | LlmError::Connection(_) => true,
            _ => false,
        }
    }

    /// The server's requested wait, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A chat model behind some API. Implementations: [`crate::OpenAiBackend`] and the layers
/// in [`crate::layers`], which wrap any backend.
///
/// Required: [`name`](Self::name), [`capabilities`](Self::capabilities) and
/// [`chat`](Self::chat); [`chat_batch`](Self::chat_batch) defaults to concurrent `chat` calls.
/// [`score`](Self::score) (log-probabilities of a given continuation) is optional: by default
/// it fails, naming [`SCORING_CAPABILITY`].
///
/// # Example
/// A backend that always answers 0.5:
/// ```
/// use qval_llm::{Backend, Capabilities, ChatRequest, ChatResponse, LlmError, Usage};
///
/// struct Constant;
///
/// #[async_trait::async_trait]
/// impl Backend for Constant {
///     fn name(&self) -> String { "constant".into() }
///     fn capabilities(&self) -> Capabilities { Capabilities::default() }
///     async fn chat(&self, _req: &ChatRequest) -> Result<ChatResponse, LlmError> {
///         Ok(ChatResponse { text: "<answer>0.5</answer>".into(), usage: Usage::default(),
///                           logprobs: None, model: "constant".into(), finish_reason: None, cached: false })
///     }
/// }
/// ```
#[async_trait]
pub trait Backend: Send + Sync {
    /// An identifier: the model and where it is served (part of cache keys).
    fn name(&self) -> String;

    /// What the backend supports.
    fn capabilities(&self) -> Capabilities;

    /// One chat completion.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;

    /// Several completions; one result per request, in order.
    async fn chat_batch(&self, requests: &[ChatRequest]) -> Vec<Result<ChatResponse, LlmError>> {
        futures::future::join_all(requests.iter().map(|r| self.chat(r))).await
    }

    /// The log-probabilities of `request.continuation`'s tokens after `request.messages`.
    /// Fails by default with [`LlmError::Unsupported`] naming [`SCORING_CAPABILITY`].
    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, LlmError> {
        let _ = request;
        Err(LlmError::Unsupported(format!(
            "backend `{}` lacks {SCORING_CAPABILITY}",
            self.name()
        )))
    }

    /// Several scorings; one result per request, in order.
    async fn score_batch(&self, requests: &[ScoreRequest]) -> Vec<Result<ScoreResponse, LlmError>> {
        futures::future::join_all(requests.iter().map(|r| self.score(r))).await
    }

    /// Told by a method that the reply to `request` did not parse. Does nothing by default;
    /// layers pass it inwards, and the [`Cache`](super::Cache) records it in the cached
    /// entry so that a run with `reask_unparsed` asks again.
    fn unparsed(&self, request: &ChatRequest) {
        let _ = request;
    }
}

/// Writes [`Backend`] methods that hand the call on unchanged to `to`, an expression of
/// `self`: `forward_backend!(self => self.inner; name, capabilities, unparsed)` inside an
/// `impl Backend`. `self` is passed in so that it means the impl's receiver. Synchronous
/// methods only (`name`, `capabilities`, `unparsed`): `#[async_trait]` rewrites an async
/// method before a macro inside the impl expands, so those are written out.
macro_rules! forward_backend {
    ($self:ident => $to:expr; $($method:ident),+ $(,)?) => {
        $( $crate::backend::forward_backend!(@ $method $self $to); )+
    };
    (@ name $self:ident $to:expr) => {
        fn name(&$self) -> String {
            $to.name()
        }
    };
    (@ capabilities $self:ident $to:expr) => {
        fn capabilities(&$self) -> $crate::backend::Capabilities {
            $to.capabilities()
        }
    };
    (@ unparsed $self:ident $to:expr) => {
        fn unparsed(&$self, request: &$crate::backend::ChatRequest) {
            $to.unparsed(request)
        }
    };
}
pub(crate) use forward_backend;

/// A backend behind a reference or a smart pointer is that backend.
macro_rules! backend_through_pointer {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<B: Backend + ?Sized> Backend for $ty {
            forward_backend!(self => (**self); name, capabilities, unparsed);
            async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> { (**self).chat(request).await }
            async fn chat_batch(&self, requests: &[ChatRequest]) -> Vec<Result<ChatResponse, LlmError>> {
                (**self).chat_batch(requests).await
            }
            async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, LlmError> { (**self).score(request).await }
            async fn score_batch(&self, requests: &[ScoreRequest]) -> Vec<Result<ScoreResponse, LlmError>> {
                (**self).score_batch(requests).await
            }
        }
    )*};
}
backend_through_pointer!(&B, Box<B>, Arc<B>);
