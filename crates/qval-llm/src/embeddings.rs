//! Embeddings over HTTP: [`HttpEncoder`], a [`TextEncoder`] and [`ImageEncoder`] backed by an
//! OpenAI-compatible `POST {base_url}/embeddings` (vLLM serving CLIP or SigLIP, Infinity,
//! text-embeddings-inference, OpenAI).
//!
//! ## The requests
//! - Texts, in batches of `batch_size`, the OpenAI way:
//!   `{"model": M, "input": [t1, t2, ...], "encoding_format": "float"}`.
//! - Images, one request each, the way vLLM's multimodal embedding API takes them (its "chat
//!   embeddings" extension: a chat-style `messages` list in place of `input`, the image a
//!   `data:` URL): `{"model": M, "messages": [{"role": "user", "content": [{"type":
//!   "image_url", "image_url": {"url": "data:image/png;base64,..."}}]}], "encoding_format":
//!   "float"}`. This is the form of vLLM's example client for CLIP (`vllm serve
//!   openai/clip-vit-base-patch32 --runner pooling`) and SigLIP (`vllm serve
//!   google/siglip-base-patch16-224 --runner pooling --chat-template template_basic.jinja`),
//!   `examples/pooling/embed/openai_chat_embedding_client_for_multimodal.py` in
//!   vllm-project/vllm, and of its "Pooling Models" documentation
//!   (<https://docs.vllm.ai/en/latest/models/pooling_models/>).
//!
//! The answer is `{"data": [{"index": i, "embedding": [...]}, ...]}`; vectors are put back in
//! `index` order and L2-normalised here, whatever the server does.
//!
//! ## Failures, retries, cache
//! Transient failures (429, 5xx, timeouts, lost connections) are retried with the same
//! [`RetryPolicy`] and back-off as the chat layers ([`crate::Retry`]); errors become
//! [`CoreError::Method`] with the reason (the server's status and a snippet of its body), so
//! a method scores NaN with it. With [`HttpEncoderBuilder::cache`] every vector is stored on
//! disk, one file per input keyed by a SHA-256 of the model and the input, so a rerun makes
//! no requests. Within a run, wrap the encoder in [`qval_core::encoder::CachedEncoder`] to
//! compute identical inputs once without reading the disk.
//!
//! ```no_run
//! # async fn demo() -> qval_core::Result<()> {
//! use qval_core::encoder::{ImageEncoder, TextEncoder};
//! use qval_llm::embeddings::HttpEncoder;
//!
//! let clip = HttpEncoder::builder("http://localhost:8000/v1", "openai/clip-vit-large-patch14")
//!     .name("clip")
//!     .cache("runs/demo/embedding-cache")
//!     .build()
//!     .expect("valid settings");
//! let goal = clip.encode(&["the agent reached the goal".to_string()]).await?;
//! let png = qval_core::Image::png(std::fs::read("state.png").unwrap());
//! let state = clip.encode_images(&[png]).await?;
//! println!("cosine {}", qval_core::encoder::cosine(&goal[0], &state[0]));
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

use qval_core::encoder::{ImageEncoder, TextEncoder};
use qval_core::{CoreError, Image};

use crate::backend::LlmError;
use crate::layers::{Retrier, RetryPolicy, cache_file};
use crate::openai::{Secret, cut, http_client, post_json, truncate};

/// Settings of an [`HttpEncoder`]. Build with [`HttpEncoder::builder`].
///
/// | setting | default |
/// |---|---|
/// | `base_url`, `model` | (required) |
/// | `name` | the model's last path segment (`openai/clip-vit-large-patch14`: `clip-vit-large-patch14`) |
/// | `api_key_env` | none: no `Authorization` header |
/// | `batch_size` | 32 texts per request (the published batch) |
/// | `concurrency` | 8 requests in flight |
/// | `timeout` | 120 s per request |
/// | `retry` | [`RetryPolicy`]'s defaults (6 attempts) |
/// | `cache` | none: no on-disk cache |
#[derive(Clone, Debug)]
pub struct HttpEncoderBuilder {
    base_url: String,
    model: String,
    name: Option<String>,
    api_key_env: Option<String>,
    batch_size: usize,
    concurrency: usize,
    timeout: Duration,
    retry: Option<RetryPolicy>,
    cache: Option<PathBuf>,
}

