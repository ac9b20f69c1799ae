//! An OpenAI-compatible chat completions client (vLLM, OpenRouter, Ollama, llama.cpp's
//! server, OpenAI).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

use super::backend::{
    Backend, Capabilities, ChatRequest, ChatResponse, LlmError, Message, Part, Role, SCORING_CAPABILITY, Sampling,
    ScoreRequest, ScoreResponse, ScoredToken, TokenLogprob, Usage,
};

/// A secret that never prints.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// The API key in the environment variable `var`, if one is named.
    ///
    /// # Errors
    /// [`LlmError::Config`] if the variable is not set.
    pub(crate) fn from_env(var: Option<&str>) -> Result<Option<Secret>, LlmError> {
        var.map(|var| {
            std::env::var(var)
                .map(Secret)
                .map_err(|_| LlmError::Config(format!("the API key variable `{var}` is not set (export {var}=...)")))
        })
        .transpose()
    }
}

/// An HTTP client with these timeouts, keeping at most `idle` idle connections per host.
pub(crate) fn http_client(
    timeout: Duration,
    connect_timeout: Duration,
    idle: usize,
) -> Result<reqwest::Client, LlmError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(idle)
        .build()
        .map_err(|e| LlmError::Config(e.to_string()))
}

/// `s` cut to at most `max` bytes on a character boundary; `None` if it is no longer.
pub(crate) fn cut(s: &str, max: usize) -> Option<&str> {
    if s.len() <= max {
        return None;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(&s[..end])
}

/// Settings of an [`OpenAiBackend`].
///
/// | field | default |
/// |---|---|
/// | `base_url` | (required), e.g. `http://localhost:8000/v1` |
/// | `model` | (required) |
/// | `api_key_env` | none: no `Authorization` header |
/// | `timeout` | 300 s per request |
/// | `connect_timeout` | 10 s |
/// | `sampling` | none set: the server's defaults |
/// | `capabilities` | no log-probs, no images, no scoring |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenAiConfig {
    /// The API root, ending in `/v1` for most servers.
    pub base_url: String,
    /// The model name.
    pub model: String,
    /// The environment variable holding the API key (the key itself is never stored,
    /// logged or written anywhere).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Per-request timeout.
    #[serde(default = "default_timeout", with = "secs")]
    pub timeout: Duration,
    /// Connection timeout.
    #[serde(default = "default_connect", with = "secs")]
    pub connect_timeout: Duration,
    /// Default sampling parameters; a request's own values win.
    #[serde(default)]
    pub sampling: Sampling,
    /// What the served model supports.
    #[serde(default = "no_caps")]
    pub capabilities: Capabilities,
    /// Which API dialect the server speaks (thinking control differs); default: from the
    /// URL ([`Api::from_url`]).
    #[serde(default)]
    pub api: Option<Api>,
}

/// The dialects of OpenAI-compatible servers that matter to qval: how thinking is
/// controlled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// vLLM (and servers like it): `chat_template_kwargs.enable_thinking`.
    Vllm,
    /// OpenRouter: the `reasoning` object.
    Openrouter,
    /// OpenAI: `reasoning_effort`.
    Openai,
}

impl Api {
    /// `openrouter.ai` is OpenRouter, `api.openai.com` OpenAI, anything else vLLM-like.
    pub fn from_url(url: &str) -> Api {
        if url.contains("openrouter.ai") {
            Api::Openrouter
        } else if url.contains("api.openai.com") {
            Api::Openai
        } else {
            Api::Vllm
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_connect() -> Duration {
    Duration::from_secs(10)
}
fn no_caps() -> Capabilities {
    Capabilities::default()
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        match Duration::try_from_secs_f64(v) {
            Ok(d) if v > 0.0 => Ok(d),
            _ => Err(serde::de::Error::custom(format!(
                "a positive number of seconds that fits a duration, not {v}"
            ))),
        }
    }
}

impl OpenAiConfig {
    /// A configuration for `model` at `base_url` with the defaults above.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            timeout: default_timeout(),
            connect_timeout: default_connect(),
            sampling: Sampling::default(),
            capabilities: no_caps(),
            api: None,
        }
    }
}

/// The HTTP backend. Build with [`OpenAiBackend::new`].
#[derive(Debug, Clone)]
pub struct OpenAiBackend {
    client: reqwest::Client,
    config: OpenAiConfig,
    url: String,
    completions_url: String,
    tokenize_url: String,
    key: Option<Secret>,
}

/// `s` cut to 2,000 bytes (on a character boundary), noting the full length.
pub(crate) fn truncate(s: &str) -> String {
    match cut(s, 2000) {
        Some(head) => format!("{head}... ({} bytes)", s.len()),
        None => s.to_string(),
    }
}

