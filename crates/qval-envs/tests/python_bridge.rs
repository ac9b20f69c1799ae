//! The Python bridge: bridged gymnasium FrozenLake against the native one, the published
//! maps, the shipped adapters through the conformance checker, and faulty adapters. (The
//! quickstart's dataset built through the bridge, every label included, is checked against the
//! native one in the root package's tests/bridged_quickstart.rs: it needs qval-testkit, which
//! depends on this crate.)
//!
//! Needs Python 3 with gymnasium (`pip install gymnasium==1.2.0`); without it these tests fail
//! and say so.

mod common;

use common::python::{GYMNASIUM, need};
use common::repo;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qval_core::seed::rng_for;
use qval_core::{Environment, check_environment};
use qval_envs::frozenlake::solver::{policy_values, reference_policy};
use qval_envs::frozenlake::{FrozenLake, FrozenLakeAction, OptimalPolicy};
use qval_envs::python::{PythonEnv, Restore};

fn faulty(class: &str) -> String {
    format!("{}/tests/adapters/faulty.py:{class}", env!("CARGO_MANIFEST_DIR"))
}

fn bridged_frozenlake(slippery: bool, workers: usize) -> PythonEnv {
    need(&GYMNASIUM);
    PythonEnv::builder("qval_bridge.adapters.gym_frozenlake:FrozenLakeAdapter")
        .args(json!({"maps": "published", "slippery": slippery}))
        .workers(workers)
        .build()
        .unwrap()
}

fn assert_reaped(pids: &[u32]) {
    assert!(!pids.is_empty());
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} is still running after the environment dropped"
        );
    }
}

