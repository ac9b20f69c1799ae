//! Layers that wrap any [`Backend`], in the spirit of tower: each is a backend around a
//! backend, and hands inwards unchanged what it does not change (its name, capabilities and
//! the `unparsed` notice, all through one macro, `forward_backend!`). [`StackBuilder`]
//! assembles them in the order that makes sense:
//!
//! ```text
//! Cache( Metered( SecondElicitation( QuotaWait( Log( Retry( ConcurrencyLimit( backend )))))))
//! ```
//!
//! - a second elicitation (an answer cut off at the token limit, asked for once more) is part
//!   of one logical request: metered once with the tokens of both, logged as two requests;
//! - an exhausted quota is waited out (the published schedule, up to a longest wait), each
//!   attempt logged, the wait shown through the usage counter;
//! - the cache is outermost, so a finished experiment reruns with zero requests;
//! - usage is metered and requests are logged once per logical request (with the final
//!   outcome and the latency including retries);
//! - retries sit outside the concurrency limit, so a request waiting out a back-off does not
//!   hold one of the slots.

use async_trait::async_trait;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

use super::backend::{
    Backend, ChatRequest, ChatResponse, LlmError, Message, Part, Reply, Role, ScoreRequest, ScoreResponse, Thinking,
    forward_backend,
};

/// At most `limit` requests in flight.
pub struct ConcurrencyLimit<B> {
    inner: B,
    slots: Arc<Semaphore>,
}

impl<B> ConcurrencyLimit<B> {
    /// Wraps `inner` with `limit` slots (at least 1).
    pub fn new(inner: B, limit: usize) -> Self {
        ConcurrencyLimit {
            inner,
            slots: Arc::new(Semaphore::new(limit.max(1))),
        }
    }
}

#[async_trait]
impl<B: Backend> Backend for ConcurrencyLimit<B> {
    forward_backend!(self => self.inner; name, capabilities, unparsed);
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let _permit = self.slots.acquire().await.expect("the semaphore is never closed");
        self.inner.chat(request).await
    }
    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, LlmError> {
        let _permit = self.slots.acquire().await.expect("the semaphore is never closed");
        self.inner.score(request).await
    }
}

/// When and how long to retry. Build with [`RetryPolicy::builder`].
///
/// | parameter | default | range |
/// |---|---|---|
/// | `max_attempts` | 6 | 1 to 100 |
/// | `base_delay` | 1 s | > 0 |
/// | `max_delay` | 60 s | >= `base_delay` |
///
/// Attempt k (from 1) waits `min(max_delay, base_delay * 2^(k-1))` scaled by a random factor
/// in [0.5, 1] (jitter), or the server's `Retry-After` if that is longer.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first back-off.
    pub base_delay: Duration,
    /// The longest back-off.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// A builder with the defaults above.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder(RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        })
    }
}

/// Builder of [`RetryPolicy`].
#[derive(Clone, Debug)]
pub struct RetryPolicyBuilder(RetryPolicy);

impl RetryPolicyBuilder {
    /// Attempts in all (default 6).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.0.max_attempts = n;
        self
    }
    /// First back-off (default 1 s).
    pub fn base_delay(mut self, d: Duration) -> Self {
        self.0.base_delay = d;
        self
    }
    /// Longest back-off (default 60 s).
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.0.max_delay = d;
        self
    }
    /// Validates.
    ///
    /// # Errors
    /// [`LlmError::Config`] naming the parameter out of range.
    pub fn build(self) -> Result<RetryPolicy, LlmError> {
        let p = self.0;
        if !(1..=100).contains(&p.max_attempts) {
            return Err(LlmError::Config(format!(
                "retry max_attempts = {}: must be 1 to 100",
                p.max_attempts
            )));
        }
        if p.base_delay.is_zero() {
            return Err(LlmError::Config("retry base_delay must be positive".into()));
        }
        if p.max_delay < p.base_delay {
            return Err(LlmError::Config(format!(
                "retry max_delay {:?} is shorter than base_delay {:?}",
                p.max_delay, p.base_delay
            )));
        }
        Ok(p)
    }
}

