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
use super::backend::{REASONING_EFFORTS, Thinking};
use super::layers::{QUOTA_SCHEDULE_SECS, RetryPolicy, StackBuilder, UsageCounter, quota_schedule};
use super::openai::{Api, OpenAiBackend, OpenAiConfig};

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
    /// The server scores a given continuation (vLLM: `/tokenize` and prompt log-probs); the
    /// self-distillation and Δbelief methods need it.
    #[serde(default)]
    pub scoring: bool,
    /// The API dialect (`vllm`, `openrouter`, `openai`); default: from the URL.
    #[serde(default)]
    pub api: Option<Api>,
    /// Switch thinking on or off (default: on with `thinking = true`, else the server's
    /// default).
    #[serde(default)]
    pub enable_thinking: Option<bool>,
    /// A reasoning effort (`xhigh`, `high`, `medium`, `low`, `minimal`, `none`).
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// At most this many thinking tokens (published 6144 with `thinking = true`).
    #[serde(default)]
    pub thinking_budget: Option<u32>,
    /// Ask once more, with thinking off, when an answer stops at the token limit (default:
    /// on with `thinking = true`, as published).
    #[serde(default)]
    pub second_elicitation: Option<bool>,
    /// The token limit of that second request (default 512, as published).
    #[serde(default = "default_second_tokens")]
    pub second_elicitation_max_tokens: u32,
    /// The longest a request waits in all for an exhausted quota before it fails (seconds;
    /// default 18300: the published 5 min, then 5 times 1 h).
    #[serde(default = "default_quota_wait")]
    pub quota_max_wait_secs: f64,
    /// The model's context length: prompts are fitted to it minus the token limit, as
    /// published (default none: no budget).
    #[serde(default)]
    pub max_model_len: Option<u32>,
    /// The model's `tokenizer.json`, to count prompt tokens (default: 3.5 characters per
    /// token, as published).
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Ask again the cached requests whose reply a method could not parse (default false:
    /// a rerun answers from the cache; `qval run --reask-unparsed` sets it for every backend).
    #[serde(default)]
    pub reask_unparsed: bool,
}

fn default_second_tokens() -> u32 {
    512
}
fn default_quota_wait() -> f64 {
    QUOTA_SCHEDULE_SECS.iter().sum()
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
/// [`LlmError::Config`] naming the file, and the line and column of a syntax or schema
/// error; or the file, the entry and the field of a value out of range
/// ([`BackendEntry::check`]: a bad URL, a timeout not in (0, one week], `max_attempts` not
/// 1 to 100, concurrency 0).
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
    for (name, entry) in &parsed.backends {
        entry
            .check()
            .map_err(|m| LlmError::Config(format!("{}: backend `{name}`: {m}", path.display())))?;
    }
    Ok(parsed.backends)
}

/// The longest per-request timeout a backend may set: one week.
pub const MAX_TIMEOUT_SECS: f64 = 7.0 * 24.0 * 3600.0;