#[test]
fn committed_published_maps_equal_what_gymnasium_generates() {
    need(&GYMNASIUM);
    let out = std::process::Command::new("python3")
        .arg(repo().join("scripts/gen_published_maps.py"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh: Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: Value = serde_json::from_str(qval_envs::frozenlake::PUBLISHED_MAPS_JSON).unwrap();
    assert_eq!(fresh["maps"], committed["maps"]);
    assert_eq!(fresh["task_order"], committed["task_order"]);
    assert_eq!(committed["maps"].as_array().unwrap().len(), 8);
    // Native FrozenLake on them.
    let native = FrozenLake::builder().published_maps().build().unwrap();
    let rows: Vec<Value> = native.tasks().iter().map(|t| t.params["map"].clone()).collect();
    assert_eq!(Value::Array(rows), committed["maps"]);
}

/// Every transition of random episodes (with unparseable texts among the actions), the
/// reference actions and the exact values on the visited states.
fn agree(slippery: bool) {
    let native = FrozenLake::builder()
        .published_maps()
        .slippery(slippery)
        .build()
        .unwrap();
    let bridged = bridged_frozenlake(slippery, 2);
    let optimal = OptimalPolicy::for_env(&native);
    let (nt, bt) = (native.tasks(), bridged.tasks());
    assert_eq!(nt.len(), bt.len());
    // What methods are told: the published descriptions on the published maps, unless slippery.
    let (ns, bs) = (native.spec(), bridged.spec());
    assert_eq!((&ns.notes, &ns.reward_description), (&bs.notes, &bs.reward_description));
    assert_eq!(ns.notes == qval_envs::frozenlake::PUBLISHED_TASK, !slippery);
    let gamma = 0.95;
    let mut transitions = 0;
    for ep in 0..48u64 {
        let t = (ep % 8) as usize;
        assert_eq!(nt[t].params, bt[t].params);
        let mut ns = native.reset(&nt[t], &mut rng_for(1, &[ep])).unwrap();
        let mut bs = bridged.reset(&bt[t], &mut rng_for(1, &[ep])).unwrap();
        let mut walk = rng_for(2, &[ep]);
        for step in 0..native.spec().max_steps {
            assert_eq!(
                native.observe(&ns).text,
                bridged.observe(&bs).text,
                "episode {ep} step {step}"
            );
            let legal: Vec<Value> = native
                .legal_actions(&ns)
                .unwrap()
                .iter()
                .map(|a| serde_json::to_value(a).unwrap())
                .collect();
            assert_eq!(Some(legal), bridged.legal_actions(&bs));
            // Reference action and exact values with the remaining budget.
            let h = native.spec().max_steps - step;
            let policy = reference_policy(&ns.map, slippery, gamma);
            if !ns.tile().is_terminal() {
                assert_eq!(
                    serde_json::to_value(FrozenLakeAction::from_index(optimal.action(&ns))).unwrap(),
                    bridged.reference_action(&bs).unwrap()
                );
            }
            let values = policy_values(&ns.map, slippery, gamma, &policy, h);
            let v_native = if ns.tile().is_terminal() { 0.0 } else { values.v[ns.pos] };
            let v_bridged = bridged.exact_value(&bs, None, gamma, h).unwrap();
            assert_eq!(v_native.to_bits(), v_bridged.to_bits(), "V {v_native} vs {v_bridged}");
            for a in 0..4 {
                let q_native = if ns.tile().is_terminal() {
                    0.0
                } else {
                    values.q[ns.pos][a]
                };
                let act = serde_json::to_value(FrozenLakeAction::from_index(a)).unwrap();
                let q_bridged = bridged.exact_value(&bs, Some(&act), gamma, h).unwrap();
                assert_eq!(q_native.to_bits(), q_bridged.to_bits(), "Q {q_native} vs {q_bridged}");
            }
            // One random action, now and then an unparseable text.
            let text = match rand::Rng::random_range(&mut walk, 0..9) {
                8 => "jump!".to_string(),
                i => ["left", "down", "right", "up", "0", "1", "2", " Up."][i].to_string(),
            };
            let na = native.parse_action(&text);
            let ba = bridged.parse_action(&text);
            assert_eq!(serde_json::to_value(&na).unwrap(), ba, "parse {text:?}");
            assert_eq!(native.render_action(&na), bridged.render_action(&ba));
            let seed = rand::Rng::random::<u64>(&mut walk);
            let n = native.step(&ns, &na, &mut rng_for(seed, &[])).unwrap();
            let b = bridged.step(&bs, &ba, &mut rng_for(seed, &[])).unwrap();
            transitions += 1;
            assert_eq!(n.reward.to_bits(), b.reward.to_bits(), "episode {ep} step {step}");
            assert_eq!(n.terminated, b.terminated, "episode {ep} step {step}");
            assert_eq!(native.observe(&n.state).text, bridged.observe(&b.state).text);
            if n.terminated {
                break;
            }
            ns = n.state;
            bs = b.state;
        }
    }
    assert!(transitions > 300, "{transitions} transitions");
    let pids = bridged.worker_pids();
    drop(bridged);
    assert_reaped(&pids);
}

#[test]
fn bridged_frozenlake_agrees_with_native_not_slippery() {
    agree(false);
}

#[test]
fn bridged_frozenlake_agrees_with_native_slippery() {
    agree(true);
}

#[test]
fn shipped_adapters_pass_the_conformance_checker() {
    need(&GYMNASIUM);
    for slippery in [false, true] {
        let env = bridged_frozenlake(slippery, 1);
        check_environment(&env, 3, 7).unwrap();
    }
    for adapter in [
        "qval_bridge.adapters.gym_toytext:TaxiAdapter",
        "qval_bridge.adapters.gym_toytext:CliffWalkingAdapter",
    ] {
        let env = PythonEnv::builder(adapter).args(json!({"tasks": 3})).build().unwrap();
        check_environment(&env, 2, 7).unwrap();
    }
    for class in ["Walk", "ReplayWalk"] {
        let env = PythonEnv::builder(faulty(class)).workers(2).build().unwrap();
        check_environment(&env, 5, 7).unwrap();
    }
}

#[test]
fn an_impure_adapter_is_caught() {
    let env = PythonEnv::builder(faulty("Impure")).build().unwrap();
    let err = check_environment(&env, 2, 7).unwrap_err().to_string();
    assert!(err.contains("step is not pure"), "{err}");
}

#[test]
fn replay_states_restore_from_json_on_any_worker() {
    let env = PythonEnv::builder(faulty("ReplayWalk")).workers(2).build().unwrap();
    let task = &env.tasks()[0];
    let mut s = env.reset(task, &mut rng_for(0, &[])).unwrap();
    for i in 0..3 {
        s = env.step(&s, &json!("right"), &mut rng_for(9, &[i])).unwrap().state;
    }
    let Restore::Replay(r) = &s.restore else {
        panic!("a replay state")
    };
    assert_eq!(r.history.len(), 3);
    assert!(r.history.iter().all(|h| h.draws.len() == 1));
    let stored = serde_json::to_string(&s).unwrap();
    let back: qval_envs::python::PythonState = serde_json::from_str(&stored).unwrap();
    let a = env.step(&back, &json!("right"), &mut rng_for(5, &[])).unwrap();
    let b = env.step(&s, &json!("right"), &mut rng_for(5, &[])).unwrap();
    assert_eq!(a.state.observation, b.state.observation);
    assert_eq!(a.state.key(), b.state.key());
}

#[test]
fn equal_snapshots_are_stored_once() {
    let env = PythonEnv::builder(faulty("Walk")).build().unwrap();
    let task = &env.tasks()[0];
    let a = env.reset(task, &mut rng_for(0, &[])).unwrap();
    let b = env.reset(task, &mut rng_for(1, &[])).unwrap();
    let (Restore::Snapshot(x), Restore::Snapshot(y)) = (&a.restore, &b.restore) else {
        panic!("snapshot states")
    };
    assert!(x.shares_with(y));
    let json = serde_json::to_value(&a).unwrap();
    assert!(json["restore"]["snapshot"]["sha256"].is_string());
    let back: qval_envs::python::PythonState = serde_json::from_value(json).unwrap();
    let Restore::Snapshot(z) = &back.restore else { panic!() };
    assert!(z.shares_with(x));
}

fn walk_env(class: &str, timeout: Duration) -> (PythonEnv, qval_envs::python::PythonState) {
    let env = PythonEnv::builder(faulty(class)).timeout(timeout).build().unwrap();
    let s = env.reset(&env.tasks()[0], &mut rng_for(0, &[])).unwrap();
    (env, s)
}

#[test]
fn an_adapter_that_raises_gives_its_traceback() {
    let (env, s) = walk_env("Raises", Duration::from_secs(10));
    let t = Instant::now();
    let err = env
        .step(&s, &json!("right"), &mut rng_for(0, &[]))
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(err.contains("ValueError: the adapter broke on purpose"), "{err}");
    assert!(
        err.contains("Traceback (most recent call last)") && err.contains("faulty.py"),
        "{err}"
    );
    assert_eq!(env.restarts(), 0, "an exception is an answer: no restart");
    // The worker still serves.
    assert!(env.reset(&env.tasks()[0], &mut rng_for(0, &[])).is_ok());
    let pids = env.worker_pids();
    drop(env);
    assert_reaped(&pids);
}

#[test]
fn an_adapter_that_hangs_is_killed_restarted_and_retried_once() {
    let (env, s) = walk_env("Hangs", Duration::from_millis(800));
    let t = Instant::now();
    let err = env
        .step(&s, &json!("right"), &mut rng_for(0, &[]))
        .unwrap_err()
        .to_string();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1600) && took < Duration::from_secs(20),
        "{took:?}"
    );
    assert!(err.contains("did not answer `step` within 0.8 s"), "{err}");
    assert!(err.contains("twice"), "{err}");
    assert_eq!(env.restarts(), 2);
    let pids = env.worker_pids();
    assert_eq!(pids.len(), 3, "the first worker and two replacements");
    for pid in &pids[..2] {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "hung worker {pid} still runs"
        );
    }
    drop(env);
    assert_reaped(&pids);
}

