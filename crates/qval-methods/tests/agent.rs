//! The LLM agent policy on TerminalBench against the loopback server (needs bubblewrap:
//! `apt-get install bubblewrap`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{http_backend, terminalbench};
use qval_core::{CollectConfig, Environment, Labeler, MvmcConfig, MvmcLabeler, StageOptions, collect};
use qval_envs::terminalbench::NoisyScripted;
use qval_methods::llm::{Capabilities, LlmAgent};
use qval_testkit::{Fault, Rule, Selector, ServerConfig, TestServer};

/// The one task of these tests.
const TASKS: &[&str] = &["hello-file"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reads_action_then_answer_then_raw_text_and_solves_the_task() {
    let server = TestServer::start(ServerConfig {
        agent_script: vec![
            "<think>Where am I?</think>Let me go there. <action>cd /app</action>".into(),
            "I will write it.\n<answer>echo 'Hello, world!' > hello.txt</answer>".into(),
            "SUBMIT".into(),
        ],
        // One transient failure on the way: retried, not seen by the episode.
        rules: vec![Rule {
            selector: Selector::FirstRequests(1),
            fault: Fault::ServerError,
            times: Some(1),
        }],
        ..Default::default()
    });
    let env = terminalbench(TASKS);
    let agent = LlmAgent::new(http_backend(&server, Capabilities::default(), Duration::from_secs(10)).0);
    let config = CollectConfig::new(1, 3, 16).unwrap();
    let t = collect(&env, &agent, &env.tasks(), &config, &StageOptions::default())
        .await
        .unwrap();
    let actions: Vec<&str> = t[0].transitions.iter().map(|x| x.action_text.as_str()).collect();
    assert_eq!(actions, vec!["cd /app", "echo 'Hello, world!' > hello.txt", "SUBMIT"]);
    assert!(t[0].succeeded());
    assert_eq!(server.requests(), 4, "three decisions and one retry");
    let prompts = server.prompts();
    let last = prompts.last().unwrap();
    assert!(last.starts_with("Task: Create the file /app/hello.txt"), "{last}");
    assert!(
        last.contains("Turn 2/40\nObservation:\nagent@sandbox:/app$ cd /app\nagent@sandbox:/app$"),
        "{last}"
    );
    assert!(last.contains("Now turn 3/40."), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_aborts_the_rollout_with_the_reason() {
    let server = TestServer::start(ServerConfig {
        agent_script: vec!["ls".into()],
        rules: vec![Rule::new(Selector::Any, Fault::ServerError)],
        ..Default::default()
    });
    let env = Arc::new(terminalbench(TASKS));
    // A point from the noisy collector, labelled with the (failing) LLM agent as reference.
    let config = CollectConfig::new(1, 1, 16).unwrap();
    let t = collect(
        &*env,
        &NoisyScripted::new(0.0).unwrap(),
        &env.tasks(),
        &config,
        &StageOptions::default(),
    )
    .await
    .unwrap();
    let point = qval_core::EvaluationPoint::from_trajectory(&t[0], 0);
    let labeler = MvmcLabeler::new(
        env.clone(),
        Arc::new(LlmAgent::new(
            http_backend(&server, Capabilities::default(), Duration::from_secs(10)).0,
        )),
        MvmcConfig::builder().build().unwrap(),
    );
    let label = labeler.label(&point).await;
    assert!(label.value.is_nan());
    let reason = label.aborted.unwrap();
    assert!(
        reason.contains("llm-agent") && reason.contains("the model call failed") && reason.contains("500"),
        "{reason}"
    );
    assert_eq!(server.requests(), 3, "retried up to the policy's 3 attempts");
}
