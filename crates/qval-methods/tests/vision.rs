//! The embedding family on FrozenLake pictures, end to end: quickstart data with image
//! observations, an HTTP encoder against the loopback server's deterministic embeddings
//! (`qval_testkit::embeddings`: a picture nearer the goal is nearer the goal text).

use std::collections::HashSet;
use std::sync::Arc;

use qval_core::{DenseSignalMethod, LabelConfig, Signal, StageOptions, label, predict};
use qval_envs::frozenlake::ExactLabeler;
use qval_methods::embedding::{CachedEncoder, EmbeddingMethod};
use qval_methods::llm::HttpEncoder;
use qval_testkit::{ServerConfig, TestServer, quickstart_image_data, rho};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vision_family_on_pictures_correlates_with_the_values_as_the_server_is_built() {
    let d = quickstart_image_data(128).await;
    assert!(d.points.iter().all(|p| p.next_observation.images.len() == 1));
    let server = TestServer::start(ServerConfig::default());
    let encoder = Arc::new(CachedEncoder::new(
        HttpEncoder::builder(server.base_url(), "qval-clip")
            .name("clip")
            .build()
            .unwrap(),
    ));
    let opts = StageOptions::default();
    let v_labeler = ExactLabeler::new(d.env.clone(), Signal::V, None);
    let v_labels = label(&v_labeler, &d.points, &LabelConfig::default(), &opts)
        .await
        .unwrap();
    // Margins under what the construction gives on these 250 points (0.98 for the continuous
    // scores, 0.8 for the threshold's 0/1): the values fall with the distance to the goal.
    let methods: Vec<(Box<dyn DenseSignalMethod>, f64)> = [Signal::Q, Signal::V]
        .into_iter()
        .flat_map(|s| {
            let t = d
                .ctx
                .profile
                .image_goal_texts()
                .cloned()
                .expect("FrozenLake's picture texts");
            let e = encoder.clone();
            vec![
                (
                    Box::new(EmbeddingMethod::goal_cosine(e.clone(), t.clone(), s).on_images())
                        as Box<dyn DenseSignalMethod>,
                    0.9,
                ),
                (
                    Box::new(EmbeddingMethod::vlm_rm(e.clone(), t.clone(), s, 0.5).on_images()),
                    0.9,
                ),
                (
                    Box::new(EmbeddingMethod::sor(e.clone(), t.clone(), s, 0.07).on_images()),
                    0.9,
                ),
                (
                    Box::new(EmbeddingMethod::threshold(e.clone(), t, s, 0.07, 0.5).on_images()),
                    0.6,
                ),
            ]
        })
        .collect();
    for (m, margin) in &methods {
        let preds = predict(&**m, &d.points, &d.ctx, &opts).await.unwrap();
        assert!(
            preds.iter().all(|p| p.value.is_finite()),
            "{}: {:?}",
            m.name(),
            preds.iter().find(|p| !p.value.is_finite())
        );
        let labels = if m.signal() == Signal::V { &v_labels } else { &d.labels };
        let r = rho(labels, &preds);
        println!("{} rho {r:.3}", m.name());
        assert!(r.is_finite() && r > *margin, "{}: rho {r}", m.name());
    }
    assert_eq!(methods[1].0.name(), "vlm-rm-clip-q-image");
    // Identical pictures were embedded once: one request per distinct picture scored (s' for
    // Q, s for V), whatever the number of points and methods.
    let sent = server.embedded_images();
    let distinct: HashSet<&[u8]> = d
        .points
        .iter()
        .flat_map(|p| [&p.next_observation.images[0].data, &p.observation.images[0].data])
        .map(|v| v.as_slice())
        .collect();
    assert_eq!(sent.len(), distinct.len(), "one request per distinct picture");
    assert_eq!(
        sent.iter().collect::<HashSet<_>>().len(),
        sent.len(),
        "no picture twice"
    );
    assert!(distinct.len() < 2 * d.points.len(), "the data repeats pictures");
}