/// MVMC labelling through the bridge when some forced actions fail: a point whose step raises
/// is aborted with Python's traceback, one whose step hangs is aborted after the restart and
/// the one retry, and every other point gets its label; nothing panics, no worker is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_points_are_aborted_with_the_reason_and_the_others_labelled() {
    use qval_core::{EvaluationPoint, LabelConfig, MvmcConfig, MvmcLabeler, StageOptions, label};
    use qval_envs::python::ReferencePolicy;
    let env = Arc::new(
        PythonEnv::builder(faulty("BreaksOnLeft"))
            .workers(2)
            .timeout(Duration::from_millis(800))
            .build()
            .unwrap(),
    );
    let task = env.tasks()[0].clone();
    // States at cells 0..=5: reset, then `right` steps drawn until each cell is reached.
    let mut states = vec![env.reset(&task, &mut rng_for(0, &[])).unwrap()];
    let mut seed = 0;
    while states.len() < 6 {
        seed += 1;
        let last = states.last().unwrap();
        let next = env.step(last, &json!("right"), &mut rng_for(seed, &[])).unwrap().state;
        if next.observation == format!("at {}", states.len()) {
            states.push(next);
        }
    }
    let point = |cell: usize, action: &str| {
        let state = &states[cell];
        EvaluationPoint {
            id: format!("c{cell}-{action}"),
            trajectory_index: 0,
            step_index: cell,
            task: task.clone(),
            history: Vec::new(),
            state: serde_json::to_value(state).unwrap(),
            observation: env.observe(state),
            action: json!(action),
            action_text: action.to_string(),
            reward: 0.0,
            next_state: Value::Null,
            next_observation: env.observe(state),
            terminated: false,
            candidate_of: None,
            thought: None,
        }
    };
    let points = vec![
        point(0, "right"),
        point(1, "right"),
        point(1, "left"),
        point(2, "left"),
        point(3, "left"),
        point(3, "right"),
        point(4, "left"),
        point(5, "right"),
    ];
    let labeler = MvmcLabeler::new(
        env.clone(),
        Arc::new(ReferencePolicy),
        MvmcConfig::builder().rollouts(1).build().unwrap(),
    );
    let t = Instant::now();
    let labels = label(&labeler, &points, &LabelConfig::default(), &StageOptions::default())
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_eq!(labels.len(), 8);
    let by = |id: &str| labels.iter().find(|l| l.point_id == id).unwrap();
    for ok in ["c0-right", "c1-right", "c1-left", "c3-left", "c3-right", "c5-right"] {
        let l = by(ok);
        assert!(l.aborted.is_none() && l.value > 0.0, "{l:?}");
    }
    let raised = by("c2-left")
        .aborted
        .clone()
        .expect("the raising step aborts its point");
    assert!(
        raised.contains("RuntimeError: left from 2 broke on purpose"),
        "{raised}"
    );
    assert!(raised.contains("Traceback (most recent call last)"), "{raised}");
    let hung = by("c4-left")
        .aborted
        .clone()
        .expect("the hanging step aborts its point");
    assert!(
        hung.contains("did not answer `step` within 0.8 s") && hung.contains("twice"),
        "{hung}"
    );
    assert!(hung.starts_with("environment `walk`"), "{hung}");
    assert!(by("c2-left").value.is_nan() && by("c4-left").value.is_nan());
    let pids = env.worker_pids();
    drop(labeler);
    drop(env);
    assert_reaped(&pids);
}

