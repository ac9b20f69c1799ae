//! Second elicitation and quota waits against the loopback server: request counts, merged
//! answers, waits and the reasons left behind; and the whole stack around an in-process
//! backend: what every layer hands inwards, and the usage counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qval_llm::{
    Backend, ChatRequest, LlmError, Message, OpenAiBackend, OpenAiConfig, Role, SECOND_ELICITATION_PROMPT, Sampling,
    StackBuilder, UsageCounter, extract_number, quota_schedule,
};
use qval_testkit::{Fault, Rule, Selector, ServerConfig, TestServer};

const QUESTION: &str = "### Current State\n[Turn 1/30]\n@ F F F\nF H F H\nF F F H\nH F F G\n\n### Current Action\nright\n\n\
    What is Q(s, a), the discounted cumulative reward (discount factor γ=0.9)? Answer in <answer></answer> tags.";

fn ask() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::text(Role::User, QUESTION)],
        sampling: Sampling::default(),
    }
}

fn stack(server: &TestServer, f: impl FnOnce(StackBuilder) -> StackBuilder) -> (Arc<dyn Backend>, Arc<UsageCounter>) {
    let b = f(StackBuilder::new(
        OpenAiBackend::new(OpenAiConfig::new(server.base_url(), "oracle")).unwrap(),
    ));
    let c = b.counter();
    (b.build().unwrap(), c)
}