impl OpenAiBackend {
    /// A client for `config`.
    ///
    /// # Errors
    /// [`LlmError::Config`] if `api_key_env` names a variable that is not set, or the base URL
    /// is not http(s).
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(LlmError::Config(format!(
                "base_url `{}` must start with http:// or https://",
                config.base_url
            )));
        }
        let key = Secret::from_env(config.api_key_env.as_deref())?;
        let client = http_client(config.timeout, config.connect_timeout, 256)?;
        let base = config.base_url.trim_end_matches('/');
        let url = format!("{base}/chat/completions");
        let completions_url = format!("{base}/completions");
        // vLLM serves /tokenize at the server's root, beside /v1.
        let tokenize_url = format!("{}/tokenize", base.strip_suffix("/v1").unwrap_or(base));
        Ok(OpenAiBackend {
            client,
            config,
            url,
            completions_url,
            tokenize_url,
            key,
        })
    }

    /// The request body sent for `request`.
    pub fn body(&self, request: &ChatRequest) -> Value {
        let messages = messages_json(&request.messages);
        let d = &self.config.sampling;
        let s = &request.sampling;
        let mut body = json!({ "model": self.config.model, "messages": messages });
        let obj = body.as_object_mut().expect("an object");
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                obj.insert(k.to_string(), v);
            }
        };
        set("temperature", s.temperature.or(d.temperature).map(Value::from));
        set("top_p", s.top_p.or(d.top_p).map(Value::from));
        set("top_k", s.top_k.or(d.top_k).map(Value::from));
        set("max_tokens", s.max_tokens.or(d.max_tokens).map(Value::from));
        set("seed", s.seed.or(d.seed).map(Value::from));
        if let Some(k) = s.top_logprobs.or(d.top_logprobs) {
            set("logprobs", Some(Value::Bool(true)));
            set("top_logprobs", Some(Value::from(k)));
        }
        if let Some(t) = s.thinking.as_ref().or(d.thinking.as_ref()) {
            let api = self.config.api.unwrap_or_else(|| Api::from_url(&self.config.base_url));
            let off = t.enabled == Some(false);
            match api {
                Api::Vllm => set(
                    "chat_template_kwargs",
                    t.enabled.map(|on| json!({ "enable_thinking": on })),
                ),
                Api::Openrouter => {
                    let mut r = serde_json::Map::new();
                    if off {
                        r.insert("effort".into(), json!("none"));
                    } else if let Some(e) = &t.effort {
                        r.insert("effort".into(), json!(e));
                    } else if let Some(b) = t.budget {
                        r.insert("max_tokens".into(), json!(b));
                    }
                    if let Some(x) = t.exclude {
                        r.insert("exclude".into(), json!(x));
                    }
                    set("reasoning", (!r.is_empty()).then_some(Value::Object(r)));
                }
                Api::Openai => set(
                    "reasoning_effort",
                    if off {
                        Some(json!("none"))
                    } else {
                        t.effort.clone().map(Value::from)
                    },
                ),
            }
        }
        body
    }
}

/// Messages in the OpenAI chat format (a lone text part as a plain string).
fn messages_json(messages: &[Message]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| {
            let content = match m.parts.as_slice() {
                [Part::Text { text }] => Value::String(text.clone()),
                parts => Value::Array(
                    parts
                        .iter()
                        .map(|p| match p {
                            Part::Text { text } => json!({ "type": "text", "text": text }),
                            Part::Image { url } => json!({ "type": "image_url", "image_url": { "url": url } }),
                        })
                        .collect(),
                ),
            };
            json!({ "role": m.role, "content": content })
        })
        .collect()
}

