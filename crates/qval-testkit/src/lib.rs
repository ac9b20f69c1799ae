//! # qval-testkit
//!
//! A loopback OpenAI-compatible chat server for tests and benchmarks, started in-process on
//! 127.0.0.1 with an ephemeral port. It can
//!
//! - answer as an **oracle** for FrozenLake prompts: it reads the grid, the turn and the
//!   action from the prompt and returns the true discounted value (finite-horizon Q* or V*
//!   over the remaining step budget), optionally with seeded Gaussian noise; it answers
//!   batched lists, rankings of candidates and letter log-probabilities consistently;
//! - **inject faults**: 429 with `Retry-After`, 500, a reply slower than a timeout, malformed
//!   JSON, no choices, prose without a number, code that never returns, for requests whose
//!   prompt contains a marker or for the first N requests;
//! - serve **embeddings** (`/v1/embeddings`, texts as `input`, images as vLLM's chat-style
//!   `messages`): deterministic vectors built so that a FrozenLake picture nearer the goal is
//!   nearer a goal text ([`embeddings`] documents the construction);
//! - count requests and add a fixed latency (for throughput benchmarks).
//!
//! ```no_run
//! # async fn demo() {
//! use qval_testkit::{Fault, Rule, Selector, ServerConfig, TestServer};
//! let server = TestServer::start(ServerConfig {
//!     rules: vec![Rule::new(Selector::FirstRequests(2), Fault::RateLimited { retry_after_secs: 0.1 })],
//!     ..Default::default()
//! });
//! println!("{}", server.base_url()); // http://127.0.0.1:PORT/v1
//! # }
//! ```

pub mod embeddings;
mod oracle;
mod shared;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use oracle::{Oracle, oracle_answer};
pub use shared::{Fault, Rule, Selector, ServerConfig};
use shared::{Shared, Vocab, apply_fault, reply};

/// A running loopback server; stops when dropped.
pub struct TestServer {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 (an ephemeral port) on its own thread and runtime, so it
    /// serves whatever runtime the test uses.
    pub fn start(config: ServerConfig) -> TestServer {
        Self::try_start(config).expect("bind loopback")
    }