/// The retry loop of [`Retry`], on its own so that clients which are not a [`Backend`] (the
/// HTTP encoder of [`crate::embeddings`]) retry the same way: transient failures
/// ([`LlmError::is_transient`]) with exponential back-off and jitter, honouring `Retry-After`.
pub(crate) struct Retrier {
    policy: RetryPolicy,
    jitter: Mutex<rand_chacha::ChaCha8Rng>,
    retries: AtomicU64,
}

impl Retrier {
    /// A retrier following `policy`.
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Retrier {
            policy,
            jitter: Mutex::new(rand_chacha::ChaCha8Rng::seed_from_u64(0)),
            retries: AtomicU64::new(0),
        }
    }

    /// Retries made so far.
    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn delay(&self, attempt: u32, err: &LlmError) -> Duration {
        let exp = self
            .policy
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.policy.max_delay);
        let factor = 0.5 + 0.5 * self.jitter.lock().expect("jitter lock").random::<f64>();
        let backoff = exp.mul_f64(factor);
        match err.retry_after() {
            Some(after) if after > backoff => after,
            _ => backoff,
        }
    }

    /// Calls `call` until it succeeds, fails for good, or runs out of attempts (the error
    /// then notes how many were made).
    pub(crate) async fn run<T, F, Fut>(&self, call: F) -> Result<T, LlmError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, LlmError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Err(e) if e.is_transient() && attempt < self.policy.max_attempts => {
                    let wait = self.delay(attempt, &e);
                    tracing::debug!(attempt, ?wait, error = %e, "retrying");
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) if e.is_transient() => {
                    return Err(e.with_attempts(attempt));
                }
                other => return other,
            }
        }
    }
}

/// Retries transient failures ([`LlmError::is_transient`]) with exponential back-off and
/// jitter, honouring `Retry-After`; permanent failures (4xx, an exhausted quota, malformed
/// answers) return at once.
pub struct Retry<B> {
    inner: B,
    retrier: Retrier,
}

impl<B> Retry<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, policy: RetryPolicy) -> Self {
        Retry {
            inner,
            retrier: Retrier::new(policy),
        }
    }

    /// Retries made so far.
    pub fn retries(&self) -> u64 {
        self.retrier.retries()
    }
}

#[async_trait]
impl<B: Backend> Backend for Retry<B> {
    forward_backend!(self => self.inner; name, capabilities, unparsed);
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.retrier.run(|| self.inner.chat(request)).await
    }
    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, LlmError> {
        self.retrier.run(|| self.inner.score(request)).await
    }
}

impl LlmError {
    /// The same error, noting how many attempts were made.
    fn with_attempts(self, attempts: u32) -> LlmError {
        match self {
            LlmError::Status {
                status,
                body,
                retry_after,
            } => LlmError::Status {
                status,
                body: format!("{body} (after {attempts} attempts)"),
                retry_after,
            },
            LlmError::Connection(m) => LlmError::Connection(format!("{m} (after {attempts} attempts)")),
            other => other,
        }
    }
}

/// An on-disk response cache keyed by a SHA-256 of the backend's name and the full request
/// (messages, images, sampling). Only successful responses are stored, one file each,
/// written atomically: a rerun of a finished experiment makes zero requests.
///
/// Single-flight: identical requests in flight at once make one request; the others wait
/// for it and are served its cached answer. Responses served from the cache are marked
/// [`ChatResponse::cached`], so usage counters can tell them from requests sent.
pub struct Cache<B> {
    inner: B,
    dir: PathBuf,
    hits: AtomicU64,
    inflight: Mutex<std::collections::HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    reask_unparsed: bool,
}

/// The file of an on-disk cache entry keyed by the hash `h`: `<dir>/<2 hex>/<sha256>.json`
/// (the chat cache's layout, and the embeddings cache's).
pub(crate) fn cache_file(dir: &Path, h: Sha256) -> PathBuf {
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    dir.join(&hex[..2]).join(format!("{hex}.json"))
}

impl<B: Backend> Cache<B> {
    /// Caches `inner`'s responses under `dir`.
    pub fn new(inner: B, dir: impl Into<PathBuf>) -> Self {
        Cache {
            inner,
            dir: dir.into(),
            hits: AtomicU64::new(0),
            inflight: Mutex::new(std::collections::HashMap::new()),
            reask_unparsed: false,
        }
    }

