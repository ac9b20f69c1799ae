//! What the prompting methods share: a backend with its usage counter and sampling, and
//! the usage report.

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