    /// As [`TestServer::start`], on `config.port` (0: a free port), with the error when that
    /// port cannot be bound.
    ///
    /// # Errors
    /// The port is taken or not ours to bind.
    pub fn try_start(config: ServerConfig) -> std::io::Result<TestServer> {
        let port = config.port;
        let remaining = config.rules.iter().map(|r| r.times).collect();
        let shared = Arc::new(Shared {
            config,
            remaining: Mutex::new(remaining),
            requests: AtomicUsize::new(0),
            prompts: Mutex::new(Vec::new()),
            vocab: Mutex::new(Vocab::default()),
            embedding_requests: AtomicUsize::new(0),
            embedded_images: Mutex::new(Vec::new()),
        });
        let (tx_addr, rx_addr) = std::sync::mpsc::channel();
        let (tx_stop, rx_stop) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let app = Router::new()
                    .route("/v1/chat/completions", post(chat))
                    .route("/v1/completions", post(completions))
                    .route("/tokenize", post(tokenize))
                    .route("/v1/embeddings", post(embeddings::embeddings))
                    .route(
                        "/v1/models",
                        get(|| async { Json(json!({"data": [{"id": "qval-oracle"}]})) }),
                    )
                    .with_state(state);
                let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx_addr.send(Err(e));
                        return;
                    }
                };
                tx_addr.send(listener.local_addr()).expect("report the address");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = rx_stop.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let addr = rx_addr.recv().expect("the server started")?;
        Ok(TestServer {
            addr,
            shared,
            shutdown: Some(tx_stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests to `/v1/embeddings` received so far (counted in [`requests`](Self::requests)
    /// too).
    pub fn embedding_requests(&self) -> usize {
        self.shared.embedding_requests.load(Ordering::SeqCst)
    }

    /// A hash of every image embedded, in arrival order: an image embedded twice appears
    /// twice.
    pub fn embedded_images(&self) -> Vec<u64> {
        self.shared.embedded_images.lock().expect("lock").clone()
    }

    /// The last user message of every request received, in arrival order.
    pub fn prompts(&self) -> Vec<String> {
        self.shared.prompts.lock().expect("lock").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The action of a scripted reply: the text inside `<action>` tags, else the whole reply.
fn scripted_action(reply: &str) -> String {
    match (reply.find("<action>"), reply.find("</action>")) {
        (Some(a), Some(b)) if b > a => reply[a + "<action>".len()..b].trim().to_string(),
        _ => reply.trim().to_string(),
    }
}

/// The text of a message's content (a string or an array of parts).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

async fn chat(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let n = shared.requests.fetch_add(1, Ordering::SeqCst);
    let messages = messages_of(&body);
    let all_text: String = messages.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("\n");
    if let Some((_, last)) = messages.iter().rev().find(|(r, _)| r == "user") {
        shared.prompts.lock().expect("lock").push(last.clone());
    }
    let model = body["model"].as_str().unwrap_or("qval-oracle").to_string();
    if let Some(r) = apply_fault(&shared, n, &all_text, &model).await {
        return r;
    }
    if let Some(text) = &shared.config.fixed_reply {
        return Json(reply(&model, text, None)).into_response();
    }
    // A candidate request (the published "avoid seen" block): the first scripted action not
    // listed as forbidden, or an empty reply when every one is.
    if !shared.config.agent_script.is_empty() && all_text.contains("they are forbidden at this moment:") {
        let forbidden = all_text
            .split("they are forbidden at this moment:")
            .last()
            .unwrap_or("");
        let pick = shared.config.agent_script.iter().find(|r| {
            let a = scripted_action(r);
            !forbidden.contains(&format!("\n- {a}\n"))
        });
        let text = pick.cloned().unwrap_or_default();
        return Json(reply(&model, &text, None)).into_response();
    }
    if !shared.config.agent_script.is_empty() && all_text.contains("inside <action>") {
        let k = all_text.lines().filter(|l| l.starts_with("Turn ")).count();
        let script = &shared.config.agent_script;
        return Json(reply(&model, &script[k.min(script.len() - 1)], None)).into_response();
    }
    if all_text.contains("## Candidate Summaries") {
        return Json(reply(&model, &judge(&all_text), None)).into_response();
    }
    if !shared.config.code_samples.is_empty() && all_text.contains("signal_function") {
        let k = body["seed"].as_u64().unwrap_or(n as u64) as usize % shared.config.code_samples.len();
        let mut code = shared.config.code_samples[k].clone();
        if all_text.contains("signal_function(state: str, action: str)") && !all_text.contains("next_state: str") {
            // Next states hidden: the sample sees the state in their place.
            code = code.replace("def signal_function(", "def _q_signal_function(")
                + "\n\ndef signal_function(state, action):\n    return _q_signal_function(state, action, state)\n";
        }
        if all_text.contains("signal_function(state: str)") {
            code = code.replace("def signal_function(", "def _q_signal_function(")
                + "\n\ndef signal_function(state):\n    return _q_signal_function(state, \"\", state)\n";
        }
        let text = format!("Here is my function:\n```python\n{code}\n```");
        return Json(reply(&model, &text, None)).into_response();
    }
    let wants_logprobs = body["logprobs"].as_bool().unwrap_or(false);
    // A second elicitation asks for the answer to the question before the cut reply.
    let mut messages = messages;
    if messages.len() >= 2
        && messages[messages.len() - 1]
            .1
            .contains("Please provide the final answer now")
    {
        messages.truncate(messages.len() - 2);
    }
    let oracle = shared.config.oracle.for_model(&model);
    let (text, logprobs) = oracle_answer(&oracle, &messages, wants_logprobs);
    Json(reply(&model, &text, logprobs)).into_response()
}

/// The first fault rule matching request `n` with text `all_text`, applied: an error response
/// (or a delay, after which `None` lets the request be answered). Also adds the latency.
/// The test server's chat template: `<|role|>\ntext\n<|end|>\n` per message; a reply starts
/// with `<|assistant|>\n`, and a continued final assistant message is left open.
fn render_template(messages: &[(String, String)], continue_final: bool) -> String {
    let mut out = String::new();
    let last = messages.len().saturating_sub(1);
    for (i, (role, text)) in messages.iter().enumerate() {
        if continue_final && i == last {
            out.push_str(&format!("<|{role}|>\n{text}"));
        } else {
            out.push_str(&format!("<|{role}|>\n{text}\n<|end|>\n"));
        }
    }
    if !continue_final {
        out.push_str(REPLY_MARK);
    }
    out
}

const REPLY_MARK: &str = "<|assistant|>\n";

/// The test server's tokenizer: runs of letters and digits, and every other character alone.
fn split_tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn messages_of(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m["role"].as_str().unwrap_or("").to_string(),
                        content_text(&m["content"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// vLLM's `/tokenize` with a chat template (served only with [`ServerConfig::scoring`]).
async fn tokenize(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    if !shared.config.scoring {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let continue_final = body["continue_final_message"].as_bool().unwrap_or(false);
    if continue_final && body["add_generation_prompt"].as_bool().unwrap_or(true) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "Cannot set both `continue_final_message` and `add_generation_prompt` to True."}})),
        )
            .into_response();
    }
    let text = render_template(&messages_of(&body), continue_final);
    let mut vocab = shared.vocab.lock().expect("lock");
    let tokens: Vec<u64> = split_tokens(&text).into_iter().map(|t| vocab.id(t)).collect();
    Json(json!({"count": tokens.len(), "max_model_len": 1 << 20, "tokens": tokens})).into_response()
}

/// `/v1/completions` over token ids with `prompt_logprobs` (served only with
/// [`ServerConfig::scoring`]): the continuation of the last reply is scored by the oracle
/// ([`oracle::oracle_logprob`]), every other prompt token gets -1.
async fn completions(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    if !shared.config.scoring {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let n = shared.requests.fetch_add(1, Ordering::SeqCst);
    let model = body["model"].as_str().unwrap_or("qval-oracle").to_string();
    let Some(ids) = body["prompt"]
        .as_array()
        .and_then(|a| a.iter().map(|t| t.as_u64()).collect::<Option<Vec<u64>>>())
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "this test server takes prompts as token ids"}})),
        )
            .into_response();
    };
    let tokens: Vec<String> = {
        let vocab = shared.vocab.lock().expect("lock");
        match ids.iter().map(|i| vocab.token(*i)).collect::<Option<Vec<String>>>() {
            Some(t) => t,
            None => return (StatusCode::BAD_REQUEST, "unknown token id").into_response(),
        }
    };
    let text: String = tokens.concat();
    if let Some(r) = apply_fault(&shared, n, &text, &model).await {
        return r;
    }
    let cut = text
        .rfind(REPLY_MARK)
        .map(|i| i + REPLY_MARK.len())
        .unwrap_or(text.len());
    let (prompt, continuation) = text.split_at(cut);
    shared.prompts.lock().expect("lock").push(prompt.to_string());
    let n_prompt = split_tokens(prompt).len();
    let per_token = oracle::oracle_logprob(&shared.config.oracle, prompt, continuation);
    let entries: Vec<Value> = ids
        .iter()
        .zip(&tokens)
        .enumerate()
        .map(|(pos, (id, tok))| {
            if pos == 0 {
                return Value::Null;
            }
            let lp = if pos >= n_prompt { per_token } else { -1.0 };
            json!({ id.to_string(): {"logprob": lp, "rank": 1, "decoded_token": tok} })
        })
        .collect();
    Json(json!({
        "id": "cmpl-qval",
        "object": "text_completion",
        "model": model,
        "choices": [{"index": 0, "text": "", "finish_reason": "length", "prompt_logprobs": entries}],
        "usage": {"prompt_tokens": ids.len(), "completion_tokens": 1},
    }))
    .into_response()
}

