//! The HTTP encoder against the loopback server of qval-testkit: batching, retries, errors,
//! the on-disk cache and the image requests.

use std::time::Duration;

use qval_core::Image;
use qval_core::encoder::{CachedEncoder, ImageEncoder, TextEncoder};
use qval_llm::RetryPolicy;
use qval_llm::embeddings::{HttpEncoder, HttpEncoderBuilder};
use qval_testkit::embeddings::{image_embedding, text_embedding};
use qval_testkit::{Fault, Rule, Selector, ServerConfig, TestServer};

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
        .build()
        .unwrap()
}

fn encoder(server: &TestServer, attempts: u32) -> HttpEncoderBuilder {
    HttpEncoder::builder(server.base_url(), "qval-clip")
        .batch_size(3)
        .retry(Some(policy(attempts)))
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

fn png(size: u32, agent: usize) -> Image {
    let grid = qval_envs::frozenlake::Grid::parse(&["SFFF", "FHFH", "FFFH", "HFFG"]).unwrap();
    Image::png(qval_envs::frozenlake::render_png(&grid, agent, size))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_go_in_batches_and_a_transient_failure_is_retried() {
    let server = TestServer::start(ServerConfig {
        rules: vec![
            Rule::new(Selector::FirstRequests(1), Fault::ServerError),
            Rule::new(Selector::Contains("poison".into()), Fault::BadRequest),
        ],
        ..Default::default()
    });
    let enc = encoder(&server, 3).build().unwrap();
    let texts: Vec<String> = (0..7).map(|i| format!("text number {i} about the goal")).collect();
    let v = enc.encode(&texts).await.unwrap();
    // 7 texts in batches of 3: 3 requests, one of them retried once after the 500.
    assert_eq!((server.embedding_requests(), enc.requests(), enc.retries()), (4, 4, 1));
    // In input order (the server answers in reverse order of `index`), unit length.
    for (t, e) in texts.iter().zip(&v) {
        assert!(close(e, &text_embedding(t)), "{t}");
        let n: f32 = e.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5);
    }
    // A permanent failure is not retried and names the status and the body.
    let e = enc.encode(&["poison".to_string()]).await.unwrap_err().to_string();
    assert!(
        e.contains("HTTP 400") && e.contains("bad request") && e.contains("qval-clip"),
        "{e}"
    );
    assert_eq!(server.embedding_requests(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_run_out_with_the_reason() {
    let server = TestServer::start(ServerConfig {
        rules: vec![Rule::new(Selector::Any, Fault::RateLimited { retry_after_secs: 0.01 })],
        ..Default::default()
    });
    let enc = encoder(&server, 2).build().unwrap();
    let e = enc.encode(&["x".to_string()]).await.unwrap_err().to_string();
    assert!(e.contains("HTTP 429") && e.contains("after 2 attempts"), "{e}");
    assert_eq!(server.embedding_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_go_one_per_request_and_identical_ones_once_through_the_cache() {
    let server = TestServer::start(ServerConfig::default());
    let images = [png(64, 0), png(64, 14), png(64, 0), png(64, 0)];
    let plain = encoder(&server, 1).build().unwrap();
    let v = plain.encode_images(&images).await.unwrap();
    assert_eq!(server.embedding_requests(), 4, "one request per image");
    for (i, e) in images.iter().zip(&v) {
        assert!(close(e, &image_embedding(&i.data).unwrap()));
    }
    let cached = CachedEncoder::new(encoder(&server, 1).build().unwrap());
    let again = cached.encode_images(&images).await.unwrap();
    assert_eq!(again, v);
    cached.encode_images(&images[..1]).await.unwrap();
    assert_eq!(server.embedding_requests(), 6, "two distinct images, once each");
    // The construction: the picture nearer the goal is nearer the goal text.
    let goal = cached.encode(&["reach the goal".to_string()]).await.unwrap();
    let cos = |i: usize| qval_core::encoder::cosine(&v[i], &goal[0]);
    assert!(cos(1) > cos(0) && cos(0) > 0.0, "{} {}", cos(1), cos(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_is_served_from_the_disk_cache() {
    let server = TestServer::start(ServerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let texts: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let images = [png(64, 0), png(64, 6)];
    let first = encoder(&server, 1).cache(dir.path()).build().unwrap();
    let (t1, i1) = (
        first.encode(&texts).await.unwrap(),
        first.encode_images(&images).await.unwrap(),
    );
    let sent = server.embedding_requests();
    assert_eq!(sent, 2 + 2);
    let second = encoder(&server, 1).cache(dir.path()).build().unwrap();
    let (t2, i2) = (
        second.encode(&texts).await.unwrap(),
        second.encode_images(&images).await.unwrap(),
    );
    assert_eq!((t1, i1), (t2, i2));
    assert_eq!(server.embedding_requests(), sent, "no request on the rerun");
    assert_eq!(second.cache_hits(), 6);
    // Another model is another key.
    let other = HttpEncoder::builder(server.base_url(), "other")
        .cache(dir.path())
        .build()
        .unwrap();
    other.encode(&texts[..1]).await.unwrap();
    assert_eq!(server.embedding_requests(), sent + 1);
}