#[tokio::test]
async fn an_answer_cut_off_at_the_token_limit_is_asked_for_once_more() {
    let server = TestServer::start(ServerConfig {
        rules: vec![Rule::new(Selector::Any, Fault::Truncated).times(1)],
        ..Default::default()
    });
    let (b, usage) = stack(&server, |s| s.second_elicitation(Some(512)));
    let r = b.chat(&ask()).await.unwrap();
    assert_eq!(server.requests(), 2, "the cut reply and one follow-up");
    assert_eq!(usage.second_elicitations.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(usage.snapshot()["requests"], 1, "one logical request");
    // The follow-up carried the cut reply, closed, and the published prompt.
    let prompts = server.prompts();
    assert_eq!(prompts.last().unwrap(), SECOND_ELICITATION_PROMPT);
    assert!(
        r.text.starts_with("<think>Let me look") && r.text.contains("</think>"),
        "{}",
        r.text
    );
    let v = extract_number(&qval_llm::strip_thinking(&r.text)).unwrap();
    assert!((v - 0.9f64.powi(5)).abs() < 1e-6, "the answer of the follow-up: {v}");
    assert_eq!(r.usage.prompt_tokens, 200, "tokens of both requests");
    // A complete answer is not asked again.
    b.chat(&ChatRequest {
        messages: vec![Message::text(Role::User, format!("{QUESTION} again"))],
        sampling: Sampling::default(),
    })
    .await
    .unwrap();
    assert_eq!(server.requests(), 3);
    // Off (the default without thinking), the cut reply stands.
    let cutting = TestServer::start(ServerConfig {
        rules: vec![Rule::new(Selector::Any, Fault::Truncated).times(1)],
        ..Default::default()
    });
    let (plain, _) = stack(&cutting, |s| s);
    let cut = plain.chat(&ask()).await.unwrap();
    assert!(cut.truncated() && extract_number(&cut.text).is_err());
}

#[tokio::test]
async fn an_exhausted_quota_is_waited_out_then_recorded_with_the_reason() {
    let schedule = quota_schedule(Duration::from_millis(100));
    assert_eq!(
        schedule,
        vec![Duration::from_millis(100)],
        "the published 5 min cut to the longest wait"
    );
    let waits = vec![Duration::from_millis(60), Duration::from_millis(60)];
    // Exhausted twice, then served: two waits, three requests.
    let server = TestServer::start(ServerConfig {
        rules: vec![Rule::new(Selector::Any, Fault::QuotaExhausted).times(2)],
        ..Default::default()
    });
    let (b, usage) = stack(&server, |s| s.quota_wait(waits.clone()));
    let t = Instant::now();
    let r = b.chat(&ask()).await.unwrap();
    assert!(r.text.contains("<answer>"));
    assert!(t.elapsed() >= Duration::from_millis(120), "{:?}", t.elapsed());
    assert_eq!(server.requests(), 3);
    assert_eq!(usage.snapshot()["quota_waits"], 2);
    assert!(usage.waiting.lock().unwrap().is_none(), "no longer waiting");
    // Still exhausted after every wait: the error stands, with the reason.
    let server = TestServer::start(ServerConfig {
        rules: vec![Rule::new(Selector::Any, Fault::QuotaExhausted)],
        ..Default::default()
    });
    let (b, usage) = stack(&server, |s| s.quota_wait(waits.clone()));
    let probe = {
        let usage = usage.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            usage.waiting.lock().unwrap().clone()
        })
    };
    let e = b.chat(&ask()).await.unwrap_err();
    assert!(matches!(e, LlmError::Quota(_)), "{e}");
    assert!(e.to_string().contains("still exhausted after waiting"), "{e}");
    assert_eq!(server.requests(), 3, "the first try and one after each wait");
    let shown = probe.await.unwrap().expect("the wait is visible while it lasts");
    assert!(
        shown.contains("quota exhausted: waiting") && shown.contains("retry 1 of 2"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_request_log_holds_whole_lines_only_after_a_torn_write() {
    let server = TestServer::start(ServerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("llm-requests.jsonl");
    // What a full disk or a kill leaves: one whole line, then part of the next.
    std::fs::write(&log, "{\"t_ms\": 1, \"request\": {}}\n{\"t_ms\": 2, \"requ").unwrap();
    let (backend, _) = stack(&server, |b| b.log(&log));
    backend.chat(&ask()).await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in lines {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("a torn line {l:?}: {e}"));
    }
}

/// A backend in the test itself: answers with 10 prompt tokens and records what it is told.
struct Probe {
    unparsed: std::sync::Mutex<Vec<ChatRequest>>,
}

#[async_trait::async_trait]
impl Backend for Probe {
    fn name(&self) -> String {
        "probe".into()
    }
    fn capabilities(&self) -> qval_llm::Capabilities {
        qval_llm::Capabilities {
            logprobs: true,
            images: false,
            scoring: true,
        }
    }
    async fn chat(&self, request: &ChatRequest) -> Result<qval_llm::ChatResponse, LlmError> {
        if request.messages[0].joined_text() == "fail" {
            return Err(LlmError::Unsupported("a permanent failure".into()));
        }
        Ok(qval_llm::ChatResponse {
            text: "<answer>0.5</answer>".into(),
            usage: qval_llm::Usage {
                prompt_tokens: 10,
                completion_tokens: 3,
            },
            logprobs: None,
            model: "probe".into(),
            finish_reason: Some("stop".into()),
            cached: false,
        })
    }
    async fn score(&self, _request: &qval_llm::ScoreRequest) -> Result<qval_llm::ScoreResponse, LlmError> {
        Ok(qval_llm::ScoreResponse {
            tokens: vec![],
            usage: qval_llm::Usage {
                prompt_tokens: 7,
                completion_tokens: 0,
            },
            model: "probe".into(),
            cached: false,
        })
    }
    fn unparsed(&self, request: &ChatRequest) {
        self.unparsed.lock().unwrap().push(request.clone());
    }
}

#[tokio::test]
async fn every_layer_hands_name_capabilities_and_unparsed_inwards_and_usage_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe {
        unparsed: Default::default(),
    });
    let builder = StackBuilder::new(probe.clone())
        .log(dir.path().join("requests.jsonl"))
        .cache(dir.path().join("cache"))
        .quota_wait(vec![Duration::from_millis(1)])
        .second_elicitation(Some(512));
    let inner_usage = builder.counter();
    // The stack's own meter sits inside the cache; a method's meter wraps the whole stack.
    let usage = Arc::new(UsageCounter::default());
    let b = qval_llm::Metered::new(builder.build().unwrap(), usage.clone());
    assert_eq!(b.name(), "probe");
    assert_eq!(b.capabilities(), probe.capabilities());

    // Sent once, then served by the cache: counted apart.
    b.chat(&ask()).await.unwrap();
    assert!(b.chat(&ask()).await.unwrap().cached);
    let s = usage.snapshot();
    assert_eq!(
        (s["requests"].clone(), s["prompt_tokens"].clone()),
        (1.into(), 10.into())
    );
    assert_eq!(
        (s["completion_tokens"].clone(), s["cache_hits"].clone()),
        (3.into(), 1.into())
    );
    assert_eq!(
        (s["cached_prompt_tokens"].clone(), s["cached_completion_tokens"].clone()),
        (10.into(), 3.into())
    );

    assert_eq!(
        inner_usage.snapshot()["requests"],
        1,
        "the cache hit never reaches the inner meter"
    );

    // The notice reaches the backend, and the cache marks its entry.
    b.unparsed(&ask());
    assert_eq!(*probe.unparsed.lock().unwrap(), vec![ask()]);
    let shard = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let entry = std::fs::read_dir(shard.path()).unwrap().next().unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
    assert_eq!(v["parsed"], false);

    // Scoring passes every layer; a failure counts as a request and a failure.
    let scored = b
        .score(&qval_llm::ScoreRequest {
            messages: ask().messages,
            continuation: "0.5".into(),
        })
        .await
        .unwrap();
    assert_eq!(scored.usage.prompt_tokens, 7);
    let fail = ChatRequest {
        messages: vec![Message::text(Role::User, "fail")],
        sampling: Sampling::default(),
    };
    assert!(matches!(b.chat(&fail).await, Err(LlmError::Unsupported(_))));
    let s = usage.snapshot();
    assert_eq!((s["requests"].clone(), s["failures"].clone()), (3.into(), 1.into()));
    assert_eq!(s["prompt_tokens"], 17);
}