impl HttpEncoderBuilder {
    /// The encoder's name in method names (default: the model's last path segment).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// The environment variable holding the API key (default none; the key is never stored,
    /// logged or written anywhere).
    pub fn api_key_env(mut self, var: impl Into<String>) -> Self {
        self.api_key_env = Some(var.into());
        self
    }
    /// Texts per request (default 32).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// Requests in flight at most (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// Per-request timeout (default 120 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// The retry policy; `None` disables retries (default: [`RetryPolicy`]'s defaults).
    pub fn retry(mut self, policy: Option<RetryPolicy>) -> Self {
        self.retry = policy;
        self
    }
    /// Store every vector under this folder (default: no on-disk cache).
    pub fn cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache = Some(dir.into());
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    /// [`LlmError::Config`] naming the setting: a base URL that is not http(s), an empty
    /// model, a batch size or concurrency of 0, a zero timeout, or an API key variable that
    /// is not set.
    pub fn build(self) -> Result<HttpEncoder, LlmError> {
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(LlmError::Config(format!(
                "embeddings base_url `{}` must start with http:// or https://",
                self.base_url
            )));
        }
        if self.model.trim().is_empty() {
            return Err(LlmError::Config("the embeddings model is empty".into()));
        }
        if self.batch_size == 0 {
            return Err(LlmError::Config("embeddings batch_size = 0: give at least 1".into()));
        }
        if self.concurrency == 0 {
            return Err(LlmError::Config("embeddings concurrency = 0: give at least 1".into()));
        }
        if self.timeout.is_zero() {
            return Err(LlmError::Config("the embeddings timeout must be positive".into()));
        }
        let key = Secret::from_env(self.api_key_env.as_deref())?;
        let client = http_client(self.timeout, Duration::from_secs(10), 64)?;
        let name = self.name.clone().unwrap_or_else(|| {
            self.model
                .rsplit('/')
                .find(|s| !s.is_empty())
                .unwrap_or(&self.model)
                .to_string()
        });
        Ok(HttpEncoder {
            client,
            url: format!("{}/embeddings", self.base_url.trim_end_matches('/')),
            model: self.model,
            name,
            key,
            batch_size: self.batch_size,
            slots: Semaphore::new(self.concurrency),
            timeout: self.timeout,
            retrier: self.retry.map(Retrier::new),
            cache: self.cache,
            requests: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        })
    }
}

/// An encoder behind an OpenAI-compatible `/embeddings` endpoint (see the [module
/// docs](self) for the requests). It implements both [`TextEncoder`] and [`ImageEncoder`]:
/// with a CLIP-style model, texts and images land in one space and can be compared.
pub struct HttpEncoder {
    client: reqwest::Client,
    url: String,
    model: String,
    name: String,
    key: Option<Secret>,
    batch_size: usize,
    slots: Semaphore,
    timeout: Duration,
    retrier: Option<Retrier>,
    cache: Option<PathBuf>,
    requests: AtomicU64,
    cache_hits: AtomicU64,
}

impl std::fmt::Debug for HttpEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEncoder")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("name", &self.name)
            .field("key", &self.key)
            .field("batch_size", &self.batch_size)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// What an input is, for request bodies and cache keys.