/// A reference policy that raises: MVMC cannot label, and says which environment and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raising_reference_policy_names_the_environment_and_keeps_the_traceback() {
    use qval_core::{EvaluationPoint, LabelConfig, MvmcConfig, MvmcLabeler, StageOptions, label};
    use qval_envs::python::ReferencePolicy;
    let env = Arc::new(PythonEnv::builder(faulty("BadReference")).build().unwrap());
    let task = env.tasks()[0].clone();
    let state = env.reset(&task, &mut rng_for(0, &[])).unwrap();
    let point = EvaluationPoint {
        id: "p".into(),
        trajectory_index: 0,
        step_index: 0,
        task,
        history: Vec::new(),
        state: serde_json::to_value(&state).unwrap(),
        observation: env.observe(&state),
        action: json!("left"),
        action_text: "left".into(),
        reward: 0.0,
        next_state: Value::Null,
        next_observation: env.observe(&state),
        terminated: false,
        candidate_of: None,
        thought: None,
    };
    let labeler = MvmcLabeler::new(
        env.clone(),
        Arc::new(ReferencePolicy),
        MvmcConfig::builder().rollouts(1).build().unwrap(),
    );
    let err = label(&labeler, &[point], &LabelConfig::default(), &StageOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("environment `walk`"), "{err}");
    assert!(
        err.contains("KeyError: 'no reference here'") && err.contains("Traceback"),
        "{err}"
    );
}