impl BackendEntry {
    /// An entry for `model` at `base_url` with the file's defaults (standard sampling,
    /// concurrency 32, 6 attempts, 300 s timeout, no log-probs, no images, no scoring).
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
            scoring: false,
            api: None,
            enable_thinking: None,
            reasoning_effort: None,
            thinking_budget: None,
            second_elicitation: None,
            second_elicitation_max_tokens: default_second_tokens(),
            quota_max_wait_secs: default_quota_wait(),
            max_model_len: None,
            tokenizer: None,
            reask_unparsed: false,
        }
    }

    /// Checks the values the file's syntax cannot: the URL, the timeout, attempts,
    /// concurrency and sampling overrides.
    ///
    /// # Errors
    /// A message naming the field and its bad value (the caller adds file and entry).
    pub fn check(&self) -> Result<(), String> {
        match reqwest::Url::parse(&self.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(u) => {
                return Err(format!(
                    "`base_url` = {:?}: must be an http:// or https:// URL with a host (scheme `{}`)",
                    self.base_url,
                    u.scheme()
                ));
            }
            Err(e) => return Err(format!("`base_url` = {:?}: not a URL ({e})", self.base_url)),
        }
        if !(self.timeout_secs > 0.0 && self.timeout_secs <= MAX_TIMEOUT_SECS) {
            return Err(format!(
                "`timeout_secs` = {}: must be more than 0 and at most {MAX_TIMEOUT_SECS} (one week)",
                self.timeout_secs
            ));
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err(format!("`max_attempts` = {}: must be 1 to 100", self.max_attempts));
        }
        if self.concurrency == 0 {
            return Err("`concurrency` = 0: must be at least 1".into());
        }
        for (field, v) in [("temperature", self.temperature), ("top_p", self.top_p)] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!("`{field}` = {v}: must be a finite number >= 0"));
            }
        }
        if self.model.trim().is_empty() {
            return Err("`model` is empty".into());
        }
        if let Some(e) = &self.reasoning_effort
            && !REASONING_EFFORTS.contains(&e.as_str())
        {
            return Err(format!(
                "`reasoning_effort` = {e:?}: must be one of {}",
                REASONING_EFFORTS.join(", ")
            ));
        }
        if self.reasoning_effort.is_some() && self.thinking_budget.is_some() {
            return Err("give `reasoning_effort` or `thinking_budget`, not both".into());
        }
        if let Some(n) = self.max_model_len
            && self.prompt_tokens() == Some(0)
        {
            return Err(format!(
                "`max_model_len` = {n}: leaves no room for a prompt next to the token limit"
            ));
        }
        if self.second_elicitation_max_tokens == 0 {
            return Err("`second_elicitation_max_tokens` = 0: must be at least 1".into());
        }
        if !(self.quota_max_wait_secs.is_finite() && (0.0..=MAX_TIMEOUT_SECS).contains(&self.quota_max_wait_secs)) {
            return Err(format!(
                "`quota_max_wait_secs` = {}: must be 0 to {MAX_TIMEOUT_SECS} (one week)",
                self.quota_max_wait_secs
            ));
        }
        Ok(())
    }

    /// The HTTP configuration (a timeout out of range, which [`check`](Self::check)
    /// rejects, falls back to the default 300 s rather than panicking).
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
            timeout: Duration::try_from_secs_f64(self.timeout_secs)
                .ok()
                .filter(|_| self.timeout_secs > 0.0 && self.timeout_secs <= MAX_TIMEOUT_SECS)
                .unwrap_or(Duration::from_secs_f64(default_timeout())),
            connect_timeout: Duration::from_secs(10),
            sampling: Sampling {
                temperature: self.temperature.or(base.temperature),
                top_p: self.top_p.or(base.top_p),
                top_k: self.top_k.or(base.top_k),
                max_tokens: self.max_tokens.or(base.max_tokens),
                seed: self.seed,
                top_logprobs: None,
                thinking: self.thinking_control(base.thinking),
            },
            capabilities: Capabilities {
                logprobs: self.logprobs,
                images: self.images,
                scoring: self.scoring,
            },
            api: self.api,
        }
    }

    /// The thinking control: the entry's own settings over `base` (the preset's).
    fn thinking_control(&self, base: Option<Thinking>) -> Option<Thinking> {
        let mut t = base.unwrap_or_default();
        if let Some(e) = self.enable_thinking {
            t.enabled = Some(e);
        }
        if let Some(e) = &self.reasoning_effort {
            t.effort = Some(e.clone());
            t.budget = None;
        }
        if let Some(b) = self.thinking_budget {
            t.budget = Some(b);
            t.effort = None;
        }
        (t != Thinking::default()).then_some(t)
    }

    /// The prompt budget in tokens, as published: the context length minus the token limit
    /// (the entry's, else the preset's), if the context length is given.
    pub fn prompt_tokens(&self) -> Option<usize> {
        let limit = self
            .max_tokens
            .or(self.openai_config().sampling.max_tokens)
            .unwrap_or(2048);
        self.max_model_len.map(|n| n.saturating_sub(limit) as usize)
    }

    /// Whether answers cut off at the token limit are asked for once more.
    pub fn second_elicitation(&self) -> bool {
        self.second_elicitation.unwrap_or(self.thinking)
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
        self.check()
            .map_err(|m| LlmError::Config(format!("backend `{}`: {m}", self.model)))?;
        let http = OpenAiBackend::new(self.openai_config())?;
        let mut stack = StackBuilder::new(http)
            .concurrency(self.concurrency)
            .retry(Some(RetryPolicy::builder().max_attempts(self.max_attempts).build()?))
            .quota_wait(quota_schedule(Duration::from_secs_f64(self.quota_max_wait_secs)))
            .second_elicitation(self.second_elicitation().then_some(self.second_elicitation_max_tokens))
            .reask_unparsed(self.reask_unparsed);
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

    #[test]
    fn values_out_of_range_name_file_entry_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("backends.toml");
        for (line, field) in [
            ("timeout_secs = 1e20", "`timeout_secs` = 100000000000000000000"),
            ("timeout_secs = 0", "`timeout_secs` = 0"),
            ("timeout_secs = -3.5", "`timeout_secs` = -3.5"),
            ("timeout_secs = nan", "`timeout_secs` = NaN"),
            ("max_attempts = 0", "`max_attempts` = 0"),
            ("concurrency = 0", "`concurrency` = 0"),
            ("base_url = \"localhost:8000/v1\"", "`base_url` = \"localhost:8000/v1\""),
            ("base_url = \"http://\"", "`base_url` = \"http://\""),
            ("base_url = \"ftp://h/v1\"", "`base_url` = \"ftp://h/v1\""),
        ] {
            let url = if line.starts_with("base_url") {
                ""
            } else {
                "base_url = \"http://h/v1\"\n"
            };
            std::fs::write(&bad, format!("[backends.mine]\n{url}model = \"m\"\n{line}\n")).unwrap();
            let e = load_backends(&bad).unwrap_err().to_string();
            assert!(
                e.contains("backends.toml") && e.contains("backend `mine`") && e.contains(field),
                "{line}: {e}"
            );
        }
        // Built directly, the entry is checked too, and never panics.
        let mut entry = BackendEntry::new("http://h/v1", "m");
        entry.timeout_secs = 1e20;
        assert_eq!(entry.openai_config().timeout, Duration::from_secs(300));
        assert!(entry.build(None, None).is_err());
    }
}