/// The judge of Eureka rounds, reading the published summary layout (`### Candidate k`,
/// `- Finite predictions: n`, ..., `- Std: x`, `- Collapsed: yes|no`): the candidate that
/// spreads (not collapsed, more than one number), then with the most numbers, then with the
/// largest std; ties to the lower label.
fn judge(text: &str) -> String {
    let re = regex::Regex::new(
        r"### Candidate (\d+)\n- Finite predictions: (\d+)\n- NaN predictions: \d+\n- Min: \S+\n- Max: \S+\n- Mean: \S+\n- Std: (\S+)\n- Collapsed: (yes|no)",
    )
    .expect("a valid regex");
    let best = re
        .captures_iter(text)
        .filter_map(|c| {
            let k: usize = c[1].parse().ok()?;
            let finite: usize = c[2].parse().ok()?;
            let std: f64 = c[3].parse().unwrap_or(0.0);
            Some((
                k,
                &c[4] == "no" && finite > 1,
                finite,
                if std.is_finite() { std } else { 0.0 },
            ))
        })
        .max_by(|a, b| {
            a.1.cmp(&b.1)
                .then(a.2.cmp(&b.2))
                .then(a.3.total_cmp(&b.3))
                .then(b.0.cmp(&a.0))
        });
    match best {
        Some((k, ..)) => format!(
            "<winner>{k}</winner>\n<rationale>Candidate {k} spreads its values over the most points.</rationale>\n\
             <feedback>Keep candidate {k}'s approach and handle every state.</feedback>"
        ),
        None => "I cannot judge these.".into(),
    }
}