#[test]
fn an_adapter_that_exits_is_restarted_and_retried_once() {
    let (env, s) = walk_env("Exits", Duration::from_secs(10));
    let t = Instant::now();
    let err = env
        .step(&s, &json!("right"), &mut rng_for(0, &[]))
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(err.contains("exited (exit status: 3)"), "{err}");
    assert!(err.contains("about to exit"), "the worker's stderr is kept: {err}");
    assert_eq!(env.restarts(), 2);
    let pids = env.worker_pids();
    drop(env);
    assert_reaped(&pids);
}

#[test]
fn a_worker_that_dies_once_is_replaced_and_the_step_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("died-once");
    let env = PythonEnv::builder(faulty("Flaky"))
        .args(json!({"marker": marker}))
        .build()
        .unwrap();
    let s = env.reset(&env.tasks()[0], &mut rng_for(0, &[])).unwrap();
    let clean = PythonEnv::builder(faulty("Walk")).build().unwrap();
    let cs = clean.reset(&clean.tasks()[0], &mut rng_for(0, &[])).unwrap();
    let out = env.step(&s, &json!("right"), &mut rng_for(3, &[])).unwrap();
    let expected = clean.step(&cs, &json!("right"), &mut rng_for(3, &[])).unwrap();
    assert!(marker.exists());
    assert_eq!(env.restarts(), 1);
    assert_eq!(
        out.state.observation, expected.state.observation,
        "the retry saw the same draws"
    );
    let pids = env.worker_pids();
    drop(env);
    assert_reaped(&pids);
}

