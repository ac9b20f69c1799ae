//! TextWorld through the Python bridge (`qval_bridge.adapters.textworld_games`), on the games
//! shipped in `crates/qval-envs/data/textworld/`: the walkthrough wins every game, MVMC labels
//! are the walkthrough's `gamma^(n-1)`, branching from a stored state is repeatable, both
//! purities pass the conformance checker and agree.
//!
//! Needs Python 3 with TextWorld (`pip install textworld==1.6.2`); without it these tests fail
//! and say so.

mod common;

use common::python::{TEXTWORLD, need};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

use qval_core::seed::rng_for;
use qval_core::{
    CollectConfig, Environment, Labeler, MvmcConfig, MvmcLabeler, SampleConfig, Signal, StageOptions,
    check_environment, collect, sample_points,
};
use qval_envs::python::{EpsilonGreedy, ExactLabeler, Purity, PythonEnv, PythonState, ReferencePolicy};

const ADAPTER: &str = "qval_bridge.adapters.textworld_games:TextWorldAdapter";
const GAMMA: f64 = 0.95;

fn textworld(args: Value, workers: usize) -> PythonEnv {
    need(&TEXTWORLD);
    PythonEnv::builder(ADAPTER).args(args).workers(workers).build().unwrap()
}

fn shipped_games() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/textworld");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".z8").map(str::to_string)
        })
        .collect();
    names.sort();
    for n in &names {
        assert!(dir.join(format!("{n}.json")).is_file(), "{n}.z8 has no .json");
    }
    names
}