fn parse_response(body: &str) -> Result<ChatResponse, LlmError> {
    let malformed = |message: String| LlmError::Malformed {
        message,
        body: truncate(body),
    };
    let v: Value = serde_json::from_str(body).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let choice = v
        .get("choices")
        .and_then(|c| c.as_array())
        .and_then(|c| c.first())
        .ok_or_else(|| LlmError::NoChoices(truncate(body)))?;
    let text = match &choice["message"]["content"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => return Err(malformed(format!("`choices[0].message.content` is {other}"))),
    };
    let usage = Usage {
        prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    };
    let logprobs = choice["logprobs"]["content"].as_array().map(|tokens| {
        tokens
            .iter()
            .map(|t| TokenLogprob {
                token: t["token"].as_str().unwrap_or_default().to_string(),
                logprob: t["logprob"].as_f64().unwrap_or(f64::NEG_INFINITY),
                top: t["top_logprobs"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| {
                                (
                                    x["token"].as_str().unwrap_or_default().to_string(),
                                    x["logprob"].as_f64().unwrap_or(f64::NEG_INFINITY),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    });
    Ok(ChatResponse {
        text,
        usage,
        logprobs,
        model: v["model"].as_str().unwrap_or_default().to_string(),
        finish_reason: choice["finish_reason"].as_str().map(str::to_string),
        cached: false,
    })
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// POSTs `body` as JSON to `url` (with the key as a bearer token) and returns the response
/// body of a success. The one place HTTP failures are classified, for chat and embeddings:
/// a timeout, a connection error, an exhausted quota (a 429 saying so: permanent), or any
/// other status with the body and the server's `Retry-After`.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    key: Option<&Secret>,
    body: &Value,
    timeout: Duration,
) -> Result<String, LlmError> {
    let mut req = client.post(url).json(body);
    if let Some(Secret(key)) = key {
        req = req.bearer_auth(key);
    }
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            LlmError::Timeout(timeout)
        } else {
            LlmError::Connection(e.to_string())
        }
    };
    let resp = req.send().await.map_err(failed)?;
    let status = resp.status();
    let after = retry_after(resp.headers());
    let body = resp.text().await.map_err(failed)?;
    if !status.is_success() {
        let lower = body.to_ascii_lowercase();
        if status.as_u16() == 429 && (lower.contains("insufficient_quota") || lower.contains("quota exceeded")) {
            return Err(LlmError::Quota(truncate(&body)));
        }
        return Err(LlmError::Status {
            status: status.as_u16(),
            body: truncate(&body),
            retry_after: after,
        });
    }
    Ok(body)
}

#[async_trait]
impl Backend for OpenAiBackend {
    fn name(&self) -> String {
        format!("{}@{}", self.config.model, self.config.base_url)
    }

    fn capabilities(&self) -> Capabilities {
        self.config.capabilities
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if request.messages.iter().any(|m| m.has_image()) && !self.config.capabilities.images {
            return Err(LlmError::Unsupported(format!(
                "`{}` is not configured for images",
                self.config.model
            )));
        }
        let body = self.post(&self.url, &self.body(request)).await?;
        parse_response(&body)
    }

    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, LlmError> {
        if !self.config.capabilities.scoring {
            return Err(LlmError::Unsupported(format!(
                "backend `{}` lacks {SCORING_CAPABILITY}",
                self.name()
            )));
        }
        // The server's own tokenization: the prompt as the chat template renders it for a
        // reply, then the prompt with the continuation as the start of that reply. The
        // scored tokens are those after the first sequence, which must be a prefix of the
        // second (else no token could be said to belong to the continuation).
        let prompt = self.tokenize(&request.messages, false).await?;
        let mut with = request.messages.clone();
        with.push(Message::text(Role::Assistant, request.continuation.clone()));
        let full = self.tokenize(&with, true).await?;
        if full.len() <= prompt.len() || full[..prompt.len()] != prompt[..] {
            return Err(LlmError::Malformed {
                message: format!(
                    "the server's tokenization of the prompt ({} tokens) is not a prefix of its tokenization of the \
                     prompt with the continuation ({} tokens), so the continuation's tokens cannot be told apart",
                    prompt.len(),
                    full.len()
                ),
                body: String::new(),
            });
        }
        let body = json!({
            "model": self.config.model,
            "prompt": full,
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": 0,
        });
        let text = self.post(&self.completions_url, &body).await?;
        parse_prompt_logprobs(&text, &full, prompt.len())
    }
}

impl OpenAiBackend {
    /// POSTs `body` as JSON; the response body, or the error the status means.
    async fn post(&self, url: &str, body: &Value) -> Result<String, LlmError> {
        post_json(&self.client, url, self.key.as_ref(), body, self.config.timeout).await
    }

    /// vLLM's `/tokenize` of `messages` with the chat template: for a reply
    /// (`add_generation_prompt`), or continuing the final assistant message. Thinking is off,
    /// as the published scoring renders it.
    async fn tokenize(&self, messages: &[Message], continue_final: bool) -> Result<Vec<u64>, LlmError> {
        let body = json!({
            "model": self.config.model,
            "messages": messages_json(messages),
            "add_generation_prompt": !continue_final,
            "continue_final_message": continue_final,
            "add_special_tokens": false,
            "chat_template_kwargs": { "enable_thinking": false },
        });
        let text = self.post(&self.tokenize_url, &body).await.map_err(|e| match e {
            LlmError::Status { status: 404 | 405, .. } => LlmError::Unsupported(format!(
                "backend `{}` has no {} endpoint, so it lacks {SCORING_CAPABILITY}",
                self.name(),
                self.tokenize_url
            )),
            other => other,
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| LlmError::Malformed {
            message: format!("/tokenize answered with no JSON: {e}"),
            body: truncate(&text),
        })?;
        v["tokens"]
            .as_array()
            .and_then(|a| a.iter().map(|t| t.as_u64()).collect::<Option<Vec<u64>>>())
            .ok_or_else(|| LlmError::Malformed {
                message: "/tokenize answered without a `tokens` list of ids".into(),
                body: truncate(&text),
            })
    }
}

/// The log-probabilities of `ids[from..]` in a completions response with `prompt_logprobs`
/// (one entry per prompt token, the first null, each mapping the token id, as a string, to
/// `{logprob, rank, decoded_token}`).
fn parse_prompt_logprobs(body: &str, ids: &[u64], from: usize) -> Result<ScoreResponse, LlmError> {
    let malformed = |message: String| LlmError::Malformed {
        message,
        body: truncate(body),
    };
    let v: Value = serde_json::from_str(body).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let entries = v["choices"][0]["prompt_logprobs"]
        .as_array()
        .ok_or_else(|| malformed("no `choices[0].prompt_logprobs` (does the server accept prompt_logprobs?)".into()))?;
    if entries.len() < ids.len() {
        return Err(malformed(format!(
            "{} prompt log-probabilities for {} prompt tokens",
            entries.len(),
            ids.len()
        )));
    }
    let mut tokens = Vec::with_capacity(ids.len() - from);
    for (pos, id) in ids.iter().enumerate().skip(from) {
        let entry = &entries[pos][id.to_string()];
        let logprob = entry["logprob"]
            .as_f64()
            .ok_or_else(|| malformed(format!("no log-probability for token {id} at position {pos}")))?;
        tokens.push(ScoredToken {
            token: entry["decoded_token"].as_str().unwrap_or_default().to_string(),
            logprob,
        });
    }
    Ok(ScoreResponse {
        tokens,
        usage: Usage {
            prompt_tokens: ids.len() as u64,
            completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        },
        model: v["model"].as_str().unwrap_or_default().to_string(),
        cached: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Message, Role};

    #[test]
    fn the_key_never_prints_and_bodies_merge_sampling() {
        // SAFETY: single-threaded test setting a variable only it reads.
        unsafe { std::env::set_var("QVAL_TEST_KEY_1", "sk-very-secret") };
        let mut cfg = OpenAiConfig::new("http://127.0.0.1:9/v1/", "m");
        cfg.api_key_env = Some("QVAL_TEST_KEY_1".into());
        cfg.sampling = Sampling {
            temperature: Some(0.1),
            max_tokens: Some(10),
            ..Default::default()
        };
        let b = OpenAiBackend::new(cfg).unwrap();
        assert!(!format!("{b:?}").contains("very-secret"));
        let req = ChatRequest {
            messages: vec![Message::text(Role::User, "hi")],
            sampling: Sampling {
                temperature: Some(0.7),
                top_logprobs: Some(20),
                ..Default::default()
            },
        };
        let body = b.body(&req);
        assert_eq!(body["temperature"], 0.7);
        assert_eq!(body["max_tokens"], 10);
        assert_eq!(body["top_logprobs"], 20);
        assert_eq!(body["logprobs"], true);
        assert_eq!(body["messages"][0]["content"], "hi");
        assert_eq!(b.url, "http://127.0.0.1:9/v1/chat/completions");
        let mut missing = OpenAiConfig::new("http://x/v1", "m");
        missing.api_key_env = Some("QVAL_SURELY_UNSET_VARIABLE".into());
        assert!(
            OpenAiBackend::new(missing)
                .unwrap_err()
                .to_string()
                .contains("QVAL_SURELY_UNSET_VARIABLE")
        );
        assert!(OpenAiBackend::new(OpenAiConfig::new("localhost:8000", "m")).is_err());
    }

    #[test]
    fn responses_parse_with_logprobs_and_errors_keep_the_body() {
        let ok = r#"{"model":"m","choices":[{"message":{"content":"<answer>0.5</answer>"},
            "logprobs":{"content":[{"token":"A","logprob":-0.1,"top_logprobs":[{"token":"A","logprob":-0.1},{"token":"B","logprob":-2.3}]}]}}],
            "usage":{"prompt_tokens":12,"completion_tokens":5}}"#;
        let r = parse_response(ok).unwrap();
        assert_eq!(r.text, "<answer>0.5</answer>");
        assert_eq!(
            r.usage,
            Usage {
                prompt_tokens: 12,
                completion_tokens: 5
            }
        );
        assert_eq!(r.logprobs.unwrap()[0].top[1], ("B".to_string(), -2.3));
        assert!(matches!(
            parse_response(r#"{"choices": []}"#),
            Err(LlmError::NoChoices(_))
        ));
        let e = parse_response("<html>bad gateway</html>").unwrap_err();
        assert!(e.to_string().contains("bad gateway"));
    }
}
