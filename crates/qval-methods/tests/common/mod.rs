//! Helpers shared by the method tests: the HTTP backend on the loopback server, the
//! TerminalBench tasks, bubblewrap for generated code, what a request shows the model, and
//! ranking candidates of the quickstart data with exact labels.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use qval_core::{EvaluationPoint, Label, LabelConfig, MvmcConfig, MvmcLabeler, StageOptions, label};
use qval_envs::frozenlake::OptimalPolicy;
use qval_envs::terminalbench::TerminalBench;
use qval_methods::code::{GeneratedSample, sandbox};
use qval_methods::llm::{
    Backend, Capabilities, Message, OpenAiBackend, OpenAiConfig, Part, RetryPolicy, Role, StackBuilder, UsageCounter,
};
use qval_methods::prompting::expand_candidates;
use qval_testkit::{QuickstartData, TestServer};

/// The HTTP backend on the loopback `server` as a run builds it (16 requests at once, 3
/// attempts with short back-offs), declaring `capabilities` and giving a request up after
/// `timeout`; and its usage counter.
pub fn http_backend(
    server: &TestServer,
    capabilities: Capabilities,
    timeout: Duration,
) -> (Arc<dyn Backend>, Arc<UsageCounter>) {
    let mut cfg = OpenAiConfig::new(server.base_url(), "qval-oracle");
    cfg.timeout = timeout;
    cfg.capabilities = capabilities;
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(40))
        .build()
        .unwrap();
    let stack = StackBuilder::new(OpenAiBackend::new(cfg).unwrap())
        .concurrency(16)
        .retry(Some(policy));
    let counter = stack.counter();
    (stack.build().unwrap(), counter)
}

/// TerminalBench with the tasks `only` (it needs bubblewrap).
pub fn terminalbench(only: &[&str]) -> TerminalBench {
    TerminalBench::builder()
        .only(only.iter().copied())
        .build()
        .unwrap_or_else(|e| panic!("{e}\nthese tests need bubblewrap: apt-get install bubblewrap"))
}

/// Fails the test unless generated code can run inside bubblewrap.
pub fn require_bubblewrap() {
    if let Err(e) = sandbox::bubblewrap_works() {
        panic!(
            "these tests run generated code only inside bubblewrap: {e}. Install it with `apt-get install bubblewrap` (.ci/run does)."
        );
    }
}

/// A generated sample whose code is `code`.
pub fn sample(code: &str) -> GeneratedSample {
    GeneratedSample {
        index: 0,
        source: Some(code.to_string()),
        error: None,
        transient: false,
    }
}

/// The text of the one user message of `messages`, which must be one text part.
pub fn user_text(messages: &[Message]) -> String {
    let users: Vec<&Message> = messages.iter().filter(|m| m.role == Role::User).collect();
    let [m] = &users[..] else {
        panic!("one user message: {messages:?}")
    };
    match &m.parts[..] {
        [Part::Text { text }] => text.clone(),
        other => panic!("one text part: {other:?}"),
    }
}

/// The candidates (every move) of the first `n` states of `d`, and their exact Q labels
/// (MVMC, one rollout of the optimal policy on deterministic maps), in the same order.
pub async fn labelled_candidates(d: &QuickstartData, n: usize) -> (Vec<EvaluationPoint>, Vec<Label>) {
    let first: Vec<EvaluationPoint> = d.points.iter().take(n).cloned().collect();
    let candidates = expand_candidates(&*d.env, &first, 1, None).unwrap();
    let labeler = MvmcLabeler::new(
        d.env.clone(),
        Arc::new(OptimalPolicy::for_env(&d.env)),
        MvmcConfig::builder().rollouts(1).build().unwrap(),
    );
    let labels = label(&labeler, &candidates, &LabelConfig::default(), &StageOptions::default())
        .await
        .unwrap();
    (candidates, labels)
}
