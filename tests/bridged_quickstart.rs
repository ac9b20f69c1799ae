//! The quickstart's dataset built twice, natively and through the Python bridge on
//! gymnasium's FrozenLake, must be the same dataset: every trajectory, every point, every
//! MVMC label and every exact Q, V and advantage label (issue 15).
//!
//! The native side is `qval_testkit::quickstart_data()` (8 random 8x8 maps drawn with map
//! seed 42, 50 epsilon-greedy (0.1) trajectories with seed 42, 5 random points per trajectory
//! with sampling seed 42, MVMC Q labels with one rollout of the optimal policy). The bridged
//! side runs the same stages with the same settings on the same maps, through
//! `qval_bridge.adapters.gym_frozenlake:FrozenLakeAdapter`: the bridge's epsilon-greedy
//! collector (which draws as the native one does) and, for the labels, the adapter's own
//! reference policy (`ReferencePolicy`, its `reference_action`). The native `OptimalPolicy`
//! cannot drive the bridged environment (it is a `Policy<FrozenLake>` over
//! `FrozenLakeState`), and using the adapter's reference is the stronger check anyway: the
//! whole bridged pipeline, reference included, must reproduce the native labels.
//!
//! States differ in type (`FrozenLakeState` against `PythonState`, whose snapshot is the
//! adapter's JSON `[cell, error]`), so states are compared by what both carry: the agent's
//! cell, the wasted-turn error and the map. Everything else (ids, observations, actions,
//! action texts, rewards, termination, histories, whole labels with their rollout returns and
//! expert summaries) is compared for equality, floats bit for bit.
//!
//! Needs Python 3 with gymnasium (`pip install gymnasium==1.2.0`); without it the test fails
//! and says so.

mod common;

use common::python::{GYMNASIUM, need};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

use qval::envs::frozenlake::ExactLabeler as NativeExact;
use qval::envs::frozenlake::FrozenLakeState;
use qval::envs::python::{
    EpsilonGreedy, ExactLabeler as BridgedExact, PythonEnv, PythonState, ReferencePolicy, Restore,
};
use qval::{
    CollectConfig, LabelConfig, MvmcConfig, MvmcLabeler, SampleConfig, StageOptions, collect, label, sample_points,
};
use qval_core::{Environment, EvaluationPoint, Label, Signal, Trajectory};
use qval_testkit::{QuickstartData, quickstart_data};

/// What a native and a bridged state both carry: the agent's cell and the wasted-turn error.
fn native_cell(state: &Value) -> (usize, Option<String>) {
    let s: FrozenLakeState = serde_json::from_value(state.clone()).expect("a FrozenLake state");
    (s.pos, s.error)
}

