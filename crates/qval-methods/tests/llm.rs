//! The LLM client and the prompting methods against the loopback server of qval-testkit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::http_backend;
use qval_core::{
    CollectConfig, Environment, EvaluationPoint, MethodContext, SampleConfig, Signal, StageOptions, collect, predict,
    sample_points,
};
use qval_envs::frozenlake::{EpsilonGreedy, FrozenLake};
use qval_methods::llm::{Backend, Capabilities, OpenAiBackend, OpenAiConfig, StackBuilder};
use qval_methods::prompting::{Direct, DirectMode, Gvl, Ranking, ReportsUsage, Verifier};
use qval_metrics::{StateCandidates, per_state_ranking};
use qval_testkit::{Fault, Oracle, Rule, Selector, ServerConfig, TestServer, quickstart_data, rho};

/// The oracle's backend declares log-probabilities (the verifier reads them).
fn logprobs() -> Capabilities {
    Capabilities {
        logprobs: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_oracle_prompting_methods_rank_as_the_labels_do() {
    let d = quickstart_data().await;
    let server = TestServer::start(ServerConfig::default());
    let (backend, _) = http_backend(&server, logprobs(), Duration::from_secs(10));
    let opts = StageOptions::default();
    let po = Default::default();
    let methods: Vec<(Box<dyn qval_core::DenseSignalMethod>, f64)> = vec![
        (
            Box::new(Direct::new(backend.clone(), Signal::Q, DirectMode::Single, po)),
            0.95,
        ),
        (
            Box::new(Direct::new(
                backend.clone(),
                Signal::Q,
                DirectMode::Multi(3),
                Default::default(),
            )),
            0.95,
        ),
        (
            Box::new(Direct::new(
                backend.clone(),
                Signal::Q,
                DirectMode::Batched(4),
                Default::default(),
            )),
            0.95,
        ),
        (
            Box::new(Direct::new(
                backend.clone(),
                Signal::Q,
                DirectMode::Sequential(8),
                Default::default(),
            )),
            0.95,
        ),
        (
            Box::new(Gvl::new(
                backend.clone(),
                Signal::Q,
                &d.trajectories,
                7,
                Default::default(),
            )),
            0.95,
        ),
        (
            Box::new(Verifier::new(backend.clone(), Signal::Q, Default::default())),
            0.9,
        ),
    ];
    let before = server.requests();
    for (m, floor) in &methods {
        let preds = predict(m.as_ref(), &d.points, &d.ctx, &opts).await.unwrap();
        let nan = preds.iter().filter(|p| p.value.is_nan()).count();
        assert_eq!(nan, 0, "{}: {:?}", m.name(), preds.iter().find(|p| p.value.is_nan()));
        let r = rho(&d.labels, &preds);
        assert!(r >= *floor, "{}: rho {r} < {floor}", m.name());
    }
    let n = d.points.len();
    // single + 3 passes + batches of 4 + one per point (sequential) + gvl + verifier.
    assert_eq!(server.requests() - before, n + 3 * n + n.div_ceil(4) + n + n + n);
    // Noise lowers the figure but keeps it high.
    let noisy = TestServer::start(ServerConfig {
        oracle: Oracle { noise: 0.05, seed: 3 },
        ..Default::default()
    });
    let (nb, _) = http_backend(&noisy, logprobs(), Duration::from_secs(10));
    let preds = predict(
        &Direct::new(nb, Signal::Q, DirectMode::Single, Default::default()),
        &d.points,
        &d.ctx,
        &opts,
    )
    .await
    .unwrap();
    let r = rho(&d.labels, &preds);
    assert!((0.5..0.99).contains(&r), "noisy oracle rho {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranking_per_state_reaches_the_oracle_ceiling() {
    let d = quickstart_data().await;
    let server = TestServer::start(ServerConfig::default());
    let (backend, _) = http_backend(&server, logprobs(), Duration::from_secs(10));
    let (candidates, labels) = common::labelled_candidates(&d, 100).await;
    assert_eq!(candidates.len(), 400, "four moves per state");
    let ranking = Ranking::new(backend, &candidates, Default::default());
    let opts = StageOptions {
        checkpoint_every: 7,
        ..Default::default()
    }; // batches split states: still one request each
    let preds = predict(&ranking, &candidates, &d.ctx, &opts).await.unwrap();
    assert_eq!(server.requests(), 100, "one request per state");
    assert_eq!(ranking.usage()["requests"], 100);
    let values: Vec<f64> = preds.iter().map(|p| p.value).collect();
    let states: Vec<StateCandidates> = qval_metrics::candidate_groups(&labels, &values);
    assert_eq!(states.len(), 100, "the labels carry their state (candidate_of)");
    let r = per_state_ranking(&states, qval_metrics::RankingTies::Published, None);
    assert!(r.used >= 90, "{r:?}");
    assert!(r.mean >= 0.9, "per-state rho {}", r.mean);
}

/// Points whose task text carries a marker, so a fault rule can pick them.
fn marked(points: &[EvaluationPoint], marks: &[(usize, &str)]) -> Vec<EvaluationPoint> {
    let mut p = points.to_vec();
    for (i, m) in marks {
        p[*i].task.instruction = format!("{} [{m}]", p[*i].task.instruction);
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_retried_or_recorded_and_never_panic() {
    let d = quickstart_data().await;
    let points: Vec<EvaluationPoint> = d.points.iter().take(40).cloned().collect();
    let points = marked(
        &points,
        &[
            (1, "F500"),
            (2, "FSLOW"),
            (3, "FJSON"),
            (4, "FNOCHOICE"),
            (5, "FPROSE"),
            (6, "FQUOTA"),
            (7, "F400"),
            (8, "F429"),
        ],
    );
    let rules = vec![
        Rule::new(Selector::Contains("[F500]".into()), Fault::ServerError),
        Rule::new(
            Selector::Contains("[FSLOW]".into()),
            Fault::Slow {
                delay: Duration::from_millis(800),
            },
        ),
        Rule::new(Selector::Contains("[FJSON]".into()), Fault::MalformedJson),
        Rule::new(Selector::Contains("[FNOCHOICE]".into()), Fault::NoChoices),
        Rule::new(Selector::Contains("[FPROSE]".into()), Fault::Prose),
        Rule::new(Selector::Contains("[FQUOTA]".into()), Fault::QuotaExhausted),
        Rule::new(Selector::Contains("[F400]".into()), Fault::BadRequest),
        // Transient: twice rate limited, then served.
        Rule::new(
            Selector::Contains("[F429]".into()),
            Fault::RateLimited { retry_after_secs: 0.05 },
        )
        .times(2),
    ];
    let server = TestServer::start(ServerConfig {
        rules,
        ..Default::default()
    });
    let (backend, usage) = http_backend(&server, logprobs(), Duration::from_millis(300));
    let method = Direct::new(backend, Signal::Q, DirectMode::Single, Default::default());
    let preds = predict(&method, &points, &d.ctx, &StageOptions::default())
        .await
        .unwrap();
    let reason = |i: usize| preds[i].error.clone().unwrap_or_default();
    assert!(
        preds[1].value.is_nan() && reason(1).contains("HTTP 500") && reason(1).contains("after 3 attempts"),
        "{}",
        reason(1)
    );
    assert!(
        preds[2].value.is_nan() && reason(2).contains("timed out"),
        "{}",
        reason(2)
    );
    assert!(
        preds[3].value.is_nan() && reason(3).contains("malformed"),
        "{}",
        reason(3)
    );
    assert!(
        preds[4].value.is_nan() && reason(4).contains("no choices"),
        "{}",
        reason(4)
    );
    assert!(
        preds[5].value.is_nan() && reason(5).contains("no number"),
        "{}",
        reason(5)
    );
    assert!(preds[6].value.is_nan() && reason(6).contains("quota"), "{}", reason(6));
    assert!(
        preds[7].value.is_nan() && reason(7).contains("HTTP 400"),
        "{}",
        reason(7)
    );
    assert!(
        preds[8].value.is_finite() && preds[8].error.is_none(),
        "the rate-limited point succeeds: {:?}",
        preds[8]
    );
    let ok = preds.iter().filter(|p| p.value.is_finite()).count();
    assert_eq!(ok, 40 - 7);
    // Requests: 33 good points answered once, the 429 point 3 times, 500 and slow 3 times
    // each (retried), the four permanent faults once each, prose once.
    assert_eq!(server.requests(), 32 + 3 + 3 + 3 + 1 + 1 + 1 + 1 + 1);
    assert_eq!(usage.snapshot()["requests"], 40);
    assert_eq!(
        usage.snapshot()["failures"],
        6,
        "the prose answer is a successful request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_is_served_from_the_cache_and_requests_are_logged() {
    let d = quickstart_data().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(ServerConfig::default());
    let build = || {
        let cfg = OpenAiConfig::new(server.base_url(), "qval-oracle");
        StackBuilder::new(OpenAiBackend::new(cfg).unwrap())
            .cache(dir.path().join("cache"))
            .log(dir.path().join("requests.jsonl"))
            .build()
            .unwrap()
    };
    let points: Vec<EvaluationPoint> = d.points.iter().take(30).cloned().collect();
    let first = predict(
        &Direct::new(build(), Signal::Q, DirectMode::Single, Default::default()),
        &points,
        &d.ctx,
        &StageOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(server.requests(), 30);
    let again = predict(
        &Direct::new(build(), Signal::Q, DirectMode::Single, Default::default()),
        &points,
        &d.ctx,
        &StageOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(server.requests(), 30, "the second run makes zero requests");
    assert_eq!(first, again);
    let log = std::fs::read_to_string(dir.path().join("requests.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 30, "only real requests are logged");
    let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert!(
        line["request"]["messages"][1]["content"][0]
            .as_str()
            .unwrap()
            .contains("### Current State\n[Turn ")
    );
    assert!(line["response"].as_str().unwrap().contains("<answer>"));
    assert!(line["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(line["usage"]["prompt_tokens"].as_u64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_go_as_data_urls_where_the_backend_takes_them() {
    use qval_envs::frozenlake::ObservationMode;
    use qval_methods::llm::{Modality, PromptOptions};
    let env = FrozenLake::builder()
        .random_maps(2, 8, 42)
        .observation(ObservationMode::TextAndImage)
        .image_size(64)
        .build()
        .unwrap();
    let collector = EpsilonGreedy::new(&env, 0.1).unwrap();
    let cfg = CollectConfig::new(4, 1, 2).unwrap();
    let trajectories = collect(&env, &collector, &env.tasks(), &cfg, &StageOptions::default())
        .await
        .unwrap();
    let points = sample_points(
        &trajectories,
        &SampleConfig::builder().per_trajectory(2).build().unwrap(),
    );
    assert!(points.iter().all(|p| p.observation.images.len() == 1));
    let ctx = MethodContext::from_spec(env.spec());
    let server = TestServer::start(ServerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let opts = PromptOptions {
        modality: Modality::TextAndImage,
        ..Default::default()
    };
    let mut with_images = OpenAiConfig::new(server.base_url(), "vlm");
    with_images.capabilities.images = true;
    let b = StackBuilder::new(OpenAiBackend::new(with_images).unwrap())
        .log(dir.path().join("log.jsonl"))
        .build()
        .unwrap();
    let preds = predict(
        &Direct::new(b, Signal::Q, DirectMode::Single, opts.clone()),
        &points,
        &ctx,
        &StageOptions::default(),
    )
    .await
    .unwrap();
    assert!(preds.iter().all(|p| p.value.is_finite()), "{preds:?}");
    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    assert_eq!(
        log.matches("[image, ").count(),
        2 * points.len(),
        "state and next state images, logged by size only"
    );
    let text_only = OpenAiBackend::new(OpenAiConfig::new(server.base_url(), "llm")).unwrap();
    let preds = predict(
        &Direct::new(Arc::new(text_only), Signal::Q, DirectMode::Single, opts),
        &points,
        &ctx,
        &StageOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        preds
            .iter()
            .all(|p| p.value.is_nan() && p.error.as_deref().unwrap().contains("not configured for images"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_fit_the_budget_and_hide_an_undisclosed_discount() {
    use qval_methods::llm::prompt::{direct_messages, render};
    use qval_methods::llm::{Budget, PromptOptions};
    let d = quickstart_data().await;
    let long = d.points.iter().max_by_key(|p| p.history.len()).unwrap();
    assert!(long.history.len() >= 10);
    let mut shown = d.ctx.clone();
    shown.disclose_gamma = true;
    let full = render(&direct_messages(long, &shown, Signal::Q, &Default::default()));
    assert!(full.contains("### State-Action History\n") && !full.contains("[Note: Only the last"));
    assert!(
        full.contains("(discount factor γ=0.95)") && full.contains(&format!("[Turn 1/{} - State]", d.ctx.max_steps))
    );
    let budget = full.len() / 2;
    let opts = PromptOptions {
        budget: Some(Budget::Chars(budget)),
        ..Default::default()
    };
    let msgs = direct_messages(long, &shown, Signal::Q, &opts);
    let cut = render(&msgs);
    let text: usize = msgs.iter().map(|m| m.joined_text().len()).sum();
    assert!(text <= budget, "{text} > {budget}");
    assert!(!cut.contains("Turn 1/"), "the oldest turns go first");
    assert!(cut.contains("turns are shown.]"), "the cut is stated: {cut}");
    assert!(
        cut.contains(&format!("Turn {}/", long.history.last().unwrap().step + 1)),
        "the latest turn stays"
    );
    let mut hidden = d.ctx.clone();
    hidden.disclose_gamma = false;
    let s = render(&direct_messages(long, &hidden, Signal::V, &Default::default()));
    assert!(
        !s.contains("γ") && s.contains("fewer steps") && s.contains("V(s)") && !s.contains("### Current Action"),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_change_the_guidance_and_the_answer_format_as_published() {
    use qval_methods::llm::PromptOptions;
    use qval_methods::llm::prompt::{Preset, direct_messages, render};
    let d = quickstart_data().await;
    let p = &d.points[3];
    let hidden = d.ctx.clone();
    assert!(!hidden.disclose_gamma, "the published default hides the discount");
    let text = |preset, thinking| {
        let opts = PromptOptions {
            preset,
            thinking,
            ..Default::default()
        };
        render(&direct_messages(p, &hidden, Signal::Q, &opts))
    };
    const APPROX: &str = "Your goal is to produce an informed approximation";
    const EFFICIENCY: &str = "All else being equal, reaching the goal in fewer steps is preferable";
    let v0 = text(Preset::V0, true);
    assert!(
        !v0.contains(APPROX) && !v0.contains(EFFICIENCY) && !v0.contains("<answer>"),
        "{v0}"
    );
    assert!(v0.contains("respond with ONLY a single numeric Q-value estimate"));
    assert!(
        v0.ends_with("Now, provide your Q-value estimate as a single number. Do not explain — output ONLY the number.")
    );
    let v1 = text(Preset::V1, true);
    assert!(
        v1.contains(APPROX) && v1.contains(EFFICIENCY) && !v1.contains("<answer>"),
        "{v1}"
    );
    let v2 = text(Preset::V2, true);
    assert!(v2.contains(APPROX) && v2.contains(EFFICIENCY), "{v2}");
    assert!(v2.contains(
        "After any reasoning, provide your numeric Q-value estimate as a single number inside <answer> tags, e.g. \
         <answer>NUMBER</answer>."
    ));
    assert_eq!(text(Preset::default(), true), v2, "v2 is the default");
    // The published order of the system prompt's parts.
    let at = |s: &str| v2.find(s).unwrap_or_else(|| panic!("{s} missing"));
    let order = [
        "You are an expert at estimating Q-value functions",
        "The Q-value Q(s,a) represents the expected discounted cumulative reward when",
        APPROX,
        EFFICIENCY,
        "You will receive the episode's state-action history (if any), the current state, the action taken",
        "## Task Description\n",
        "## Episode Configuration\nThe episode step limit is 30.",
        "## Reward Functions\n",
        "After any reasoning, provide",
        "Estimate the Q-value for the **Current Action** in the **Current State** for the following:",
        "### Current State\n[Turn ",
        "### Current Action\n",
        "### Next State\n",
    ];
    for w in order.windows(2) {
        assert!(at(w[0]) < at(w[1]), "{:?} before {:?}", w[0], w[1]);
    }
    // A disclosed discount needs no efficiency hint.
    let mut shown = d.ctx.clone();
    shown.disclose_gamma = true;
    let disclosed = render(&direct_messages(p, &shown, Signal::Q, &Default::default()));
    assert!(!disclosed.contains(EFFICIENCY) && disclosed.contains("(discount factor γ=0.95)"));
    // Thinking off: the closing loses "After any reasoning, ", as published.
    let plain = text(Preset::V2, false);
    assert!(!plain.contains("After any reasoning") && plain.contains("Provide your numeric Q-value estimate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn potential_and_shaped_reward_prompts_say_what_the_published_ones_say() {
    use qval_methods::llm::prompt::{direct_messages, render};
    let d = quickstart_data().await;
    let p = &d.points[3];
    let mut ctx = d.ctx.clone();
    ctx.disclose_gamma = true;
    let text = |ctx: &qval_core::MethodContext, signal| render(&direct_messages(p, ctx, signal, &Default::default()));
    // The published blocks (bethgelab/qval prompts.py) at gamma 0.95, disclosed.
    let potential = text(&ctx, Signal::Potential);
    for block in [
        "You are an expert at estimating potential functions for reinforcement learning environments.",
        "The potential Φ(s) represents the long-term desirability of state s for reward shaping. The theoretically \
         optimal potential equals V*(s), the optimal state-value function — the expected discounted cumulative \
         reward (discount factor γ=0.95) under optimal play. It depends only on the current state, not on any \
         specific action.",
        "You will receive the episode's state-action history (if any) and the current state. Estimate Φ(s) for \
         the **Current State** — the potential value representing how desirable this state is for eventual \
         success. The history provides context about how the agent reached the current state.",
        "Estimate the potential of the **Current State** for the following:",
        "Now, provide your potential value estimate for the current state as a single number inside <answer> tags, \
         e.g. <answer>NUMBER</answer>.",
    ] {
        assert!(potential.contains(block), "missing:\n{block}\nin:\n{potential}");
    }
    assert!(
        !potential.contains("### Current Action"),
        "a potential is of the state alone"
    );
    let shaped = text(&ctx, Signal::ShapedReward);
    for block in [
        "The shaped reward F(s, a, s') provides a dense per-transition reward signal supplementing the sparse \
         environment reward. A positive value indicates the transition moved toward the goal; negative indicates \
         regression. It may depend on the current state, the action taken, and the resulting next state.",
        "You will receive the episode's state-action history (if any), the current state, the action taken, and the \
         resulting next state. Estimate F(s, a, s') for this transition — a dense reward signal indicating \
         whether this transition moved toward or away from the goal. Positive means progress, negative means \
         regression. The history provides context about how the agent reached the current state.",
        "Estimate the shaped reward for the transition from **Current State** via **Current Action** to **Next \
         State** for the following:",
        "### Current Action\n",
        "### Next State\n",
        "Now, provide your shaped reward estimate for this transition as a single number inside <answer> tags, e.g. \
         <answer>NUMBER</answer>.",
    ] {
        assert!(shaped.contains(block), "missing:\n{block}\nin:\n{shaped}");
    }
    ctx.include_next_state = false;
    let without_next = text(&ctx, Signal::ShapedReward);
    assert!(
        without_next.contains(
            "Estimate the shaped reward for the **Current Action** in the **Current State** for the following:"
        )
    );
    assert!(!without_next.contains("### Next State"));
}

/// A backend answering `<answer>0.5</answer>` after a pause, counting the calls it gets.
struct Counting {
    calls: std::sync::atomic::AtomicU64,
    delay: Duration,
}

#[async_trait::async_trait]
impl Backend for Counting {
    fn name(&self) -> String {
        "counting".into()
    }
    fn capabilities(&self) -> qval_methods::llm::Capabilities {
        qval_methods::llm::Capabilities::default()
    }
    async fn chat(
        &self,
        _request: &qval_methods::llm::ChatRequest,
    ) -> Result<qval_methods::llm::ChatResponse, qval_methods::llm::LlmError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        Ok(qval_methods::llm::ChatResponse {
            text: "<answer>0.5</answer>".into(),
            usage: qval_methods::llm::Usage {
                prompt_tokens: 7,
                completion_tokens: 3,
            },
            logprobs: None,
            model: "counting".into(),
            finish_reason: None,
            cached: false,
        })
    }
}

fn counting(delay_ms: u64) -> Arc<Counting> {
    Arc::new(Counting {
        calls: Default::default(),
        delay: Duration::from_millis(delay_ms),
    })
}

fn ask(text: &str) -> qval_methods::llm::ChatRequest {
    qval_methods::llm::ChatRequest {
        messages: vec![qval_methods::llm::Message::text(qval_methods::llm::Role::User, text)],
        sampling: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_prompts_in_flight_at_once_make_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let inner = counting(100);
    let stack = StackBuilder::new(inner.clone())
        .cache(dir.path().join("cache"))
        .build()
        .unwrap();
    let reqs: Vec<_> = (0..24).map(|i| ask(&format!("prompt {}", i % 4))).collect();
    let replies = stack.chat_batch(&reqs).await;
    assert!(replies.iter().all(|r| r.as_ref().unwrap().text.contains("0.5")));
    assert_eq!(
        inner.calls.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "one request per distinct prompt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_tells_requests_sent_from_cache_hits() {
    let d = quickstart_data().await;
    let dir = tempfile::tempdir().unwrap();
    let inner = counting(1);
    let build = || {
        StackBuilder::new(inner.clone())
            .cache(dir.path().join("cache"))
            .build()
            .unwrap()
    };
    let points = &d.points[..10];
    let first = Direct::new(build(), Signal::Q, DirectMode::Single, Default::default());
    predict(&first, points, &d.ctx, &StageOptions::default()).await.unwrap();
    let u = first.usage();
    assert_eq!(
        (u["requests"].as_u64(), u["cache_hits"].as_u64()),
        (Some(10), Some(0)),
        "{u}"
    );
    assert_eq!(u["prompt_tokens"], 70, "{u}");
    let again = Direct::new(build(), Signal::Q, DirectMode::Single, Default::default());
    predict(&again, points, &d.ctx, &StageOptions::default()).await.unwrap();
    let u = again.usage();
    assert_eq!(
        (u["requests"].as_u64(), u["cache_hits"].as_u64()),
        (Some(0), Some(10)),
        "{u}"
    );
    assert_eq!(
        (u["prompt_tokens"].as_u64(), u["cached_prompt_tokens"].as_u64()),
        (Some(0), Some(70)),
        "{u}"
    );
    assert_eq!(u["cached_completion_tokens"], 30, "{u}");
}

/// Two logs appending to one file (as two processes sharing it would), many requests at
/// once with long prompts: every line is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_lines_are_never_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    let a = Arc::new(qval_methods::llm::RequestLog::new(counting(0), &path).unwrap());
    let b = Arc::new(qval_methods::llm::RequestLog::new(counting(0), &path).unwrap());
    let long = "word ".repeat(4000);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        let req = ask(&format!("{i} {long}"));
        tasks.push(tokio::spawn(async move { log.chat(&req).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 200);
    for (i, line) in text.lines().enumerate() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
    }
}

/// Answers prose (which does not parse) to its first `prose` calls, then a number.
struct Unsure {
    calls: std::sync::atomic::AtomicU64,
    prose: u64,
}

#[async_trait::async_trait]
impl Backend for Unsure {
    fn name(&self) -> String {
        "unsure".into()
    }
    fn capabilities(&self) -> qval_methods::llm::Capabilities {
        qval_methods::llm::Capabilities::default()
    }
    async fn chat(
        &self,
        _request: &qval_methods::llm::ChatRequest,
    ) -> Result<qval_methods::llm::ChatResponse, qval_methods::llm::LlmError> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let text = if n < self.prose {
            "I would rather not say."
        } else {
            "<answer>0.5</answer>"
        };
        Ok(qval_methods::llm::ChatResponse {
            text: text.into(),
            usage: Default::default(),
            logprobs: None,
            model: "unsure".into(),
            finish_reason: None,
            cached: false,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsed_replies_stay_cached_but_can_be_asked_again() {
    let d = quickstart_data().await;
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(Unsure {
        calls: Default::default(),
        prose: 5,
    });
    let points = &d.points[..8];
    let calls = || inner.calls.load(std::sync::atomic::Ordering::SeqCst);
    let cache = dir.path().join("cache");
    let run = async |reask: bool| {
        let stack = StackBuilder::new(inner.clone())
            .concurrency(1)
            .cache(&cache)
            .reask_unparsed(reask)
            .build()
            .unwrap();
        let m = Direct::new(stack, Signal::Q, DirectMode::Single, Default::default());
        predict(&m, points, &d.ctx, &StageOptions::default())
            .await
            .unwrap()
            .iter()
            .filter(|p| p.value.is_nan())
            .count()
    };
    assert_eq!(run(false).await, 5, "five replies did not parse");
    assert_eq!(calls(), 8);
    assert_eq!(run(false).await, 5, "by default the cache serves them as they were");
    assert_eq!(calls(), 8);
    assert_eq!(run(true).await, 0, "reask_unparsed asks exactly those again");
    assert_eq!(calls(), 13);
    assert_eq!(run(true).await, 0);
    assert_eq!(calls(), 13, "the fresh answers are cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_with_position_bias_is_not_rewarded_for_it() {
    let d = quickstart_data().await;
    let (candidates, labels) = common::labelled_candidates(&d, 80).await;
    let mut labelled: Vec<(EvaluationPoint, qval_core::Label)> = candidates.into_iter().zip(labels).collect();
    // Each state's candidates given best first: a model that always answers "1, 2, 3, 4"
    // would look perfect if they were shown in that order.
    labelled.sort_by(|a, b| {
        a.1.candidate_of
            .cmp(&b.1.candidate_of)
            .then(b.1.value.total_cmp(&a.1.value))
    });
    let (cands, labels): (Vec<_>, Vec<_>) = labelled.into_iter().unzip();
    let server = TestServer::start(ServerConfig {
        fixed_reply: Some("<answer>1, 2, 3, 4</answer>".into()),
        ..Default::default()
    });
    let (backend, _) = http_backend(&server, logprobs(), Duration::from_secs(10));
    let per_state = |ranking: Ranking| {
        let cands = cands.clone();
        let labels = labels.clone();
        let ctx = d.ctx.clone();
        async move {
            let preds = predict(&ranking, &cands, &ctx, &StageOptions::default()).await.unwrap();
            let values: Vec<f64> = preds.iter().map(|p| p.value).collect();
            let states = qval_metrics::candidate_groups(&labels, &values);
            per_state_ranking(&states, qval_metrics::RankingTies::Zero, None).mean
        }
    };
    let fixed = per_state(Ranking::new(backend.clone(), &cands, Default::default()).shuffle(None)).await;
    let shuffled = per_state(Ranking::new(backend.clone(), &cands, Default::default()).shuffle(Some(7))).await;
    eprintln!("position bias: per-state rho {fixed:.3} in the given order, {shuffled:.3} shuffled");
    assert!(fixed > 0.7, "in the given order the bias is rewarded: {fixed}");
    assert!(shuffled.abs() < 0.25, "shuffled, the bias earns nothing: {shuffled}");
    // The order is a function of the seed and the state: the same on a rerun, another for
    // another seed.
    let orders = |seed| {
        Ranking::new(backend.clone(), &cands, Default::default())
            .shuffle(Some(seed))
            .shown_orders()
    };
    assert_eq!(orders(7), orders(7));
    let (a, b) = (orders(7), orders(8));
    let differ = a.iter().filter(|(s, o)| b[*s] != **o).count();
    assert!(differ > a.len() / 2, "{differ} of {} states differ", a.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_fields_are_cut_in_the_middle_down_to_their_minimums_before_turns_are_dropped() {
    use qval_methods::llm::prompt::{CharEstimate, TokenCounter, direct_messages, middle_truncate, render};
    use qval_methods::llm::{Budget, MinChars, PromptOptions};
    assert_eq!(
        middle_truncate("abcdefghij", 4),
        "ab\n\n[... 6 characters omitted ...]\n\nij"
    );
    assert_eq!(middle_truncate("abc", 4), "abc");
    let d = quickstart_data().await;
    let mut p = d.points.iter().max_by_key(|p| p.history.len()).unwrap().clone();
    // TerminalBench-like: long shell outputs.
    let long = |tag: &str| format!("{tag}-start {} {tag}-end", "x".repeat(6000));
    for (i, t) in p.history.iter_mut().enumerate() {
        t.observation = long(&format!("h{i}"));
    }
    p.observation.text = long("cur");
    p.next_observation.text = long("next");
    let min = MinChars {
        history: Some(200),
        current: Some(1000),
        next: Some(1000),
    };
    let full = render(&direct_messages(&p, &d.ctx, Signal::Q, &Default::default()));
    let opts = |budget| PromptOptions {
        budget: Some(budget),
        min_chars: min,
        ..Default::default()
    };
    // Room for every field at its minimum: nothing is dropped, every field is cut.
    let turns = p.history.len();
    let budget = 200 * turns + 2000 + 5000 + 3000;
    let msgs = direct_messages(&p, &d.ctx, Signal::Q, &opts(Budget::Chars(budget)));
    let text: usize = msgs.iter().map(|m| m.joined_text().len()).sum();
    let cut = render(&msgs);
    assert!(text <= budget && text < full.len() / 4, "{text} of {budget}");
    assert!(
        cut.contains(&format!("[Turn 1/{} - State]", d.ctx.max_steps)) && !cut.contains("[Note: Only the last"),
        "no turn dropped"
    );
    for tag in ["h0", "cur", "next"] {
        assert!(
            cut.contains(&format!("{tag}-start")) && cut.contains(&format!("{tag}-end")),
            "{tag}: both ends kept"
        );
    }
    assert!(cut.contains("characters omitted ...]"));
    // Less room than the minimums allow: the oldest turns go, the minimums stand.
    let msgs = direct_messages(&p, &d.ctx, Signal::Q, &opts(Budget::Chars(9000)));
    let cut = render(&msgs);
    assert!(!cut.contains("h0-start"), "the oldest turn is dropped");
    assert!(cut.contains(&format!("[... {} characters omitted ...]", long("cur").len() - 1000)));
    // A token budget counts with the published estimate unless a tokenizer is given.
    let tokens = budget * 2 / 7;
    let msgs = direct_messages(&p, &d.ctx, Signal::Q, &opts(Budget::Tokens(tokens)));
    let text: String = msgs.iter().map(|m| m.joined_text()).collect::<Vec<_>>().join("\n\n");
    assert!(
        CharEstimate.count(&text) <= tokens + 10,
        "{} > {tokens}",
        CharEstimate.count(&text)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gvl_shows_the_rest_of_the_trajectory_as_shuffled_state_and_action_pairs() {
    use qval_methods::llm::prompt::render;
    let d = quickstart_data().await;
    let backend: Arc<dyn Backend> = Arc::new(Counting {
        calls: Default::default(),
        delay: Duration::ZERO,
    });
    let gvl = Gvl::new(backend, Signal::Q, &d.trajectories, 7, Default::default());
    // Two points of one long trajectory.
    let t = d.trajectories.iter().max_by_key(|t| t.transitions.len()).unwrap();
    let of_t: Vec<_> = d.points.iter().filter(|p| p.trajectory_index == t.index).collect();
    assert!(of_t.len() >= 2 && t.transitions.len() >= 4);
    let text = |p: &qval_core::EvaluationPoint| render(&gvl.messages(p, &d.ctx).unwrap());
    let (a, b) = (text(of_t[0]), text(of_t[1]));
    let n = t.transitions.len() - 1;
    assert!(
        a.contains(&format!("### Context Transition {n}\n#### State\n"))
            && !a.contains(&format!("### Context Transition {}", n + 1))
    );
    // Context steps: state and action only; the target: state, action, next state.
    let context = &a[a.find("## Shuffled Trajectory Context").unwrap()..a.find("## Target Transition").unwrap()];
    assert!(!context.contains("Reward") && !context.contains("Next State") && !context.contains("[Turn "));
    let target = &a[a.find("## Target Transition").unwrap()..];
    for h in ["### Target State\n", "### Target Action\n", "### Target Next State\n"] {
        assert!(target.contains(h), "{h} missing: {target}");
    }
    assert!(a.contains("Estimate only the final target datapoint.") && !a.contains("state-action history"));
    // Each point of the trajectory sees its own order; the same point, the same order.
    let order = |s: &str| -> Vec<String> {
        s.split("#### State\n")
            .skip(1)
            .map(|x| x.split("### Context Transition").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(a, text(of_t[0]));
    assert_ne!(order(&a)[..3], order(&b)[..3]);
}

#[test]
fn on_the_published_maps_prompts_give_the_published_task_and_reward_descriptions_once() {
    use qval_envs::frozenlake::{FrozenLakeAction, PUBLISHED_REWARD, PUBLISHED_TASK};
    use qval_methods::llm::PromptOptions;
    use qval_methods::llm::prompt::{direct_messages, render};
    let env = FrozenLake::builder().published_tasks().build().unwrap();
    let task = env.tasks()[0].clone();
    assert_eq!(task.instruction, PUBLISHED_TASK);
    let mut rng = qval_core::seed::rng_for(0, &[]);
    let state = env.reset(&task, &mut rng).unwrap();
    let point = EvaluationPoint::from_step(&env, &task, 0, 0, &state, &FrozenLakeAction::Right, &mut rng).unwrap();
    let ctx = MethodContext::from_spec(env.spec());
    let text = render(&direct_messages(&point, &ctx, Signal::Q, &PromptOptions::default()));
    assert!(
        text.contains(&format!("## Task Description\n{PUBLISHED_TASK}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("## Reward Functions\n{PUBLISHED_REWARD}")),
        "{text}"
    );
    assert!(!text.contains("### Task"), "the task is told once: {text}");
    assert!(!text.contains("Navigate the frozen lake"), "qval's own wording: {text}");
}
