//! The scoring family (sdpo, sdpo-gt, Δbelief) end to end: the real HTTP backend asks the
//! loopback server's `/tokenize` and `/v1/completions` (prompt log-probs), whose oracle gives
//! better moves higher log-probabilities.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::http_backend;
use qval_core::{EvaluationPoint, Label, StageOptions, predict};
use qval_methods::MethodsError;
use qval_methods::llm::{Capabilities, ScoreRequest};
use qval_methods::prompting::{ContinuationScoring, ReportsUsage, ScoringKind};
use qval_metrics::{RankingTies, candidate_groups, per_state_ranking};
use qval_testkit::{Fault, Rule, Selector, ServerConfig, TestServer, quickstart_data};

/// A backend declaring continuation scoring (`scoring = true`), or nothing.
fn scoring(declared: bool) -> Capabilities {
    Capabilities {
        scoring: declared,
        ..Default::default()
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// The first `n` states' candidates and their exact Q labels (with the expert rollouts).
async fn candidates(n: usize) -> (Vec<EvaluationPoint>, Vec<Label>, qval_testkit::QuickstartData) {
    let d = quickstart_data().await;
    let (candidates, labels) = common::labelled_candidates(&d, n).await;
    (candidates, labels, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdpo_sdpo_gt_and_delta_belief_rank_states_as_the_labels_do() {
    let (candidates, labels, d) = candidates(60).await;
    // The label stage keeps what sdpo-gt's teacher sees.
    let expert: HashMap<_, _> = labels
        .iter()
        .filter_map(|l| Some((l.point_id.clone(), l.expert.clone()?)))
        .collect();
    assert_eq!(expert.len(), labels.len(), "every Q label keeps its best rollout");
    let reached = expert.values().filter(|e| e.success_step.is_some()).count();
    assert!(reached > 0 && reached < expert.len(), "{reached} of {}", expert.len());
    for l in &labels {
        let e = &l.expert.as_ref().unwrap();
        // Exact labels (k = 1, deterministic): a success at step n is worth gamma^n.
        match e.success_step {
            Some(n) => assert!((l.value - d.ctx.gamma.powi(n as i32)).abs() < 1e-12, "{l:?}"),
            None => assert_eq!(l.value, 0.0, "{l:?}"),
        }
    }

    let server = TestServer::start(ServerConfig {
        scoring: true,
        ..Default::default()
    });
    for kind in [ScoringKind::Sdpo, ScoringKind::SdpoGt, ScoringKind::DeltaBelief] {
        let before = server.requests();
        let m = ContinuationScoring::new(
            kind,
            http_backend(&server, scoring(true), TIMEOUT).0,
            Default::default(),
        )
        .unwrap()
        .with_expert(expert.clone());
        let preds = predict(&m, &candidates, &d.ctx, &StageOptions::default())
            .await
            .unwrap();
        let failed: Vec<_> = preds.iter().filter_map(|p| p.error.as_deref()).collect();
        assert!(failed.is_empty(), "{kind:?}: {failed:?}");
        let values: Vec<f64> = preds.iter().map(|p| p.value).collect();
        let states = candidate_groups(&labels, &values);
        let r = per_state_ranking(&states, RankingTies::Zero, None);
        eprintln!("{kind:?}: per-state rho {:.3} over {} states", r.mean, r.used);
        assert!(r.mean >= 0.8, "{kind:?}: per-state rho {}", r.mean);
        // Requests: per candidate, 2 scorings (sdpo) or 2 after + 2 before per state
        // (Δbelief), each 2 tokenizations and 1 completion.
        let scorings = match kind {
            ScoringKind::DeltaBelief => 2 * candidates.len() + 2 * 60,
            _ => 2 * candidates.len(),
        };
        assert_eq!(server.requests() - before, 3 * scorings, "{kind:?}");
        assert_eq!(m.usage()["requests"], scorings as u64, "{kind:?}");
    }
    // The teacher of sdpo-gt sees the expert evidence; sdpo's does not.
    let gt = ContinuationScoring::new(
        ScoringKind::SdpoGt,
        http_backend(&server, scoring(true), TIMEOUT).0,
        Default::default(),
    )
    .unwrap()
    .with_expert(expert.clone());
    let (_, teacher) = gt.sdpo_messages(&candidates[0], &d.ctx);
    let text = teacher[1].joined_text();
    assert!(text.contains("Best next expert move after candidate result:"), "{text}");
    assert!(text.contains("**Immediate FrozenLake Response After The Candidate Move:**"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_scoring_is_refused_before_any_point() {
    let server = TestServer::start(ServerConfig::default());
    // Declared without the capability: refused when the method is made, nothing sent.
    let e = match ContinuationScoring::new(
        ScoringKind::Sdpo,
        http_backend(&server, scoring(false), TIMEOUT).0,
        Default::default(),
    ) {
        Err(e) => e,
        Ok(_) => panic!("built on a backend that cannot score"),
    };
    assert!(matches!(e, MethodsError::Unsupported { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("`scoring`") && msg.contains("vLLM") && msg.contains("sdpo"),
        "{msg}"
    );
    assert_eq!(server.requests(), 0);
    // Declared, but the server has no /tokenize (a hosted API): the error names the
    // capability and is not retried.
    let b = http_backend(&server, scoring(true), TIMEOUT).0;
    let e = b
        .score(&ScoreRequest {
            messages: vec![qval_methods::llm::Message::text(qval_methods::llm::Role::User, "hi")],
            continuation: "left".into(),
        })
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("`scoring`") && e.to_string().contains("/tokenize"),
        "{e}"
    );
    assert_eq!(server.requests(), 0, "404s are not counted by the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoring_failures_are_retried_then_recorded() {
    let (candidates, _, d) = candidates(3).await;
    let server = TestServer::start(ServerConfig {
        scoring: true,
        rules: vec![
            // The first completion fails once (retried); every completion mentioning the
            // third state's candidate "up" fails for good.
            Rule::new(Selector::FirstRequests(3), Fault::ServerError).times(1),
        ],
        ..Default::default()
    });
    let m = ContinuationScoring::new(
        ScoringKind::Sdpo,
        http_backend(&server, scoring(true), TIMEOUT).0,
        Default::default(),
    )
    .unwrap();
    let preds = predict(&m, &candidates, &d.ctx, &StageOptions::default())
        .await
        .unwrap();
    assert!(
        preds.iter().all(|p| p.value.is_finite()),
        "a transient failure is retried"
    );
    let bad = TestServer::start(ServerConfig {
        scoring: true,
        rules: vec![Rule::new(Selector::Any, Fault::BadRequest)],
        ..Default::default()
    });
    let m = ContinuationScoring::new(
        ScoringKind::DeltaBelief,
        http_backend(&bad, scoring(true), TIMEOUT).0,
        Default::default(),
    )
    .unwrap();
    let preds = predict(&m, &candidates, &d.ctx, &StageOptions::default())
        .await
        .unwrap();
    assert!(preds.iter().all(|p| p.value.is_nan()));
    let reason = preds[0].error.as_deref().unwrap();
    assert!(
        reason.contains("LLM scoring failed") && reason.contains("400"),
        "{reason}"
    );
}