    /// Whether cached replies that a method could not parse (marked through
    /// [`Backend::unparsed`]) are asked again instead of served (default false: every
    /// cached reply is served). Rerunning with it re-asks exactly the points whose answer
    /// did not parse; the fresh replies replace the cached ones.
    pub fn reask_unparsed(mut self, yes: bool) -> Self {
        self.reask_unparsed = yes;
        self
    }

    /// Requests answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The cache file of a request.
    pub fn path_of(&self, request: &ChatRequest) -> PathBuf {
        self.path_for("", request)
    }

    /// The cache file of a request of some kind ("" for chat, so that chat entries keep
    /// their keys).
    fn path_for(&self, kind: &str, request: &impl serde::Serialize) -> PathBuf {
        let mut h = Sha256::new();
        h.update(self.inner.name().as_bytes());
        h.update([0]);
        if !kind.is_empty() {
            h.update(kind.as_bytes());
            h.update([0]);
        }
        h.update(serde_json::to_vec(request).expect("requests serialise"));
        cache_file(&self.dir, h)
    }

    fn lookup<R: Reply>(&self, path: &Path) -> Option<R> {
        let bytes = std::fs::read(path).ok()?;
        let v = serde_json::from_slice::<serde_json::Value>(&bytes).ok()?;
        if self.reask_unparsed && v["parsed"] == false {
            return None;
        }
        let mut resp = serde_json::from_value::<R>(v["response"].clone()).ok()?;
        resp.set_cached();
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(resp)
    }

    /// Serves `path` from disk, or calls `call` once however many identical requests are in
    /// flight, and stores a success.
    async fn cached<R, F, Fut>(&self, path: PathBuf, request: serde_json::Value, call: F) -> Result<R, LlmError>
    where
        R: Reply,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<R, LlmError>>,
    {
        if let Some(resp) = self.lookup(&path) {
            return Ok(resp);
        }
        // One request per distinct prompt: the first caller asks, the others wait for it and
        // then find its answer in the cache (or ask themselves if it failed).
        let gate = self
            .inflight
            .lock()
            .expect("cache lock")
            .entry(path.clone())
            .or_default()
            .clone();
        let turn = gate.lock().await;
        let result = match self.lookup(&path) {
            Some(resp) => Ok(resp),
            None => {
                let result = call().await;
                if let Ok(resp) = &result {
                    let entry = json!({ "backend": self.inner.name(), "request": request, "response": resp });
                    if let Err(e) = qval_core::io::write_atomic(&path, entry.to_string().as_bytes()) {
                        tracing::warn!(error = %e, "could not write the response cache");
                    }
                }
                result
            }
        };
        drop(turn);
        let mut inflight = self.inflight.lock().expect("cache lock");
        if inflight.get(&path).is_some_and(|g| Arc::ptr_eq(g, &gate)) && Arc::strong_count(&gate) <= 2 {
            inflight.remove(&path);
        }
        result
    }
}

#[async_trait]
impl<B: Backend> Backend for Cache<B> {
    forward_backend!(self => self.inner; name, capabilities);
    /// Records `"parsed": false` in the request's cache entry (kept, and still served
    /// unless [`Cache::reask_unparsed`] is set).
    fn unparsed(&self, request: &ChatRequest) {
        self.inner.unparsed(request);
        let path = self.path_of(request);
        let Ok(bytes) = std::fs::read(&path) else { return };
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return;
        };
        if v["parsed"] == false {
            return;
        }
        v["parsed"] = json!(false);
        if let Err(e) = qval_core::io::write_atomic(&path, v.to_string().as_bytes()) {
            tracing::warn!(error = %e, "could not mark a cache entry as unparsed");
        }
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let path = self.path_of(request);
        self.cached(path, json!(request), || self.inner.chat(request)).await
    }
    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, LlmError> {
        let path = self.path_for("score", request);
        self.cached(path, json!(request), || self.inner.score(request)).await
    }
}