#[test]
fn the_walkthrough_wins_every_shipped_game_from_reset() {
    let games = shipped_games();
    assert!(games.len() >= 5, "{games:?}");
    for purity in ["snapshot", "replay"] {
        let env = textworld(json!({ "purity": purity }), 1);
        assert_eq!(
            env.purity(),
            if purity == "snapshot" {
                Purity::Snapshot
            } else {
                Purity::Replay
            }
        );
        assert!(env.has_reference() && env.has_exact());
        let tasks = env.tasks();
        let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
        assert_eq!(ids, games);
        let max = env.spec().max_steps;
        for task in &tasks {
            assert!(!task.instruction.is_empty(), "{}: no objective", task.id);
            let mut s = env.reset(task, &mut rng_for(0, &[])).unwrap();
            // The walkthrough's length from reset, as the adapter reads it (0.5^(n-1)).
            let v = env.exact_value(&s, None, 0.5, max).unwrap();
            assert!(v > 0.0, "{}: no walkthrough", task.id);
            let listed = 1 + (-v.log2()).round() as usize;
            let mut won = false;
            let mut steps = 0;
            for t in 0..max {
                let a = env.reference_action(&s).unwrap();
                assert!(
                    env.legal_actions(&s).unwrap().contains(&a),
                    "{}: the walkthrough's {a} is not admissible",
                    task.id
                );
                let out = env.step(&s, &a, &mut rng_for(0, &[t as u64])).unwrap();
                steps += 1;
                s = out.state;
                if out.terminated {
                    assert_eq!(out.reward, 1.0, "{} ({purity}): ended without winning", task.id);
                    assert!(s.observation.contains("*** The End ***"), "{}", s.observation);
                    won = true;
                    break;
                }
                assert_eq!(out.reward, 0.0);
            }
            assert!(
                won,
                "{} ({purity}): the walkthrough did not win in {max} steps",
                task.id
            );
            assert_eq!(
                steps, listed,
                "{}: walked {steps} steps, the walkthrough listed {listed}",
                task.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mvmc_labels_from_sampled_points_are_gamma_to_the_walkthrough_length() {
    let env = Arc::new(textworld(json!({ "max_steps": 30 }), 2));
    let tasks = env.tasks();
    let config = CollectConfig::new(2 * tasks.len(), 3, 2).unwrap();
    let policy = EpsilonGreedy::new(0.4).unwrap();
    let trajectories = collect(&*env, &policy, &tasks, &config, &StageOptions::default())
        .await
        .unwrap();
    let points = sample_points(
        &trajectories,
        &SampleConfig::builder().per_trajectory(3).seed(1).build().unwrap(),
    );
    assert!(points.len() >= 20, "{} points", points.len());
    let mut positive = std::collections::BTreeSet::new();
    for signal in [Signal::Q, Signal::V] {
        let mvmc = MvmcLabeler::new(
            env.clone(),
            Arc::new(ReferencePolicy),
            MvmcConfig::builder()
                .rollouts(1)
                .signal(signal)
                .seed(5)
                .build()
                .unwrap(),
        );
        let exact = ExactLabeler::new(env.clone(), signal, None);
        let labels = mvmc.label_batch(&points).await;
        let walkthrough = exact.label_batch(&points).await;
        for ((p, m), w) in points.iter().zip(&labels).zip(&walkthrough) {
            assert!(m.value.is_finite() && w.value.is_finite(), "{m:?} {w:?}");
            // The walkthrough's remaining length n (the forced step included for Q).
            let n = if w.value > 0.0 {
                1 + (w.value.ln() / GAMMA.ln()).round() as i32
            } else {
                0
            };
            let expected = if n > 0 { GAMMA.powi(n - 1) } else { 0.0 };
            assert!(
                (w.value - expected).abs() < 1e-12,
                "{}: {} is not a power of gamma",
                p.id,
                w.value
            );
            assert!(
                (m.value - expected).abs() < 1e-12,
                "{} ({signal:?}, step {}, action {}): MVMC {} but the walkthrough has {n} steps ({expected})",
                p.id,
                p.step_index,
                p.action_text,
                m.value
            );
            if n > 0 {
                positive.insert(n);
            }
        }
    }
    assert!(positive.len() >= 4, "walkthrough lengths seen: {positive:?}");
}

/// Walks `steps` random legal steps of `game`, then stores the state as JSON.
fn stored_state(env: &PythonEnv, game: &str, steps: u64) -> String {
    let task = env.tasks().into_iter().find(|t| t.id == game).unwrap();
    let mut s = env.reset(&task, &mut rng_for(0, &[])).unwrap();
    let mut walk = rng_for(11, &[]);
    for i in 0..steps {
        let legal = env.legal_actions(&s).unwrap();
        let a = legal[rand::Rng::random_range(&mut walk, 0..legal.len())].clone();
        let out = env.step(&s, &a, &mut rng_for(1, &[i])).unwrap();
        if out.terminated {
            break;
        }
        s = out.state;
    }
    serde_json::to_string(&s).unwrap()
}

#[test]
fn branching_twice_from_a_stored_state_gives_identical_observations() {
    for purity in ["snapshot", "replay"] {
        let env = textworld(json!({ "purity": purity }), 2);
        for game in ["tw-cooking-r2", "tw-custom-q5"] {
            let stored = stored_state(&env, game, 6);
            let s: PythonState = serde_json::from_str(&stored).unwrap();
            let mut all = env.legal_actions(&s).unwrap();
            assert!(all.len() > 2);
            all.push(json!("dance wildly"));
            let mut first = Vec::new();
            for a in &all {
                first.push(env.step(&s, a, &mut rng_for(2, &[])).unwrap());
            }
            // Again, in reverse order, from the state read back from its JSON: every step restores.
            let back: PythonState = serde_json::from_str(&stored).unwrap();
            for (a, one) in all.iter().zip(&first).rev() {
                let two = env.step(&back, a, &mut rng_for(2, &[])).unwrap();
                assert_eq!(one.state.observation, two.state.observation, "{game} {purity}: {a}");
                assert_eq!(one.state.legal, two.state.legal, "{game} {purity}: {a}");
                assert_eq!((one.reward, one.terminated), (two.reward, two.terminated));
                assert_eq!(one.state.key(), two.state.key(), "{game} {purity}: {a}");
            }
            // The branches differ from one another (the actions do something).
            let distinct: std::collections::HashSet<&str> =
                first.iter().map(|o| o.state.observation.as_str()).collect();
            assert!(distinct.len() > 2, "{game}: {distinct:?}");
        }
    }
}

#[test]
fn snapshot_and_replay_walk_the_same_game() {
    let snap = textworld(json!({ "purity": "snapshot", "names": ["tw-cooking-r2"] }), 1);
    let replay = textworld(json!({ "purity": "replay", "names": ["tw-cooking-r2"] }), 1);
    let task = &snap.tasks()[0];
    let mut a = snap.reset(task, &mut rng_for(0, &[])).unwrap();
    let mut b = replay.reset(task, &mut rng_for(0, &[])).unwrap();
    let mut walk = rng_for(4, &[]);
    for i in 0..25u64 {
        assert_eq!(a.observation, b.observation, "step {i}");
        assert_eq!(a.legal, b.legal, "step {i}");
        assert_eq!(snap.reference_action(&a).unwrap(), replay.reference_action(&b).unwrap());
        let legal = snap.legal_actions(&a).unwrap();
        let act = if i % 3 == 0 {
            snap.reference_action(&a).unwrap()
        } else {
            legal[rand::Rng::random_range(&mut walk, 0..legal.len())].clone()
        };
        let x = snap.step(&a, &act, &mut rng_for(0, &[i])).unwrap();
        let y = replay.step(&b, &act, &mut rng_for(0, &[i])).unwrap();
        assert_eq!((x.reward, x.terminated), (y.reward, y.terminated));
        if x.terminated {
            break;
        }
        a = x.state;
        b = y.state;
    }
}

#[test]
fn the_textworld_adapter_passes_the_conformance_checker() {
    let env = textworld(json!({ "max_steps": 10 }), 2);
    check_environment(&env, 2, 7).unwrap();
    let env = textworld(
        json!({ "purity": "replay", "max_steps": 8, "names": ["tw-custom-q3", "tw-cooking-r1"] }),
        2,
    );
    check_environment(&env, 1, 7).unwrap();
}

#[test]
fn meta_commands_are_not_sent_to_the_game() {
    let env = textworld(json!({ "names": ["tw-custom-q3"] }), 1);
    let s = env.reset(&env.tasks()[0], &mut rng_for(0, &[])).unwrap();
    for text in ["undo", "RESTART", "quit", "tw-trace-actions", "save"] {
        let a = env.parse_action(text);
        let out = env.step(&s, &a, &mut rng_for(0, &[])).unwrap();
        assert!(!out.terminated && out.reward == 0.0);
        assert!(
            out.state.observation.contains("not available"),
            "{text}: {}",
            out.state.observation
        );
        assert_eq!(out.state.legal, s.legal);
    }
    // An ordinary unknown command reaches the game and wastes the turn.
    let out = env.step(&s, &env.parse_action("Dance."), &mut rng_for(0, &[])).unwrap();
    assert_eq!(env.parse_action("  Go   SOUTH. "), json!("go south"));
    assert!(!out.terminated && !out.state.observation.contains("not available"));
}

#[test]
fn a_missing_textworld_names_the_pip_command() {
    need(&TEXTWORLD);
    // A Python whose `import textworld` fails.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("textworld")).unwrap();
    std::fs::write(
        dir.path().join("textworld/__init__.py"),
        "raise ImportError('hidden by the test')\n",
    )
    .unwrap();
    let python = dir.path().join("python3");
    std::fs::write(
        &python,
        format!(
            "#!/bin/sh\nPYTHONPATH=\"{}:$PYTHONPATH\" exec python3 \"$@\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&python).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&python, perms).unwrap();
    let err = PythonEnv::builder(ADAPTER).python(&python).build().unwrap_err();
    assert!(
        matches!(
            err,
            qval_envs::EnvsError::Python(qval_envs::python::PyError::MissingPackage { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains(TEXTWORLD.pip), "{err}");
}
