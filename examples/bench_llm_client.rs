//! LLM client overhead and throughput against the loopback server.
//!
//! ```text
//! cargo run --release --example bench_llm_client
//! ```
//!
//! 1. Zero server latency: requests per second through the full client stack
//!    (retry, concurrency limit, metering; no cache, no log) at concurrency 64.
//! 2. 50 ms server latency at concurrency 64: achieved requests per second as a share of the
//!    ideal 64 / 0.05 s = 1,280 per second.
//! 3. The same for scoring a given continuation (`Backend::score`): each scoring is two
//!    `/tokenize` calls and one `/v1/completions` with prompt log-probs, the latter taking the
//!    50 ms; scorings per second as a share of the same ideal.
//! 4. Text embeddings through `HttpEncoder` (`/v1/embeddings`, 32 texts a request, 64 requests
//!    in flight, 50 ms latency): texts per second as a share of the ideal 64 x 32 / 0.05 s.
//! 5. Image embeddings through `HttpEncoder` (one 64 px FrozenLake picture a request, as
//!    vLLM's multimodal embedding API takes them, 64 in flight, 50 ms latency): images per
//!    second as a share of the ideal 64 / 0.05 s = 1,280.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qval::methods::llm::{
    Backend, ChatRequest, Message, OpenAiBackend, OpenAiConfig, Role, Sampling, ScoreRequest, StackBuilder,
};
use qval_testkit::{ServerConfig, TestServer};

async fn run(backend: Arc<dyn Backend>, n: usize) -> (f64, usize) {
    let t = Instant::now();
    let results = futures::future::join_all((0..n).map(|i| {
        let b = backend.clone();
        async move {
            let req = ChatRequest {
                messages: vec![Message::text(Role::User, format!("request {i}"))],
                sampling: Sampling::default(),
            };
            b.chat(&req).await
        }
    }))
    .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    (t.elapsed().as_secs_f64(), failed)
}

async fn run_scoring(backend: Arc<dyn Backend>, n: usize) -> (f64, usize) {
    let t = Instant::now();
    let results = futures::future::join_all((0..n).map(|i| {
        let b = backend.clone();
        async move {
            let req = ScoreRequest {
                messages: vec![Message::text(Role::User, format!("state {i}: which move?"))],
                continuation: "right".into(),
            };
            b.score(&req).await
        }
    }))
    .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    (t.elapsed().as_secs_f64(), failed)
}

fn stack(server: &TestServer, concurrency: usize) -> Arc<dyn Backend> {
    let mut cfg = OpenAiConfig::new(server.base_url(), "bench");
    cfg.capabilities.scoring = true;
    StackBuilder::new(OpenAiBackend::new(cfg).expect("a client"))
        .concurrency(concurrency)
        .build()
        .expect("a stack")
}

fn main() {
    qval::cli::exit_on_error(measure());
}

fn measure() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let fixed = Some("<answer>0.5</answer>".to_string());
    let fast = TestServer::start(ServerConfig {
        fixed_reply: fixed.clone(),
        ..Default::default()
    });
    let slow = TestServer::start(ServerConfig {
        fixed_reply: fixed,
        latency: Duration::from_millis(50),
        scoring: true,
        ..Default::default()
    });
    rt.block_on(async {
        let b = stack(&fast, 64);
        run(b.clone(), 500).await; // warm up connections
        let n = 20_000;
        let (secs, failed) = run(b, n).await;
        println!("zero latency, concurrency 64: {n} requests in {secs:.2}s = {:.0} req/s ({failed} failed)", n as f64 / secs);
        println!("  (client and server share the machine's 2 cores)");
        let b = stack(&slow, 64);
        run(b.clone(), 128).await;
        let n = 6_400;
        let (secs, failed) = run(b, n).await;
        let rps = n as f64 / secs;
        println!(
            "50 ms latency, concurrency 64: {n} requests in {secs:.2}s = {rps:.0} req/s, {:.1}% of the ideal 1,280 ({failed} failed)",
            100.0 * rps / 1280.0
        );
        let b = stack(&slow, 64);
        run_scoring(b.clone(), 128).await;
        let n = 6_400;
        let (secs, failed) = run_scoring(b, n).await;
        let sps = n as f64 / secs;
        println!(
            "scoring, 50 ms latency, concurrency 64: {n} scorings in {secs:.2}s = {sps:.0}/s, {:.1}% of the ideal 1,280 ({failed} failed)",
            100.0 * sps / 1280.0
        );
        use qval::core::encoder::TextEncoder as _;
        let encoder = qval::llm::embeddings::HttpEncoder::builder(slow.base_url(), "bench-clip")
            .batch_size(32)
            .concurrency(64)
            .build()
            .expect("an encoder");
        let texts: Vec<String> = (0..40_960).map(|i| format!("text number {i}")).collect();
        let t = Instant::now();
        let v = encoder.encode(&texts).await.expect("embeddings");
        let secs = t.elapsed().as_secs_f64();
        let tps = v.len() as f64 / secs;
        let ideal = 64.0 * 32.0 / 0.05;
        println!(
            "text embeddings, 50 ms latency, 32 a request, 64 in flight: {} texts in {secs:.2}s = {tps:.0}/s, {:.1}% of the ideal {ideal:.0}",
            v.len(),
            100.0 * tps / ideal
        );
        // Distinct pictures (identical ones would be encoded once): the start of 2,560 maps.
        use qval::core::Environment as _;
        use qval::core::encoder::ImageEncoder as _;
        use qval::envs::frozenlake::{FrozenLake, ObservationMode};
        let env = FrozenLake::builder()
            .random_maps(2_560, 8, 7)
            .observation(ObservationMode::TextAndImage)
            .image_size(64)
            .build()
            .expect("FrozenLake");
        let mut rng = qval::core::seed::rng_for(0, &[]);
        let images: Vec<qval::core::Image> = env
            .tasks()
            .iter()
            .map(|t| env.observe(&env.reset(t, &mut rng).expect("a start")).images[0].clone())
            .collect();
        let encoder = qval::llm::embeddings::HttpEncoder::builder(slow.base_url(), "bench-clip")
            .concurrency(64)
            .build()
            .expect("an encoder");
        let t = Instant::now();
        let v = encoder.encode_images(&images).await.expect("image embeddings");
        let secs = t.elapsed().as_secs_f64();
        let ips = v.len() as f64 / secs;
        println!(
            "image embeddings, 50 ms latency, 1 a request, 64 in flight: {} images in {secs:.2}s = {ips:.0}/s, {:.1}% of the ideal 1,280",
            v.len(),
            100.0 * ips / 1280.0
        );
    });
    Ok(())
}
