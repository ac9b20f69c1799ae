//! What the server's handlers share: its configuration and fault rules, the counters and
//! records of what it was asked, its tokenizer's vocabulary, and the reply format.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use crate::oracle::Oracle;

/// Which requests a rule applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    /// Every request.
    Any,
    /// The first N requests the server receives (counting all requests).
    FirstRequests(usize),
    /// Requests whose messages contain this text.
    Contains(String),
}

/// What goes wrong.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// 429 with a `Retry-After` header.
    RateLimited {
        /// Seconds in the header.
        retry_after_secs: f64,
    },
    /// 429 saying the quota is exhausted (permanent).
    QuotaExhausted,
    /// 500.
    ServerError,
    /// 400 (a permanent client error).
    BadRequest,
    /// The reply comes after this delay.
    Slow {
        /// The delay.
        delay: Duration,
    },
    /// A 200 whose body is not JSON.
    MalformedJson,
    /// A 200 with an empty `choices` array.
    NoChoices,
    /// A 200 whose answer has no number.
    Prose,
    /// A 200 cut off at the token limit (`finish_reason` "length") inside its thinking, with
    /// no answer.
    Truncated,
    /// A 200 whose answer is a ```python block defining `signal_function` with the
    /// parameters the prompt asks for (`def signal_function(...)` in the prompt) and a body
    /// that never returns. Pick code-generation requests with
    /// `Selector::Contains("signal_function".into())`.
    NeverReturningCode,
}

/// A fault for the requests a selector picks, at most `times` times (`None`: always).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Which requests.
    pub selector: Selector,
    /// What happens.
    pub fault: Fault,
    /// How often, at most.
    pub times: Option<usize>,
}

impl Rule {
    /// A rule applying every time its selector matches.
    pub fn new(selector: Selector, fault: Fault) -> Self {
        Rule {
            selector,
            fault,
            times: None,
        }
    }

    /// Limits the rule to `n` applications.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }
}

/// How the server answers.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// The oracle's settings (noise, seed).
    pub oracle: Oracle,
    /// Fault rules, first match wins.
    pub rules: Vec<Rule>,
    /// Added to every reply.
    pub latency: Duration,
    /// Answer every request with this fixed text instead of the oracle (benchmarks).
    pub fixed_reply: Option<String>,
    /// Replies to agent prompts (those asking for an `<action>`): reply k to a prompt
    /// listing k earlier turns (lines starting with `Turn `), the last one afterwards.
    pub agent_script: Vec<String>,
    /// Replies to code-generation prompts (those mentioning `signal_function`): sample
    /// `seed % len`, in a ```python block. Samples are written for Q
    /// (`signal_function(state, action, next_state)`); a prompt asking for V
    /// (`signal_function(state)`) gets the sample wrapped to score the state itself.
    pub code_samples: Vec<String>,
    /// The loopback port to listen on (0: any free one).
    pub port: u16,
    /// Serve continuation scoring as vLLM does (`/tokenize` and `/v1/completions` with
    /// `prompt_logprobs`); without it both answer 404, as a hosted API would.
    pub scoring: bool,
}

pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) remaining: Mutex<Vec<Option<usize>>>,
    pub(crate) requests: AtomicUsize,
    pub(crate) prompts: Mutex<Vec<String>>,
    pub(crate) vocab: Mutex<Vocab>,
    pub(crate) embedding_requests: AtomicUsize,
    pub(crate) embedded_images: Mutex<Vec<u64>>,
}

pub(crate) async fn apply_fault(shared: &Shared, n: usize, all_text: &str, model: &str) -> Option<Response> {
    let fault = {
        let mut remaining = shared.remaining.lock().expect("lock");
        shared.config.rules.iter().enumerate().find_map(|(i, r)| {
            let hit = match &r.selector {
                Selector::Any => true,
                Selector::FirstRequests(k) => n < *k,
                Selector::Contains(s) => all_text.contains(s.as_str()),
            };
            if !hit || remaining[i] == Some(0) {
                return None;
            }
            if let Some(left) = remaining[i].as_mut() {
                *left -= 1;
            }
            Some(r.fault.clone())
        })
    };
    if !shared.config.latency.is_zero() {
        tokio::time::sleep(shared.config.latency).await;
    }
    Some(match fault? {
        Fault::RateLimited { retry_after_secs } => {
            let mut h = HeaderMap::new();
            h.insert(
                "retry-after",
                HeaderValue::from_str(&retry_after_secs.to_string()).expect("a header value"),
            );
            (
                StatusCode::TOO_MANY_REQUESTS,
                h,
                Json(json!({"error": {"message": "rate limited"}})),
            )
                .into_response()
        }
        Fault::QuotaExhausted => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": {"code": "insufficient_quota", "message": "You exceeded your current quota"}})),
        )
            .into_response(),
        Fault::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
        Fault::BadRequest => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "bad request"}})),
        )
            .into_response(),
        Fault::Slow { delay } => {
            tokio::time::sleep(delay).await;
            return None;
        }
        Fault::MalformedJson => (StatusCode::OK, "{\"choices\": [ {\"message\": ").into_response(),
        Fault::NoChoices => Json(json!({"model": model, "choices": []})).into_response(),
        Fault::Prose => Json(reply(model, "I would rather not say.", None)).into_response(),
        Fault::Truncated => {
            let mut r = reply(model, "<think>Let me look at the grid row by row and", None);
            r["choices"][0]["finish_reason"] = json!("length");
            Json(r).into_response()
        }
        Fault::NeverReturningCode => Json(reply(model, &never_returning_code(all_text), None)).into_response(),
    })
}

/// A reply defining `signal_function` with the parameters `prompt` asks for (those of its
/// first `def signal_function(...)`, else `state, action, next_state`) that loops forever.
fn never_returning_code(prompt: &str) -> String {
    let params = prompt
        .split("def signal_function(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or("state, action, next_state");
    format!("```python\ndef signal_function({params}):\n    while True:\n        pass\n```")
}

/// Token ids of the test server's tokenizer, assigned on first sight.
#[derive(Default)]
pub(crate) struct Vocab {
    ids: HashMap<String, u64>,
    tokens: Vec<String>,
}

impl Vocab {
    pub(crate) fn id(&mut self, token: String) -> u64 {
        if let Some(i) = self.ids.get(&token) {
            return *i;
        }
        let i = self.tokens.len() as u64;
        self.tokens.push(token.clone());
        self.ids.insert(token, i);
        i
    }
    pub(crate) fn token(&self, id: u64) -> Option<String> {
        self.tokens.get(id as usize).cloned()
    }
}

/// A chat completion answering `text` (with its log-probabilities, if given).
pub(crate) fn reply(model: &str, text: &str, logprobs: Option<Value>) -> Value {
    let mut choice = json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"});
    if let Some(lp) = logprobs {
        choice["logprobs"] = json!({ "content": lp });
    }
    json!({
        "id": "chatcmpl-qval",
        "object": "chat.completion",
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": 100, "completion_tokens": (text.len() / 4).max(1)},
    })
}