#[derive(Clone, Copy)]
enum Input<'a> {
    Text(&'a str),
    Image(&'a Image),
}

impl HttpEncoder {
    /// A builder for `model` served at `base_url` (e.g. `http://localhost:8000/v1`), with the
    /// defaults of [`HttpEncoderBuilder`].
    pub fn builder(base_url: impl Into<String>, model: impl Into<String>) -> HttpEncoderBuilder {
        HttpEncoderBuilder {
            base_url: base_url.into(),
            model: model.into(),
            name: None,
            api_key_env: None,
            batch_size: 32,
            concurrency: 8,
            timeout: Duration::from_secs(120),
            retry: Some(RetryPolicy::builder().build().expect("valid defaults")),
            cache: None,
        }
    }

    /// The model.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// HTTP requests sent so far (retries included; cache hits not).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Vectors served from the on-disk cache so far.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Retries made so far.
    pub fn retries(&self) -> u64 {
        self.retrier.as_ref().map_or(0, Retrier::retries)
    }

    /// The request body for a batch of texts.
    pub fn text_body(&self, texts: &[String]) -> Value {
        json!({ "model": self.model, "input": texts, "encoding_format": "float" })
    }

    /// The request body for one image (vLLM's chat-style multimodal embedding request).
    pub fn image_body(&self, image: &Image) -> Value {
        json!({
            "model": self.model,
            "messages": [{
                "role": "user",
                "content": [{ "type": "image_url", "image_url": { "url": image.data_url() } }],
            }],
            "encoding_format": "float",
        })
    }

    /// The cache file of an input: `<dir>/<2 hex>/<sha256>.json`.
    fn cache_path(&self, input: &Input<'_>) -> Option<PathBuf> {
        let dir = self.cache.as_ref()?;
        let mut h = Sha256::new();
        h.update(self.model.as_bytes());
        h.update([0]);
        match input {
            Input::Text(t) => {
                h.update(b"text\0");
                h.update(t.as_bytes());
            }
            Input::Image(i) => {
                h.update(b"image\0");
                h.update(i.media_type.as_bytes());
                h.update([0]);
                h.update(&i.data);
            }
        }
        Some(cache_file(dir, h))
    }

    fn lookup(&self, input: &Input<'_>) -> Option<Vec<f32>> {
        let bytes = std::fs::read(self.cache_path(input)?).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        let e = serde_json::from_value::<Vec<f32>>(v["embedding"].clone()).ok()?;
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(e)
    }

    fn store(&self, input: &Input<'_>, embedding: &[f32]) {
        let Some(path) = self.cache_path(input) else { return };
        let entry = json!({ "model": self.model, "embedding": embedding });
        if let Err(e) = qval_core::io::write_atomic(&path, entry.to_string().as_bytes()) {
            tracing::warn!(error = %e, "could not write the embedding cache");
        }
    }

    /// One request (retried as configured): `n` normalised vectors in input order.
    async fn post(&self, body: &Value, n: usize) -> Result<Vec<Vec<f32>>, LlmError> {
        let once = || async {
            let _slot = self.slots.acquire().await.expect("the semaphore is never closed");
            self.requests.fetch_add(1, Ordering::Relaxed);
            let reply = post_json(&self.client, &self.url, self.key.as_ref(), body, self.timeout).await?;
            parse_embeddings(&reply, n)
        };
        match &self.retrier {
            Some(r) => r.run(once).await,
            None => once().await,
        }
    }

    /// Vectors for `inputs`: from the cache where stored, else from the server in requests of
    /// `per_request` inputs made by `body`, concurrently.
    async fn embed<'a, F>(
        &self,
        inputs: Vec<Input<'a>>,
        per_request: usize,
        body: F,
    ) -> Result<Vec<Vec<f32>>, CoreError>
    where
        F: Fn(&[Input<'a>]) -> Value,
    {
        let mut out: Vec<Option<Vec<f32>>> = inputs.iter().map(|i| self.lookup(i)).collect();
        let missing: Vec<usize> = (0..inputs.len()).filter(|i| out[*i].is_none()).collect();
        let requests = missing.chunks(per_request).map(|idx| {
            let batch: Vec<Input<'a>> = idx.iter().map(|&i| inputs[i]).collect();
            let body = body(&batch);
            async move { self.post(&body, idx.len()).await.map(|v| (idx, v)) }
        });
        let done = futures::future::try_join_all(requests).await.map_err(|e| {
            let message = format!(
                "embeddings from `{}` at {}: {}",
                self.model,
                self.url,
                snippet(&e.to_string())
            );
            // A transport failure is not final: a rerun asks again.
            if e.is_transient() {
                CoreError::Transient(message)
            } else {
                CoreError::Method(message.into())
            }
        })?;
        for (idx, vecs) in done {
            for (&i, v) in idx.iter().zip(vecs) {
                self.store(&inputs[i], &v);
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().map(|v| v.expect("every input embedded")).collect())
    }
}

impl crate::config::BackendEntry {
    /// An [`HttpEncoder`] builder for this entry's server and model, with its key variable,
    /// concurrency, attempts and timeout (sampling settings do not apply); add a cache or a
    /// batch size, then build.
    ///
    /// # Errors
    /// [`LlmError::Config`] for a value out of range ([`check`](Self::check)).
    pub fn encoder(&self) -> Result<HttpEncoderBuilder, LlmError> {
        self.check()
            .map_err(|m| LlmError::Config(format!("embeddings backend `{}`: {m}", self.model)))?;
        let mut b = HttpEncoder::builder(&self.base_url, &self.model)
            .concurrency(self.concurrency)
            .timeout(Duration::from_secs_f64(self.timeout_secs))
            .retry(Some(RetryPolicy::builder().max_attempts(self.max_attempts).build()?));
        if let Some(var) = &self.api_key_env {
            b = b.api_key_env(var);
        }
        Ok(b)
    }
}

/// An error message cut to 500 bytes (the status stays, the body is a snippet).
fn snippet(s: &str) -> String {
    match cut(s, 500) {
        Some(head) => format!("{head}..."),
        None => s.to_string(),
    }
}

/// `n` vectors from an embeddings response, in `index` order, L2-normalised.
fn parse_embeddings(body: &str, n: usize) -> Result<Vec<Vec<f32>>, LlmError> {
    let malformed = |message: String| LlmError::Malformed {
        message,
        body: truncate(body),
    };
    let v: Value = serde_json::from_str(body).map_err(|e| malformed(format!("not JSON: {e}")))?;
    let data = v["data"]
        .as_array()
        .ok_or_else(|| malformed("no `data` array".into()))?;
    if data.len() != n {
        return Err(malformed(format!("{} embeddings for {n} inputs", data.len())));
    }
    let mut rows: Vec<(u64, Vec<f32>)> = Vec::with_capacity(n);
    for (k, d) in data.iter().enumerate() {
        let index = d["index"].as_u64().unwrap_or(k as u64);
        let e = d["embedding"]
            .as_array()
            .ok_or_else(|| malformed(format!("`data[{k}].embedding` is not a list of numbers")))?;
        let mut x: Vec<f32> = e
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<_>>()
            .ok_or_else(|| malformed(format!("`data[{k}].embedding` holds a value that is not a number")))?;
        let norm = x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return Err(malformed(format!(
                "`data[{k}].embedding` has norm {norm}: it cannot be normalised"
            )));
        }
        for a in &mut x {
            *a = (*a as f64 / norm) as f32;
        }
        rows.push((index, x));
    }
    rows.sort_by_key(|(i, _)| *i);
    if rows.iter().enumerate().any(|(k, (i, _))| *i != k as u64) {
        return Err(malformed(format!("the indices are not 0 to {}", n - 1)));
    }
    Ok(rows.into_iter().map(|(_, x)| x).collect())
}

#[async_trait]
impl TextEncoder for HttpEncoder {
    fn name(&self) -> String {
        self.name.clone()
    }
    async fn encode(&self, texts: &[String]) -> qval_core::Result<Vec<Vec<f32>>> {
        let inputs = texts.iter().map(|t| Input::Text(t)).collect();
        self.embed(inputs, self.batch_size, |batch| {
            let texts: Vec<String> = batch
                .iter()
                .map(|i| match i {
                    Input::Text(t) => t.to_string(),
                    Input::Image(_) => unreachable!("a text batch"),
                })
                .collect();
            self.text_body(&texts)
        })
        .await
    }
}

#[async_trait]
impl ImageEncoder for HttpEncoder {
    fn name(&self) -> String {
        self.name.clone()
    }
    async fn encode_images(&self, images: &[Image]) -> qval_core::Result<Vec<Vec<f32>>> {
        let inputs = images.iter().map(Input::Image).collect();
        self.embed(inputs, 1, |batch| match batch {
            [Input::Image(i)] => self.image_body(i),
            _ => unreachable!("one image per request"),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_come_back_in_index_order_and_normalised() {
        let body = r#"{"data": [{"index": 1, "embedding": [0, 2]}, {"index": 0, "embedding": [3, 4]}]}"#;
        let v = parse_embeddings(body, 2).unwrap();
        assert_eq!(v[0], vec![0.6, 0.8]);
        assert_eq!(v[1], vec![0.0, 1.0]);
        for (bad, what) in [
            (r#"{"data": [{"embedding": [0, 0]}]}"#, "norm 0"),
            (r#"{"data": []}"#, "0 embeddings for 1 inputs"),
            (r#"{"data": [{"embedding": "AAAA"}]}"#, "not a list"),
            (r#"{"object": "error"}"#, "no `data`"),
            ("<html>", "not JSON"),
        ] {
            let e = parse_embeddings(bad, 1).unwrap_err().to_string();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn settings_are_checked_and_the_key_never_prints() {
        // SAFETY: a test setting a variable only it reads.
        unsafe { std::env::set_var("QVAL_TEST_EMBED_KEY", "sk-embed-secret") };
        let e = HttpEncoder::builder("http://h/v1/", "openai/clip-vit-large-patch14")
            .api_key_env("QVAL_TEST_EMBED_KEY")
            .build()
            .unwrap();
        assert!(!format!("{e:?}").contains("embed-secret"));
        assert_eq!(TextEncoder::name(&e), "clip-vit-large-patch14");
        assert_eq!(e.url, "http://h/v1/embeddings");
        let body = e.image_body(&Image::png(vec![1, 2, 3]));
        assert_eq!(
            body["messages"][0]["content"][0]["image_url"]["url"],
            "data:image/png;base64,AQID"
        );
        assert_eq!(body["encoding_format"], "float");
        assert_eq!(e.text_body(&["a".into()])["input"], json!(["a"]));
        for (b, what) in [
            (HttpEncoder::builder("localhost:8000", "m"), "http://"),
            (HttpEncoder::builder("http://h/v1", " "), "model is empty"),
            (HttpEncoder::builder("http://h/v1", "m").batch_size(0), "batch_size = 0"),
            (
                HttpEncoder::builder("http://h/v1", "m").concurrency(0),
                "concurrency = 0",
            ),
            (
                HttpEncoder::builder("http://h/v1", "m").api_key_env("QVAL_SURELY_UNSET_EMBED"),
                "QVAL_SURELY_UNSET_EMBED",
            ),
        ] {
            let e = b.build().unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
    }
}