/// Counts requests, failures and tokens (shared, so a method can report its usage), with
/// requests sent to the model apart from those served by the response cache.
#[derive(Debug, Default)]
pub struct UsageCounter {
    /// Requests sent to the model (cache hits excluded).
    pub requests: AtomicU64,
    /// Requests that failed.
    pub failures: AtomicU64,
    /// Prompt tokens sent to the model.
    pub prompt_tokens: AtomicU64,
    /// Tokens the model generated for requests sent.
    pub completion_tokens: AtomicU64,
    /// Requests served from the cache.
    pub cache_hits: AtomicU64,
    /// Prompt tokens of the requests served from the cache (as first recorded).
    pub cached_prompt_tokens: AtomicU64,
    /// Generated tokens of the responses served from the cache (as first recorded).
    pub cached_completion_tokens: AtomicU64,
    /// Answers cut off at the token limit and asked for once more.
    pub second_elicitations: AtomicU64,
    /// Waits for an exhausted quota.
    pub quota_waits: AtomicU64,
    /// While a request waits for its quota: what it waits for and until when.
    pub waiting: Mutex<Option<String>>,
}

impl UsageCounter {
    /// A snapshot as JSON: `requests`, `failures`, `prompt_tokens`, `completion_tokens` for
    /// what was sent to the model; `cache_hits`, `cached_prompt_tokens`,
    /// `cached_completion_tokens` for what the cache served; `second_elicitations` and
    /// `quota_waits`.
    pub fn snapshot(&self) -> serde_json::Value {
        json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "failures": self.failures.load(Ordering::Relaxed),
            "prompt_tokens": self.prompt_tokens.load(Ordering::Relaxed),
            "completion_tokens": self.completion_tokens.load(Ordering::Relaxed),
            "cache_hits": self.cache_hits.load(Ordering::Relaxed),
            "cached_prompt_tokens": self.cached_prompt_tokens.load(Ordering::Relaxed),
            "cached_completion_tokens": self.cached_completion_tokens.load(Ordering::Relaxed),
            "second_elicitations": self.second_elicitations.load(Ordering::Relaxed),
            "quota_waits": self.quota_waits.load(Ordering::Relaxed),
        })
    }
}

/// Token accounting.
pub struct Metered<B> {
    inner: B,
    counter: Arc<UsageCounter>,
}

impl<B> Metered<B> {
    /// Counts `inner`'s traffic into `counter`.
    pub fn new(inner: B, counter: Arc<UsageCounter>) -> Self {
        Metered { inner, counter }
    }
}

#[async_trait]
impl<B: Backend> Backend for Metered<B> {
    forward_backend!(self => self.inner; name, capabilities, unparsed);
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let r = self.inner.chat(request).await;
        self.counter.count(&r);
        r
    }
    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, LlmError> {
        let r = self.inner.score(request).await;
        self.counter.count(&r);
        r
    }
}

impl UsageCounter {
    fn count<R: Reply>(&self, r: &Result<R, LlmError>) {
        let Ok(resp) = r else {
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.failures.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // A reply is counted either as served by the cache or as sent to the model.
        let (replies, prompt, completion) = if resp.is_cached() {
            (
                &self.cache_hits,
                &self.cached_prompt_tokens,
                &self.cached_completion_tokens,
            )
        } else {
            (&self.requests, &self.prompt_tokens, &self.completion_tokens)
        };
        replies.fetch_add(1, Ordering::Relaxed);
        prompt.fetch_add(resp.usage().prompt_tokens, Ordering::Relaxed);
        completion.fetch_add(resp.usage().completion_tokens, Ordering::Relaxed);
    }
}

/// A JSON Lines request log: messages (images as their size), sampling, response, tokens,
/// latency and error, one line per request. The API key is never part of it.
pub struct RequestLog<B> {
    inner: B,
    path: PathBuf,
    file: Mutex<std::fs::File>,
    started: Instant,
}

impl<B> RequestLog<B> {
    /// Appends to the log at `path` (created with its folder).
    ///
    /// # Errors
    /// [`LlmError::Config`] if the file cannot be opened.
    pub fn new(inner: B, path: impl AsRef<Path>) -> Result<Self, LlmError> {
        let path = path.as_ref().to_path_buf();
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| LlmError::Config(format!("creating {}: {e}", d.display())))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| LlmError::Config(format!("opening the request log {}: {e}", path.display())))?;
        drop_torn_tail(&file)
            .map_err(|e| LlmError::Config(format!("repairing the request log {}: {e}", path.display())))?;
        Ok(RequestLog {
            inner,
            path,
            file: Mutex::new(file),
            started: Instant::now(),
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Cuts a line that a stopped writer left without its newline (a full disk, a kill), so the
/// log holds whole lines only and the next line starts on a line of its own.
fn drop_torn_tail(file: &std::fs::File) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut f = file;
    // Read back from the end in blocks until a newline is found.
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep != len {
                file.set_len(keep)?;
            }
            return Ok(());
        }
        if start == 0 {
            return file.set_len(0);
        }
        end = start;
    }
}