#[test]
fn an_adapter_tells_methods_about_itself_through_its_profile() {
    // The bridged FrozenLake gives the native environment's scoring wording, and no more.
    let bridged = bridged_frozenlake(false, 1).profile();
    let native = FrozenLake::builder().published_maps().build().unwrap().profile();
    assert_eq!(bridged.scoring(), native.scoring());
    assert_eq!(bridged.scoring(), &qval_envs::frozenlake::scoring_wording());
    assert!(bridged.goal_texts().is_none() && bridged.image_goal_texts().is_none());
    // An adapter without profile(): the generic profile.
    let taxi = PythonEnv::builder("qval_bridge.adapters.gym_toytext:TaxiAdapter")
        .args(json!({"tasks": 1}))
        .build()
        .unwrap();
    assert_eq!(taxi.profile(), qval_core::EnvProfile::default());
    // A profile's missing fields keep the generic texts.
    let own = PythonEnv::builder(faulty("Profiled")).build().unwrap().profile();
    assert_eq!(own.scoring().response_heading, "**What The Walk Did:**");
    assert_eq!(
        own.scoring().student_opening,
        qval_core::EnvProfile::default().scoring().student_opening
    );
    assert_eq!(own.goal_texts().unwrap().baseline, "a line of cells");
    let err = PythonEnv::builder(faulty("BadProfile"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("profile() is not a valid profile") && err.contains("unknown field `student_openin`"),
        "{err}"
    );
}

#[test]
fn a_missing_package_names_the_pip_command() {
    let err = PythonEnv::builder(faulty("NeedsMissing")).build().unwrap_err();
    assert!(
        matches!(
            err,
            qval_envs::EnvsError::Python(qval_envs::python::PyError::MissingPackage { .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("pip install qval-no-such-package==1.0"),
        "{err}"
    );
}

#[test]
fn the_builder_validates_its_settings() {
    use qval_envs::EnvsError::InvalidParameter;
    let name = |e: qval_envs::EnvsError| match e {
        InvalidParameter { name, .. } => name,
        other => panic!("{other}"),
    };
    assert_eq!(name(PythonEnv::builder("no_colon").build().unwrap_err()), "adapter");
    assert_eq!(
        name(PythonEnv::builder("/nowhere/x.py:A").build().unwrap_err()),
        "adapter"
    );
    assert_eq!(
        name(PythonEnv::builder(faulty("Walk")).workers(0).build().unwrap_err()),
        "workers"
    );
    assert_eq!(
        name(
            PythonEnv::builder(faulty("Walk"))
                .timeout(Duration::ZERO)
                .build()
                .unwrap_err()
        ),
        "timeout"
    );
    assert_eq!(
        name(
            PythonEnv::builder(faulty("Walk"))
                .python("/no/such/python")
                .build()
                .unwrap_err()
        ),
        "python"
    );
    assert_eq!(
        name(PythonEnv::builder(faulty("Walk")).args(json!([1])).build().unwrap_err()),
        "args"
    );
}

#[test]
fn taxi_and_cliffwalking_have_finite_exact_values_and_a_reference_that_reaches_the_goal() {
    need(&GYMNASIUM);
    for adapter in [
        "qval_bridge.adapters.gym_toytext:TaxiAdapter",
        "qval_bridge.adapters.gym_toytext:CliffWalkingAdapter",
    ] {
        let env = Arc::new(PythonEnv::builder(adapter).build().unwrap());
        assert!(env.has_reference() && env.has_exact());
        let max = env.spec().max_steps;
        for task in env.tasks() {
            let mut s = env.reset(&task, &mut rng_for(0, &[])).unwrap();
            let v0 = env.exact_value(&s, None, 0.95, max).unwrap();
            assert!(v0.is_finite(), "{adapter} {}: {v0}", task.id);
            for a in env.legal_actions(&s).unwrap() {
                assert!(env.exact_value(&s, Some(&a), 0.95, max).unwrap().is_finite());
            }
            let mut reached = false;
            let mut ret = 0.0;
            for t in 0..max {
                let a = env.reference_action(&s).unwrap();
                let out = env.step(&s, &a, &mut rng_for(0, &[t as u64])).unwrap();
                ret += 0.95f64.powi(t as i32) * out.reward;
                s = out.state;
                if out.terminated {
                    reached = true;
                    break;
                }
            }
            assert!(reached, "{adapter} {}: the reference did not reach the goal", task.id);
            // Deterministic: the exact value from reset is the reference's discounted return.
            assert!((ret - v0).abs() < 1e-9, "{adapter} {}: {ret} vs {v0}", task.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toy_text_success_is_the_goal_cell_or_the_drop_off_not_a_positive_reward() {
    use qval_core::{CollectConfig, StageOptions, collect};
    use qval_envs::python::ReferencePolicy;
    need(&GYMNASIUM);
    for (adapter, default_rule) in [
        // Every CliffWalking step costs -1, the goal's too: the default rule counts none.
        ("qval_bridge.adapters.gym_toytext:CliffWalkingAdapter", false),
        ("qval_bridge.adapters.gym_toytext:TaxiAdapter", true),
    ] {
        let env = PythonEnv::builder(adapter).build().unwrap();
        let config = CollectConfig::new(3, 42, 16).unwrap();
        let all = collect(&env, &ReferencePolicy, &env.tasks(), &config, &StageOptions::default())
            .await
            .unwrap();
        for t in &all {
            assert!(env.succeeded(t), "{adapter}: the reference reached the goal");
            assert_eq!(t.succeeded(), default_rule, "{adapter}");
            assert_eq!(t.transitions[0].state["success"], json!(false), "{adapter}");
            // The cut trajectory did not get there.
            let mut cut = t.clone();
            cut.transitions.pop();
            assert!(!env.succeeded(&cut), "{adapter}");
        }
    }
}
