//! The acting agent's reasoning, kept and shown as published: an LLM agent's `<thought>` (or
//! `Thought: ... Action:`) is kept with each step it collects; prompts with
//! `include_history_thoughts` show `[Turn t/M - Reasoning]` after each history state, with
//! `include_current_thoughts` an `## Actor's Reasoning` section after the current state, and
//! either adds the published guidance block before the evaluation instructions.

mod common;

use std::time::Duration;

use common::{http_backend, user_text};
use qval_core::{CollectConfig, Environment, EvaluationPoint, MethodContext, Signal, StageOptions, collect};
use qval_envs::frozenlake::FrozenLake;
use qval_methods::llm::prompt::direct_messages;
use qval_methods::llm::{Capabilities, LlmAgent, Part};
use qval_testkit::{ServerConfig, TestServer};

const GUIDANCE: &str = "The provided information includes the acting agent's brief reasoning at each step, \
representing their stated rationale for each action. This provides context about the agent's decision-making \
process, which may help you better assess the quality and consequences of the chosen actions. Your evaluation \
should focus on the actual quality of the actions and resulting states.";

fn system_text(m: &qval_methods::llm::Message) -> String {
    match &m.parts[..] {
        [Part::Text { text }] => text.clone(),
        other => panic!("one text part: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_reasoning_is_kept_per_step_and_shown_where_asked() {
    let server = TestServer::start(ServerConfig {
        agent_script: vec![
            "<thought>The goal is to the south-east; right is safe.</thought>\n<action>right</action>".into(),
            "Thought: a hole lies below, keep going right\nAction: <action>right</action>".into(),
            "<action>down</action>".into(),
        ],
        ..Default::default()
    });
    let env = FrozenLake::builder().preset_8x8().build().unwrap();
    let agent = LlmAgent::new(http_backend(&server, Capabilities::default(), Duration::from_secs(10)).0);
    let config = CollectConfig::new(1, 7, 16).unwrap();
    let t = collect(&env, &agent, &env.tasks()[..1], &config, &StageOptions::default())
        .await
        .unwrap();
    let thoughts: Vec<Option<&str>> = t[0].transitions.iter().take(3).map(|x| x.thought.as_deref()).collect();
    assert_eq!(
        thoughts,
        vec![
            Some("The goal is to the south-east; right is safe."),
            Some("a hole lies below, keep going right"),
            None
        ]
    );
    assert!(t[0].transitions.len() >= 3, "three decisions at least");
    let point = EvaluationPoint::from_trajectory(&t[0], 2);
    assert_eq!(
        point.history[1].thought.as_deref(),
        Some("a hole lies below, keep going right")
    );
    let point1 = EvaluationPoint::from_trajectory(&t[0], 1);
    assert_eq!(point1.thought.as_deref(), Some("a hole lies below, keep going right"));

    let base = MethodContext::for_env(&env);
    let opts = Default::default();
    // Off (the default): nothing of the reasoning.
    let plain = direct_messages(&point1, &base, Signal::Q, &opts);
    assert!(!user_text(&plain).contains("Reasoning") && !system_text(&plain[0]).contains(GUIDANCE));

    let ctx = MethodContext {
        include_current_thoughts: true,
        include_history_thoughts: true,
        ..base.clone()
    };
    let m = direct_messages(&point1, &ctx, Signal::Q, &opts);
    let system = system_text(&m[0]);
    let user = user_text(&m);
    // The guidance right before the evaluation instructions.
    assert!(
        system.contains(&format!("{GUIDANCE}\n\nYou will receive the episode's")),
        "{system}"
    );
    // History: the turn's reasoning on the lines after its state, in the same block.
    let first = &point1.history[0];
    assert!(
        user.contains(&format!(
            "[Turn 1/{m} - State]\n{}\n[Turn 1/{m} - Reasoning]\nThe goal is to the south-east; right is safe.\n\n\
             [Turn 1/{m} - Action]\nright",
            first.observation,
            m = ctx.max_steps
        )),
        "{user}"
    );
    // The current reasoning after the current state, before the current action.
    let reasoning = user.find("\n\n## Actor's Reasoning\na hole lies below, keep going right\n\n### Current Action\n");
    let state = user.find("### Current State");
    assert!(reasoning.is_some() && state < reasoning, "{user}");
    // Only the history: no current section; only the current: no history lines.
    let history_only = MethodContext {
        include_current_thoughts: false,
        ..ctx.clone()
    };
    let u = user_text(&direct_messages(&point1, &history_only, Signal::Q, &opts));
    assert!(
        u.contains("- Reasoning]\n") && !u.contains("## Actor's Reasoning"),
        "{u}"
    );
    let current_only = MethodContext {
        include_history_thoughts: false,
        ..ctx
    };
    let u = user_text(&direct_messages(&point1, &current_only, Signal::Q, &opts));
    assert!(
        !u.contains("- Reasoning]\n") && u.contains("## Actor's Reasoning"),
        "{u}"
    );
}