fn loggable_messages(messages: &[super::backend::Message]) -> serde_json::Value {
    let messages: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let parts: Vec<serde_json::Value> = m
                .parts
                .iter()
                .map(|p| match p {
                    Part::Text { text } => json!(text),
                    Part::Image { url } => json!(format!("[image, {} bytes]", url.len())),
                })
                .collect();
            json!({ "role": m.role, "content": parts })
        })
        .collect();
    json!(messages)
}

#[async_trait]
impl<B: Backend> Backend for RequestLog<B> {
    forward_backend!(self => self.inner; name, capabilities, unparsed);
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let logged = json!({ "messages": loggable_messages(&request.messages), "sampling": request.sampling });
        self.logging(logged, || self.inner.chat(request)).await
    }
    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, LlmError> {
        let logged = json!({ "messages": loggable_messages(&request.messages), "continuation": request.continuation });
        self.logging(logged, || self.inner.score(request)).await
    }
}

impl<B: Backend> RequestLog<B> {
    /// Calls `call` and appends one line: the request, the response or error, the latency.
    async fn logging<R, F, Fut>(&self, request: serde_json::Value, call: F) -> Result<R, LlmError>
    where
        R: Reply,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<R, LlmError>>,
    {
        let t = Instant::now();
        let r = call().await;
        let mut line = json!({
            "t_ms": self.started.elapsed().as_millis() as u64,
            "backend": self.inner.name(),
            "request": request,
            "latency_ms": t.elapsed().as_secs_f64() * 1e3,
        });
        match &r {
            Ok(resp) => {
                line["response"] = resp.logged();
                line["usage"] = json!(resp.usage());
            }
            Err(e) => line["error"] = json!(e.to_string()),
        }
        // One write call per line: the file is opened for appending, so lines from several
        // processes sharing the log never interleave within a line.
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let mut f = self.file.lock().expect("log lock");
        let before = f.metadata().map(|m| m.len()).ok();
        let written = match f.write(&bytes) {
            Ok(n) if n == bytes.len() => None,
            Ok(n) => Some(format!("a short write ({n} of {} bytes)", bytes.len())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = written {
            // Whole lines or nothing: cut what part of the line reached the file (a full disk).
            if let Some(len) = before {
                let _ = f.set_len(len);
            }
            tracing::warn!(error = %why, path = %self.path.display(), "could not write the request log");
        }
        r
    }
}

/// The published waits for an exhausted quota, in seconds: 5 minutes, then 5 times an hour.
pub const QUOTA_SCHEDULE_SECS: [f64; 6] = [300.0, 3600.0, 3600.0, 3600.0, 3600.0, 3600.0];

/// The published schedule cut to at most `longest` in all: its waits while they fit, then the
/// remainder (so a longest wait of 10 s gives one wait of 10 s).
pub fn quota_schedule(longest: Duration) -> Vec<Duration> {
    let mut left = longest;
    let mut out = Vec::new();
    for s in QUOTA_SCHEDULE_SECS {
        if left.is_zero() {
            break;
        }
        let w = Duration::from_secs_f64(s).min(left);
        out.push(w);
        left -= w;
    }
    out
}

/// Waits out an exhausted quota ([`LlmError::Quota`]) and asks again, wait by wait (the
/// published schedule: [`quota_schedule`]); when the waits are used up the error stands (the
/// point is recorded as NaN with the reason). While it waits, the counter says so.
pub struct QuotaWait<B> {
    inner: B,
    schedule: Vec<Duration>,
    counter: Arc<UsageCounter>,
}

impl<B> QuotaWait<B> {
    /// Wraps `inner` with the waits of `schedule`.
    pub fn new(inner: B, schedule: Vec<Duration>, counter: Arc<UsageCounter>) -> Self {
        QuotaWait {
            inner,
            schedule,
            counter,
        }
    }
}

impl<B: Backend> QuotaWait<B> {
    async fn waiting<T, F, Fut>(&self, call: F) -> Result<T, LlmError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, LlmError>>,
    {
        let mut waited = Duration::ZERO;
        for (i, wait) in self.schedule.iter().enumerate() {
            match call().await {
                Err(LlmError::Quota(body)) => {
                    self.counter.quota_waits.fetch_add(1, Ordering::Relaxed);
                    let note = format!(
                        "quota exhausted: waiting {} before retry {} of {}",
                        human(*wait),
                        i + 1,
                        self.schedule.len()
                    );
                    tracing::warn!(backend = %self.inner.name(), "{note}: {body}");
                    *self.counter.waiting.lock().expect("usage lock") = Some(note);
                    tokio::time::sleep(*wait).await;
                    *self.counter.waiting.lock().expect("usage lock") = None;
                    waited += *wait;
                }
                other => return other,
            }
        }
        match call().await {
            Err(LlmError::Quota(body)) if !waited.is_zero() => Err(LlmError::Quota(format!(
                "{body} (still exhausted after waiting {})",
                human(waited)
            ))),
            other => other,
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

#[async_trait]
impl<B: Backend> Backend for QuotaWait<B> {
    forward_backend!(self => self.inner; name, capabilities, unparsed);
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.waiting(|| self.inner.chat(request)).await
    }
    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, LlmError> {
        self.waiting(|| self.inner.score(request)).await
    }
}

/// The published text that closes a thinking block cut off by the token limit.
pub const EARLY_STOPPING_SUFFIX: &str = "\n\nConsidering the limited time by the user, I have to give the solution \
based on the thinking directly now.\n</think>\n\n";

/// The published follow-up that asks for the answer.
pub const SECOND_ELICITATION_PROMPT: &str =
    "Please provide the final answer now. Follow the formatting instructions specified above exactly.";

/// Second elicitation, as published: a reply that stopped at the token limit is continued
/// once — the conversation, the cut reply closed with [`EARLY_STOPPING_SUFFIX`], and
/// [`SECOND_ELICITATION_PROMPT`] — with thinking off and a small token limit. The answer is
/// the two texts joined, with the tokens of both; a failed second request keeps the first
/// reply. Each one is counted ([`UsageCounter::second_elicitations`]).
pub struct SecondElicitation<B> {
    inner: B,
    max_tokens: u32,
    counter: Arc<UsageCounter>,
}

impl<B> SecondElicitation<B> {
    /// Wraps `inner`; the second request may generate `max_tokens` (published 512).
    pub fn new(inner: B, max_tokens: u32, counter: Arc<UsageCounter>) -> Self {
        SecondElicitation {
            inner,
            max_tokens,
            counter,
        }
    }
}

#[async_trait]
impl<B: Backend> Backend for SecondElicitation<B> {
    forward_backend!(self => self.inner; name, capabilities, unparsed);
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let first = self.inner.chat(request).await?;
        if !first.truncated() {
            return Ok(first);
        }
        self.counter.second_elicitations.fetch_add(1, Ordering::Relaxed);
        let mut messages = request.messages.clone();
        messages.push(Message::text(
            Role::Assistant,
            format!("{}{EARLY_STOPPING_SUFFIX}", first.text),
        ));
        messages.push(Message::text(Role::User, SECOND_ELICITATION_PROMPT));
        let mut sampling = request.sampling.clone();
        sampling.max_tokens = Some(self.max_tokens);
        sampling.thinking = Some(Thinking::off());
        sampling.top_logprobs = None;
        match self.inner.chat(&ChatRequest { messages, sampling }).await {
            Ok(second) => Ok(ChatResponse {
                text: format!("{}{EARLY_STOPPING_SUFFIX}{}", first.text, second.text),
                usage: super::backend::Usage {
                    prompt_tokens: first.usage.prompt_tokens + second.usage.prompt_tokens,
                    completion_tokens: first.usage.completion_tokens + second.usage.completion_tokens,
                },
                logprobs: None,
                model: second.model,
                finish_reason: second.finish_reason,
                cached: false,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "the second elicitation failed; keeping the cut reply");
                Ok(first)
            }
        }
    }
    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, LlmError> {
        self.inner.score(request).await
    }
}

/// Assembles the layers around a backend in the documented order.
pub struct StackBuilder {
    backend: Arc<dyn Backend>,
    concurrency: usize,
    retry: Option<RetryPolicy>,
    log: Option<PathBuf>,
    cache: Option<PathBuf>,
    reask_unparsed: bool,
    counter: Arc<UsageCounter>,
    quota_wait: Vec<Duration>,
    second_elicitation: Option<u32>,
}

impl StackBuilder {
    /// Starts from `backend`, with concurrency 32 (published), the default retry policy, no
    /// log and no cache.
    pub fn new(backend: impl Backend + 'static) -> Self {
        StackBuilder {
            backend: Arc::new(backend),
            concurrency: 32,
            retry: Some(RetryPolicy::builder().build().expect("valid defaults")),
            log: None,
            cache: None,
            reask_unparsed: false,
            counter: Arc::new(UsageCounter::default()),
            quota_wait: Vec::new(),
            second_elicitation: None,
        }
    }
    /// Waits for an exhausted quota (default none: the error stands at once); see
    /// [`quota_schedule`] for the published ones.
    pub fn quota_wait(mut self, schedule: Vec<Duration>) -> Self {
        self.quota_wait = schedule;
        self
    }
    /// Ask once more, with this token limit, when a reply stops at the token limit (default
    /// off; published 512 with thinking backends).
    pub fn second_elicitation(mut self, max_tokens: Option<u32>) -> Self {
        self.second_elicitation = max_tokens;
        self
    }
    /// Requests in flight at most (default 32).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// The retry policy; `None` disables retries.
    pub fn retry(mut self, policy: Option<RetryPolicy>) -> Self {
        self.retry = policy;
        self
    }
    /// Log every request to this JSON Lines file.
    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }
    /// Cache responses under this folder.
    pub fn cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = Some(dir.into());
        self
    }
    /// Ask again the cached requests whose reply a method could not parse (default false;
    /// see [`Cache::reask_unparsed`]).
    pub fn reask_unparsed(mut self, yes: bool) -> Self {
        self.reask_unparsed = yes;
        self
    }
    /// The usage counter the stack reports into.
    pub fn counter(&self) -> Arc<UsageCounter> {
        self.counter.clone()
    }
    /// Builds `Cache(Metered(SecondElicitation(QuotaWait(Log(Retry(ConcurrencyLimit(backend)))))))`,
    /// leaving out the layers not asked for.
    ///
    /// # Errors
    /// [`LlmError::Config`] if the log cannot be opened or concurrency is 0.
    pub fn build(self) -> Result<Arc<dyn Backend>, LlmError> {
        if self.concurrency == 0 {
            return Err(LlmError::Config("concurrency must be at least 1".into()));
        }
        let mut b: Arc<dyn Backend> = Arc::new(ConcurrencyLimit::new(self.backend, self.concurrency));
        if let Some(p) = self.retry {
            b = Arc::new(Retry::new(b, p));
        }
        if let Some(path) = self.log {
            b = Arc::new(RequestLog::new(b, path)?);
        }
        if !self.quota_wait.is_empty() {
            b = Arc::new(QuotaWait::new(b, self.quota_wait, self.counter.clone()));
        }
        if let Some(max_tokens) = self.second_elicitation {
            b = Arc::new(SecondElicitation::new(b, max_tokens, self.counter.clone()));
        }
        b = Arc::new(Metered::new(b, self.counter));
        if let Some(dir) = self.cache {
            b = Arc::new(Cache::new(b, dir).reask_unparsed(self.reask_unparsed));
        }
        Ok(b)
    }
}
