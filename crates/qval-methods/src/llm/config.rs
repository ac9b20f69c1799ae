//! Named backends in a TOML file (`backends.toml`); see `backends.example.toml` at the
//! repository root for commented vLLM, OpenRouter and Ollama entries.
//!
//! ```toml
//! [backends.local-qwen]
//! base_url = "http://localhost:8000/v1"
//! model = "Qwen/Qwen3-8B"
//! thinking = true          # published thinking settings: T 0.6, top_p 0.95, top_k 20, 8192 tokens
//! concurrency = 32
//! logprobs = true
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::backend::{Backend, Capabilities, LlmError, Sampling};
use super::layers::{RetryPolicy, StackBuilder, UsageCounter};
use super::openai::{OpenAiBackend, OpenAiConfig};

/// One named backend as the file describes it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendEntry {
    /// API root, e.g. `http://localhost:8000/v1`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Environment variable with the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Use the published thinking-model settings (default false: standard settings).
    #[serde(default)]
    pub thinking: bool,
    /// Override the temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Override top_p.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Override top_k.
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Override the token limit.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Requests in flight (default 32).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts per request (default 6).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Per-request timeout in seconds (default 300).
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// The server returns top log-probabilities.
    #[serde(default)]
    pub logprobs: bool,
    /// The model accepts images.
    #[serde(default)]
    pub images: bool,
}

fn default_concurrency() -> usize {
    32
}
fn default_attempts() -> u32 {
    6
}
fn default_timeout() -> f64 {
    300.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    backends: BTreeMap<String, BackendEntry>,
}

/// Reads the named backends of a TOML file.
///
/// # Errors
/// [`LlmError::Config`] naming the file, and the line and column of a syntax or schema error.
pub fn load_backends(path: &Path) -> Result<BTreeMap<String, BackendEntry>, LlmError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| LlmError::Config(format!("reading {}: {e}", path.display())))?;
    let parsed: File = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                let col = s.start - text[..s.start].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                format!(":{line}:{col}")
            })
            .unwrap_or_default();
        LlmError::Config(format!("{}{at}: {}", path.display(), e.message()))
    })?;
    Ok(parsed.backends)
}

impl BackendEntry {
    /// An entry for `model` at `base_url` with the file's defaults (standard sampling,
    /// concurrency 32, 6 attempts, 300 s timeout, no log-probs, no images).
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        BackendEntry {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            thinking: false,
            temperature: None,
            top_p: None,
            top_k: None,
            max_tokens: None,
            seed: None,
            concurrency: default_concurrency(),
            max_attempts: default_attempts(),
            timeout_secs: default_timeout(),
            logprobs: false,
            images: false,
        }
    }

    /// The HTTP configuration.
    pub fn openai_config(&self) -> OpenAiConfig {
        let base = if self.thinking {
            Sampling::thinking()
        } else {
            Sampling::standard()
        };
        OpenAiConfig {
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            api_key_env: self.api_key_env.clone(),
            timeout: Duration::from_secs_f64(self.timeout_secs),
            connect_timeout: Duration::from_secs(10),
            sampling: Sampling {
                temperature: self.temperature.or(base.temperature),
                top_p: self.top_p.or(base.top_p),
                top_k: self.top_k.or(base.top_k),
                max_tokens: self.max_tokens.or(base.max_tokens),
                seed: self.seed,
                top_logprobs: None,
            },
            capabilities: Capabilities {
                logprobs: self.logprobs,
                images: self.images,
            },
        }
    }

    /// The full client: HTTP backend with retry, concurrency limit, and optionally a request
    /// log and a response cache.
    ///
    /// # Errors
    /// [`LlmError::Config`] for a missing key variable, a bad URL or parameters.
    pub fn build(
        &self,
        cache: Option<PathBuf>,
        log: Option<PathBuf>,
    ) -> Result<(Arc<dyn Backend>, Arc<UsageCounter>), LlmError> {
        if !(self.timeout_secs > 0.0 && self.timeout_secs.is_finite()) {
            return Err(LlmError::Config(format!(
                "timeout_secs = {}: must be positive",
                self.timeout_secs
            )));
        }
        let http = OpenAiBackend::new(self.openai_config())?;
        let mut stack = StackBuilder::new(http)
            .concurrency(self.concurrency)
            .retry(Some(RetryPolicy::builder().max_attempts(self.max_attempts).build()?));
        if let Some(c) = cache {
            stack = stack.cache(c);
        }
        if let Some(l) = log {
            stack = stack.log(l);
        }
        let counter = stack.counter();
        Ok((stack.build()?, counter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_errors_name_the_line() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../backends.example.toml");
        let b = load_backends(Path::new(example)).unwrap();
        assert!(
            b.contains_key("vllm") && b.contains_key("openrouter") && b.contains_key("ollama"),
            "{:?}",
            b.keys()
        );
        assert!(b["vllm"].thinking && b["vllm"].openai_config().sampling.top_k == Some(20));
        assert_eq!(b["openrouter"].api_key_env.as_deref(), Some("OPENROUTER_API_KEY"));
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("b.toml");
        std::fs::write(
            &bad,
            "[backends.x]\nbase_url = \"http://h/v1\"\nmodel = \"m\"\nconcurency = 3\n",
        )
        .unwrap();
        let e = load_backends(&bad).unwrap_err().to_string();
        assert!(e.contains("b.toml:4") && e.contains("concurency"), "{e}");
    }
}
