//! The verifier's passes and criteria as published: `passes x criteria` distinct requests,
//! each showing its criterion, averaged over the passes that decode; several points per
//! prompt (`prompt_batch_size`) grouped as published (`prompt_grouping`), each through its own
//! `<score_i>` tag.

mod common;

use std::sync::{Arc, Mutex};

use common::user_text;
use qval_core::{DenseSignalMethod, Signal};
use qval_methods::llm::{Backend, Capabilities, ChatRequest, ChatResponse, LlmError, StackBuilder, TokenLogprob};
use qval_methods::prompting::{Verifier, VerifierCriterion};
use qval_testkit::quickstart_data;

/// Answers by the request's seed: 0 -> A, 1 -> T, 2 -> K, anything else (and no seed) ->
/// prose without a score; records every request it is sent.
#[derive(Default)]
struct Letters {
    seen: Mutex<Vec<ChatRequest>>,
}

#[async_trait::async_trait]
impl Backend for Letters {
    fn name(&self) -> String {
        "letters".into()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            logprobs: true,
            ..Default::default()
        }
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.seen.lock().unwrap().push(request.clone());
        let tok = |t: &str| TokenLogprob {
            token: t.into(),
            logprob: 0.0,
            top: vec![(t.into(), 0.0)],
        };
        let letter = match request.sampling.seed {
            Some(0) => Some("A"),
            Some(1) => Some("T"),
            Some(2) => Some("K"),
            _ => None,
        };
        let (text, logprobs) = match letter {
            Some(l) => (
                format!("<score_1>{l}</score_1>"),
                vec![tok("<score_1>"), tok(l), tok("</score_1>")],
            ),
            None => ("I cannot grade this.".to_string(), vec![tok("I cannot grade this.")]),
        };
        Ok(ChatResponse {
            text,
            usage: Default::default(),
            logprobs: Some(logprobs),
            model: "letters".into(),
            finish_reason: None,
            cached: false,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_criteria_by_two_passes_make_four_requests_averaged_over_those_that_decode() {
    let d = quickstart_data().await;
    let point = &d.points[0];
    let inner = Arc::new(Letters::default());
    let dir = tempfile::tempdir().unwrap();
    // Behind a cache: passes that were the same request would be answered once.
    let backend: Arc<dyn Backend> = StackBuilder::new(inner.clone())
        .cache(dir.path().join("cache"))
        .build()
        .unwrap();
    let ids = ["frozen_lake_correctness", "frozen_lake_hazard_avoidance"];
    let m = Verifier::new(backend, Signal::Q, Default::default())
        .with_passes(2)
        .with_criteria(&ids)
        .unwrap();
    assert_eq!(m.total_passes(), 4);
    let v = m.evaluate(point, &d.ctx).await.unwrap();
    // Seeds 0, 1, 2 decode to A (1), T (0), K (9/19); seed 3 does not decode and is left out.
    let want = (1.0 + 0.0 + 9.0 / 19.0) / 3.0;
    assert!((v - want).abs() < 1e-12, "{v} != {want}");
    let seen = inner.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "one request per pass");
    let mut keys: Vec<String> = seen.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "four distinct requests");
    let correctness = VerifierCriterion::by_id(ids[0]).unwrap().block(Signal::Q).unwrap();
    let hazard = VerifierCriterion::by_id(ids[1]).unwrap().block(Signal::Q).unwrap();
    assert!(correctness.starts_with("### Evaluation Criterion: Correctness\nJudge how much the chosen action"));
    for r in &seen {
        let text = user_text(&r.messages);
        let seed = r.sampling.seed.unwrap();
        let (shown, not) = if seed % 2 == 0 {
            (&correctness, &hazard)
        } else {
            (&hazard, &correctness)
        };
        assert!(
            text.contains(&format!("score bins.\n\n{shown}\n\n## Datapoint 1\n")),
            "pass {seed}: {text}"
        );
        assert!(!text.contains(not.as_str()), "pass {seed} shows one criterion");
        assert_eq!(r.sampling.top_logprobs, Some(20));
    }
    // A rerun is served by the cache: the same four requests.
    let again = m.evaluate(point, &d.ctx).await.unwrap();
    assert_eq!(again, v);
    assert_eq!(inner.seen.lock().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_is_one_pass_without_a_criterion_and_all_failures_give_the_reason() {
    let d = quickstart_data().await;
    let inner = Arc::new(Letters::default());
    let m = Verifier::new(inner.clone(), Signal::Q, Default::default());
    assert_eq!(m.total_passes(), 1);
    // No seed (as before): the answer does not decode, so the point has no value.
    let err = m.evaluate(&d.points[0], &d.ctx).await.unwrap_err().to_string();
    assert!(err.contains("no <score_1> tag"), "{err}");
    let seen = inner.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].sampling.seed, None, "a single pass is sent as it always was");
    assert!(!user_text(&seen[0].messages).contains("Evaluation Criterion"));
    assert_eq!(seen[0].messages, m.messages(&d.points[0], &d.ctx));

    // Three passes whose seeds (0, 1, 2) all decode: the plain mean.
    let inner = Arc::new(Letters::default());
    let m = Verifier::new(inner.clone(), Signal::Q, Default::default()).with_passes(3);
    let v = m.evaluate(&d.points[0], &d.ctx).await.unwrap();
    assert!((v - (1.0 + 9.0 / 19.0) / 3.0).abs() < 1e-12, "{v}");

    // Unknown ids and signals the criteria do not describe are refused.
    let m = Verifier::new(inner.clone(), Signal::Q, Default::default());
    assert!(m.with_criteria(&["frozen_lake_corectness"]).is_err());
    let m = Verifier::new(inner, Signal::Advantage, Default::default());
    assert!(m.with_criteria(&["frozen_lake_correctness"]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_criteria_the_oracle_verifier_still_ranks_as_the_labels_do() {
    use qval_core::{StageOptions, predict};
    use qval_methods::llm::{OpenAiBackend, OpenAiConfig};
    use qval_testkit::{ServerConfig, TestServer, rho};
    let d = quickstart_data().await;
    let server = TestServer::start(ServerConfig::default());
    let mut cfg = OpenAiConfig::new(server.base_url(), "qval-oracle");
    cfg.capabilities.logprobs = true;
    let backend: Arc<dyn Backend> = Arc::new(OpenAiBackend::new(cfg).unwrap());
    let m = Verifier::new(backend, Signal::Q, Default::default())
        .with_criteria(&["frozen_lake_correctness", "frozen_lake_path_optimality"])
        .unwrap();
    let points = &d.points[..40];
    let preds = predict(&m, points, &d.ctx, &StageOptions::default()).await.unwrap();
    assert_eq!(server.requests(), 80, "two passes per point");
    let prompts = server.prompts();
    assert_eq!(
        prompts
            .iter()
            .filter(|p| p.contains("### Evaluation Criterion: Path Optimality\n"))
            .count(),
        40
    );
    assert!(preds.iter().all(|p| p.value.is_finite()));
    let r = rho(&d.labels[..40], &preds);
    assert!(r >= 0.8, "rho {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_batched_in_prompts_get_the_scores_they_get_alone_under_every_grouping() {
    use qval_core::{StageOptions, predict};
    use qval_methods::llm::{OpenAiBackend, OpenAiConfig};
    use qval_methods::prompting::Grouping;
    use qval_testkit::{ServerConfig, TestServer};
    let d = quickstart_data().await;
    let server = TestServer::start(ServerConfig::default());
    let mut cfg = OpenAiConfig::new(server.base_url(), "qval-oracle");
    cfg.capabilities.logprobs = true;
    let backend: Arc<dyn Backend> = Arc::new(OpenAiBackend::new(cfg).unwrap());
    let points = &d.points[..30];
    let alone = predict(
        &Verifier::new(backend.clone(), Signal::Q, Default::default()),
        points,
        &d.ctx,
        &StageOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(server.requests(), 30);
    assert!(alone.iter().all(|p| p.value.is_finite()));
    for grouping in [Grouping::Random, Grouping::Contiguous, Grouping::Trajectory] {
        let before = server.requests();
        let m = Verifier::new(backend.clone(), Signal::Q, Default::default()).with_batch(4, grouping);
        let batched = predict(&m, points, &d.ctx, &StageOptions::default()).await.unwrap();
        // The oracle grades each datapoint as it grades it alone: the same score per point,
        // whichever prompt and position it lands in.
        for (a, b) in alone.iter().zip(&batched) {
            assert_eq!((&a.point_id, a.value), (&b.point_id, b.value), "{grouping:?}");
        }
        let plan = grouping.plan(points, 4);
        assert_eq!(
            server.requests() - before,
            plan.len(),
            "{grouping:?}: one request per prompt"
        );
        let mut all: Vec<usize> = plan.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..30).collect::<Vec<_>>(), "{grouping:?}: every point once");
        assert!(plan.iter().all(|g| g.len() <= 4));
        match grouping {
            Grouping::Contiguous => assert_eq!(plan[0], vec![0, 1, 2, 3]),
            Grouping::Trajectory => {
                for g in &plan {
                    let t = points[g[0]].trajectory_index;
                    assert!(g.iter().all(|&i| points[i].trajectory_index == t), "{g:?}");
                    assert!(g.windows(2).all(|w| points[w[0]].step_index < points[w[1]].step_index));
                }
            }
            Grouping::Random => assert_ne!(plan[0], vec![0, 1, 2, 3], "shuffled"),
        }
    }
    // The prompt of a batch, as published: a datapoint header per point, a tag per point.
    let m = Verifier::new(backend, Signal::Q, Default::default()).with_batch(3, Grouping::Contiguous);
    let msgs = m.pass_messages(&[&points[0], &points[1], &points[2]], &d.ctx, 0);
    let system = match &msgs[0].parts[..] {
        [qval_methods::llm::Part::Text { text }] => text.clone(),
        other => panic!("one system text: {other:?}"),
    };
    let user = user_text(&msgs);
    assert!(system.ends_with(
        "You may receive multiple datapoints in one request. Return one score tag per datapoint in the same order \
         they appear."
    ));
    assert!(user.contains("\n\n## Datapoint 3\n\n") && !user.contains("## Datapoint 4"));
    assert!(user.ends_with(
        "Now provide your final scores using one uppercase letter from A through T per datapoint.\nOutput exactly \
         one tag per datapoint in prompt order:\n<score_1>LETTER</score_1>\n<score_2>LETTER</score_2>\n\
         <score_3>LETTER</score_3>"
    ));
}
