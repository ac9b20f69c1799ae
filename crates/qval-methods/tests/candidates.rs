//! Ranking candidates where the action set is open (TerminalBench), sampled as published:
//! the state's own action, then alternatives not seen yet. Needs bubblewrap
//! (`apt-get install bubblewrap`).

mod common;

use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::terminalbench;
use qval_core::{
    CollectConfig, Environment, EvaluationPoint, Result, SampleConfig, StageOptions, collect, sample_points,
};
use qval_envs::terminalbench::{NoisyScripted, TerminalBench};
use qval_methods::llm::{OpenAiBackend, OpenAiConfig};
use qval_methods::prompting::{CandidateProposer, LlmProposer, MAX_ROUNDS, PolicyProposer, sample_candidates};
use qval_testkit::{ServerConfig, TestServer};

/// The tasks of these tests.
const TASKS: &[&str] = &["hello-file", "make-archive"];

async fn points(env: &TerminalBench) -> Vec<EvaluationPoint> {
    let config = CollectConfig::new(4, 5, 16).unwrap();
    let t = collect(
        env,
        &NoisyScripted::new(0.3).unwrap(),
        &env.tasks(),
        &config,
        &StageOptions::default(),
    )
    .await
    .unwrap();
    sample_points(&t, &SampleConfig::builder().per_trajectory(2).build().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_candidates_hold_the_own_action_and_distinct_alternatives_whatever_the_concurrency() {
    let env = terminalbench(TASKS);
    let points = points(&env).await;
    assert!(points.len() >= 4);
    let proposer = PolicyProposer::new(Arc::new(NoisyScripted::new(1.0).unwrap()));
    let c = sample_candidates(&env, &points, &proposer, 4, 9, 1).await.unwrap();
    for p in &points {
        let mine: Vec<&EvaluationPoint> = c.iter().filter(|c| c.candidate_of.as_deref() == Some(&p.id)).collect();
        if mine.is_empty() {
            continue;
        }
        assert!((2..=4).contains(&mine.len()), "{} candidates", mine.len());
        // The state's own action first, with its own result.
        assert_eq!(mine[0].id, format!("{}~0", p.id));
        assert_eq!(
            (&mine[0].action_text, &mine[0].next_state),
            (&p.action_text, &p.next_state)
        );
        let keys: HashSet<String> = mine.iter().map(|c| c.action_text.trim().to_lowercase()).collect();
        assert_eq!(keys.len(), mine.len(), "distinct actions");
        for (j, x) in mine.iter().enumerate() {
            assert_eq!(x.id, format!("{}~{j}", p.id));
            assert_eq!(x.state, p.state, "every candidate starts from the point's state");
        }
    }
    assert!(
        c.len() >= 2 * points.len() * 3 / 4,
        "most states keep candidates: {}",
        c.len()
    );
    // The same seed gives the same bytes at any concurrency.
    let again = sample_candidates(&env, &points, &proposer, 4, 9, 4).await.unwrap();
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
}

/// Proposes the state's own action, always.
struct Repeats(AtomicUsize);

#[async_trait]
impl<E: Environment> CandidateProposer<E> for Repeats {
    fn name(&self) -> String {
        "repeats".into()
    }
    async fn propose(&self, env: &E, p: &EvaluationPoint, _seen: &[String], _seed: u64) -> Result<Option<E::Action>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Some(env.parse_action(&p.action_text)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_is_asked_five_times_and_a_state_without_alternatives_is_dropped() {
    let env = terminalbench(TASKS);
    let points = points(&env).await;
    let proposer = Repeats(AtomicUsize::new(0));
    let c = sample_candidates(&env, &points[..2], &proposer, 3, 1, 2).await.unwrap();
    assert!(c.is_empty(), "fewer than 2 candidates: dropped");
    assert_eq!(
        proposer.0.load(Ordering::SeqCst),
        2 * 2 * MAX_ROUNDS,
        "2 states x 2 slots x 5 rounds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_is_told_the_actions_already_taken() {
    let server = TestServer::start(ServerConfig {
        agent_script: vec![
            "<action>ls -la</action>".into(),
            "<action>cat /app/notes.txt</action>".into(),
            "<action>pwd</action>".into(),
        ],
        ..Default::default()
    });
    let backend = Arc::new(OpenAiBackend::new(OpenAiConfig::new(server.base_url(), "qval-agent")).unwrap());
    let env = terminalbench(TASKS);
    let points = points(&env).await;
    let p = &points[0];
    let c = sample_candidates(&env, std::slice::from_ref(p), &LlmProposer::new(backend), 4, 3, 1)
        .await
        .unwrap();
    let actions: Vec<&str> = c.iter().map(|c| c.action_text.as_str()).collect();
    let expected: Vec<&str> = std::iter::once(p.action_text.as_str())
        .chain(
            ["ls -la", "cat /app/notes.txt", "pwd"]
                .into_iter()
                .filter(|a| *a != p.action_text),
        )
        .take(4)
        .collect();
    assert_eq!(actions, expected);
    let prompts = server.prompts();
    assert_eq!(prompts.len(), 3, "one request per slot: every answer was new");
    let last = prompts.last().unwrap();
    assert!(
        last.contains(&format!(
            "they are forbidden at this moment:\n- {}\n- {}\n- {}\n\nProvide exactly one command inside <action> tags.",
            p.action_text, expected[1], expected[2]
        )),
        "{last}"
    );
}