fn bridged_cell(state: &Value) -> (usize, Option<String>) {
    let s: PythonState = serde_json::from_value(state.clone()).expect("a Python state");
    let Restore::Snapshot(snap) = &s.restore else {
        panic!("the FrozenLake adapter snapshots its states")
    };
    serde_json::from_slice(snap.bytes()).expect("the adapter's snapshot is [cell, error]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridged_quickstart_dataset_equals_the_native_one() {
    need(&GYMNASIUM);
    let start = Instant::now();
    let native = quickstart_data().await;
    let native_took = start.elapsed();

    // The same maps, step budget and discount, through gymnasium.
    let spec = native.env.spec().clone();
    let maps: Vec<Value> = native.env.tasks().iter().map(|t| t.params["map"].clone()).collect();
    assert_eq!(maps.len(), 8);
    let env = Arc::new(
        PythonEnv::builder("qval_bridge.adapters.gym_frozenlake:FrozenLakeAdapter")
            .args(json!({
                "maps": maps,
                "slippery": native.env.slippery(),
                "max_steps": spec.max_steps,
                "gamma": spec.gamma,
            }))
            .workers(2)
            .build()
            .unwrap(),
    );
    assert_eq!((env.spec().max_steps, env.spec().gamma), (spec.max_steps, spec.gamma));
    let tasks = env.tasks();
    for (n, b) in native.env.tasks().iter().zip(&tasks) {
        assert_eq!(n.params, b.params);
        assert_eq!(b.id, format!("gym-{}", n.id));
    }

    // The quickstart's stages with the quickstart's settings (those of quickstart_data()).
    assert_eq!(native.trajectories.len(), 50);
    assert_eq!(native.trajectories[0].policy, "frozenlake-epsilon-greedy(epsilon=0.1)");
    let bridged_start = Instant::now();
    let trajectories = collect(
        &*env,
        &EpsilonGreedy::new(0.1).unwrap(),
        &tasks,
        &CollectConfig::new(50, 42, 8).unwrap(),
        &StageOptions::default(),
    )
    .await
    .unwrap();
    let points = sample_points(&trajectories, &SampleConfig::builder().seed(42).build().unwrap());
    let labeler = MvmcLabeler::new(
        env.clone(),
        Arc::new(ReferencePolicy),
        MvmcConfig::builder().rollouts(1).build().unwrap(),
    );
    let labels = label(&labeler, &points, &LabelConfig::default(), &StageOptions::default())
        .await
        .unwrap();
    let bridged_took = bridged_start.elapsed();

    let transitions = same_trajectories(&native.trajectories, &trajectories);
    same_points(&native.points, &points);
    let positive = same_labels(&native.labels, &labels);
    // Not a vacuous agreement: many points, many of them with a value to earn.
    assert!(transitions > 400, "{transitions} transitions");
    assert!(points.len() > 150, "{} points", points.len());
    assert!(
        positive > points.len() / 2,
        "{positive} of {} labels positive",
        points.len()
    );
    same_exact_labels(&native, &env, &points).await;

    let mut values: Vec<u64> = labels.iter().map(|l| l.value.to_bits()).collect();
    values.sort_unstable();
    values.dedup();
    assert!(values.len() >= 10, "only {} distinct label values", values.len());
    eprintln!(
        "{} trajectories, {transitions} transitions, {} points, {} labels ({positive} positive): native {:.2?}, bridged {:.2?}",
        trajectories.len(),
        points.len(),
        labels.len(),
        native_took,
        bridged_took,
    );
}

/// Every transition of every trajectory equal (states by what both carry); returns how many.
fn same_trajectories(native: &[Trajectory], bridged: &[Trajectory]) -> usize {
    assert_eq!(bridged.len(), native.len());
    let mut transitions = 0;
    for (n, b) in native.iter().zip(bridged) {
        let at = format!("trajectory {}", n.index);
        assert_eq!(n.index, b.index, "{at}");
        assert_eq!(n.seed, b.seed, "{at}: the collection seed");
        assert_eq!(n.task.params, b.task.params, "{at}: the map");
        assert_eq!(n.transitions.len(), b.transitions.len(), "{at}: length");
        for (nt, bt) in n.transitions.iter().zip(&b.transitions) {
            let at = format!("{at} step {}", nt.step);
            assert_eq!(nt.step, bt.step, "{at}");
            assert_eq!(native_cell(&nt.state), bridged_cell(&bt.state), "{at}: state");
            assert_eq!(nt.observation, bt.observation, "{at}: observation");
            assert_eq!(nt.action, bt.action, "{at}: action");
            assert_eq!(nt.action_text, bt.action_text, "{at}: action text");
            assert_eq!(nt.reward.to_bits(), bt.reward.to_bits(), "{at}: reward");
            assert_eq!(
                native_cell(&nt.next_state),
                bridged_cell(&bt.next_state),
                "{at}: next state"
            );
            assert_eq!(nt.next_observation, bt.next_observation, "{at}: next observation");
            assert_eq!(
                (nt.terminated, nt.truncated),
                (bt.terminated, bt.truncated),
                "{at}: end"
            );
            transitions += 1;
        }
    }

    transitions
}

/// The same points: ids, states, actions, histories.
fn same_points(native: &[EvaluationPoint], bridged: &[EvaluationPoint]) {
    assert_eq!(bridged.len(), native.len());
    for (n, b) in native.iter().zip(bridged) {
        let at = &n.id;
        assert_eq!(n.id, b.id);
        assert_eq!(
            (n.trajectory_index, n.step_index),
            (b.trajectory_index, b.step_index),
            "{at}"
        );
        assert_eq!(n.task.params, b.task.params, "{at}");
        assert_eq!(n.history, b.history, "{at}: history");
        assert_eq!(native_cell(&n.state), bridged_cell(&b.state), "{at}: state");
        assert_eq!(n.observation, b.observation, "{at}: observation");
        assert_eq!(n.action, b.action, "{at}: action");
        assert_eq!(n.action_text, b.action_text, "{at}: action text");
        assert_eq!(n.reward.to_bits(), b.reward.to_bits(), "{at}: reward");
        assert_eq!(
            native_cell(&n.next_state),
            bridged_cell(&b.next_state),
            "{at}: next state"
        );
        assert_eq!(n.next_observation, b.next_observation, "{at}: next observation");
        assert_eq!(n.terminated, b.terminated, "{at}");
        assert_eq!(n.candidate_of, b.candidate_of, "{at}");
    }
}

/// Every label equal (value, rollout returns, expert summary); returns how many are positive.
fn same_labels(native: &[Label], bridged: &[Label]) -> usize {
    assert_eq!(bridged.len(), native.len());
    let mut positive = 0;
    for (n, b) in native.iter().zip(bridged) {
        assert!(n.aborted.is_none() && b.aborted.is_none(), "{n:?} {b:?}");
        assert_eq!(
            n.value.to_bits(),
            b.value.to_bits(),
            "{}: {} vs {}",
            n.point_id,
            n.value,
            b.value
        );
        assert_eq!(n, b);
        positive += usize::from(n.value > 0.0);
    }
    positive
}

/// The exact labels of the reference policy (Q, V and advantage, from the native
/// transition model and from the adapter's, which reads gymnasium's `P`), bit for bit. (The
/// random baseline depends on the point ids only, compared above.)
async fn same_exact_labels(native: &QuickstartData, env: &Arc<PythonEnv>, points: &[EvaluationPoint]) {
    for signal in [Signal::Q, Signal::V, Signal::Advantage] {
        let n = label(
            &NativeExact::new(native.env.clone(), signal, None),
            &native.points,
            &LabelConfig::default(),
            &StageOptions::default(),
        )
        .await
        .unwrap();
        let b = label(
            &BridgedExact::new(env.clone(), signal, None),
            points,
            &LabelConfig::default(),
            &StageOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(n.len(), b.len());
        for (n, b) in n.iter().zip(&b) {
            assert!(n.aborted.is_none() && b.aborted.is_none(), "{n:?} {b:?}");
            assert_eq!(
                n.value.to_bits(),
                b.value.to_bits(),
                "exact {signal:?} at {}",
                n.point_id
            );
        }
    }
}