/// The quickstart's data, for tests that need realistic points and exact labels:
/// 8 random 8x8 FrozenLake maps (seed 42), 50 trajectories of the epsilon-greedy collector
/// (0.1), 5 points each, exact MVMC Q labels (k = 1).
pub struct QuickstartData {
    /// The environment.
    pub env: std::sync::Arc<qval_envs::frozenlake::FrozenLake>,
    /// The trajectories.
    pub trajectories: Vec<qval_core::Trajectory>,
    /// The evaluation points.
    pub points: Vec<qval_core::EvaluationPoint>,
    /// Their labels, in point order.
    pub labels: Vec<qval_core::Label>,
    /// The method context of the environment, with its profile.
    pub ctx: qval_core::MethodContext,
}

/// Builds [`QuickstartData`] (deterministic).
pub async fn quickstart_data() -> QuickstartData {
    let env = qval_envs::frozenlake::FrozenLake::builder()
        .random_maps(8, 8, 42)
        .build()
        .expect("valid maps");
    quickstart_data_of(env).await
}

/// [`quickstart_data`] with observations that carry a `size` x `size` PNG rendering of each
/// state, as FrozenLake's `observation = "image"` gives them (deterministic).
pub async fn quickstart_image_data(size: u32) -> QuickstartData {
    use qval_envs::frozenlake::{FrozenLake, ObservationMode};
    let env = FrozenLake::builder()
        .random_maps(8, 8, 42)
        .observation(ObservationMode::TextAndImage)
        .image_size(size)
        .build()
        .expect("valid maps");
    quickstart_data_of(env).await
}

async fn quickstart_data_of(env: qval_envs::frozenlake::FrozenLake) -> QuickstartData {
    use qval_core::{
        CollectConfig, Environment, MethodContext, MvmcConfig, MvmcLabeler, SampleConfig, StageOptions, collect, label,
        sample_points,
    };
    use qval_envs::frozenlake::{EpsilonGreedy, OptimalPolicy};
    let env = Arc::new(env);
    let collector = EpsilonGreedy::new(&env, 0.1).expect("a valid epsilon");
    let cfg = CollectConfig::new(50, 42, 8).expect("a valid collection");
    let trajectories = collect(&*env, &collector, &env.tasks(), &cfg, &StageOptions::default())
        .await
        .expect("collection");
    let points = sample_points(
        &trajectories,
        &SampleConfig::builder().seed(42).build().expect("valid sampling"),
    );
    let labeler = MvmcLabeler::new(
        env.clone(),
        Arc::new(OptimalPolicy::for_env(&env)),
        MvmcConfig::builder().rollouts(1).build().expect("valid MVMC settings"),
    );
    let labels = label(
        &labeler,
        &points,
        &qval_core::LabelConfig::default(),
        &StageOptions::default(),
    )
    .await
    .expect("labels");
    let ctx = MethodContext::for_env(&*env);
    QuickstartData {
        env,
        trajectories,
        points,
        labels,
        ctx,
    }
}

/// Spearman's rho of predictions against labels, paired by point id (NaN when undefined).
pub fn rho(labels: &[qval_core::Label], predictions: &[qval_core::Prediction]) -> f64 {
    let by_id: std::collections::HashMap<&str, f64> =
        predictions.iter().map(|p| (p.point_id.as_str(), p.value)).collect();
    let (x, y): (Vec<f64>, Vec<f64>) = labels
        .iter()
        .filter_map(|l| by_id.get(l.point_id.as_str()).map(|p| (*p, l.value)))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .unzip();
    spearman_plain(&x, &y)
}

/// Spearman's rho with average ranks (a plain implementation, independent of qval-metrics,
/// so tests of methods do not depend on the metrics they are checked with).
fn spearman_plain(x: &[f64], y: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i + 1;
            while j < idx.len() && v[idx[j]] == v[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..j] {
                r[k] = (i + j + 1) as f64 / 2.0;
            }
            i = j;
        }
        r
    }
    if x.len() < 3 {
        return f64::NAN;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}
