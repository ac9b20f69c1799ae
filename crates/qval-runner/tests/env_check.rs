//! The registry's conformance check of environments, run by `Plan::new` before any work: on
//! every shipped environment (FrozenLake, TerminalBench, each Python adapter) it passes; on a
//! user's environment whose `step` is not pure it refuses the plan, naming the environment
//! and the check, unless `skip_env_check`.

mod common;

use common::python::{GYMNASIUM, TEXTWORLD, need};
use common::repo;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use qval_core::{EnvSpec, Environment, Observation, Policy, PolicyInput, QRng, StepOutcome, Task, async_trait};
use qval_runner::envs::TypedEnv;
use qval_runner::{Plan, Registry, RunOptions, RunnerError, spec};

fn plan(file: &Path, registry: &Registry, options: RunOptions) -> qval_runner::Result<Plan> {
    let (experiment, source) = spec::load(file)?;
    Plan::new(experiment, &source, registry, options)
}

#[test]
fn every_shipped_offline_environment_passes_the_check_before_work() {
    for python in [GYMNASIUM, TEXTWORLD] {
        need(&python);
    }
    let registry = Registry::builtin();
    for file in [
        "experiments/quickstart.toml",
        "experiments/python-frozenlake.toml",
        "experiments/python-taxi.toml",
        "experiments/python-cliffwalking.toml",
        "experiments/python-textworld.toml",
        "experiments/qval-v1/terminalbench.toml",
    ] {
        let out = tempfile::tempdir().unwrap();
        let options = RunOptions {
            out: Some(out.path().join("run")),
            ..RunOptions::default()
        };
        let p = plan(&repo().join(file), &registry, options).unwrap_or_else(|e| panic!("{file}: {e}"));
        // The plan ran the check; running it again on more seeds must pass too.
        for seed in [1, 2, 3] {
            p.env.check(seed).unwrap_or_else(|e| panic!("{file}, seed {seed}: {e}"));
        }
        // No stage ran: the check takes its steps outside the stages (TerminalBench keeps the
        // snapshots of the states it visited in its store, `run/store/`, a cache).
        let run = out.path().join("run");
        for stage_file in [
            "run.json",
            "trajectories.jsonl",
            "points.jsonl",
            "labels",
            "predictions",
        ] {
            assert!(!run.join(stage_file).exists(), "{file}: the check wrote {stage_file}");
        }
    }
}

/// A corridor whose step reads a global counter: not a function of (state, action, seed)
/// unless `pure` (then the counter only counts the steps taken).
struct Impure {
    spec: EnvSpec,
    calls: AtomicU64,
    pure: bool,
}

impl Environment for Impure {
    type State = u32;
    type Action = u32;
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }
    fn tasks(&self) -> Vec<Task> {
        vec![Task {
            id: "walk".into(),
            instruction: "Walk.".into(),
            params: Default::default(),
        }]
    }
    fn reset(&self, _: &Task, _: &mut QRng) -> qval_core::Result<u32> {
        Ok(0)
    }
    fn step(&self, s: &u32, _: &u32, _: &mut QRng) -> qval_core::Result<StepOutcome<u32>> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(StepOutcome {
            state: s + 1,
            reward: if self.pure { 0.0 } else { n as f64 },
            terminated: false,
        })
    }
    fn observe(&self, s: &u32) -> Observation {
        Observation::text(s.to_string())
    }
    fn legal_actions(&self, _: &u32) -> Option<Vec<u32>> {
        Some(vec![0])
    }
    fn parse_action(&self, _: &str) -> u32 {
        0
    }
    fn render_action(&self, _: &u32) -> String {
        "step".into()
    }
}

struct Stepper;

#[async_trait]
impl Policy<Impure> for Stepper {
    fn name(&self) -> String {
        "stepper".into()
    }
    async fn act(&self, _: &Impure, _: PolicyInput<'_, u32>, _: &mut QRng) -> qval_core::Result<u32> {
        Ok(0)
    }
}

fn corridor(pure: bool) -> Arc<Impure> {
    Arc::new(Impure {
        spec: EnvSpec {
            name: "impure-walk".into(),
            max_steps: 5,
            gamma: 0.9,
            reward_description: "the number of steps taken anywhere".into(),
            notes: String::new(),
        },
        calls: AtomicU64::new(0),
        pure,
    })
}

/// The check takes each of its steps three times: by default two walks of up to eight steps
/// (here the budget's five) on each of at most two tasks, or the size a plugin sets.
#[test]
fn the_check_takes_as_many_steps_as_its_size_says() {
    use qval_runner::envs::EnvPlugin;
    let env = corridor(true);
    TypedEnv::new(env.clone()).check(1).unwrap();
    assert_eq!(env.calls.load(Ordering::Relaxed), 2 * 5 * 3);
    let env = corridor(true);
    TypedEnv::new(env.clone()).check_size(2, 1, 3).check(1).unwrap();
    assert_eq!(env.calls.load(Ordering::Relaxed), 3 * 3);
}

fn impure_registry() -> Registry {
    Registry::builtin().environment("impure", |_table, _services| {
        let env = corridor(false);
        let stepper =
            |_: &toml::Table, _: &dyn qval_runner::envs::RunServices| Ok(Arc::new(Stepper) as Arc<dyn Policy<Impure>>);
        Ok(Arc::new(
            TypedEnv::new(env)
                .policy("stepper", stepper)
                .defaults("stepper", "stepper"),
        ))
    })
}

#[test]
fn a_registered_environment_whose_step_is_not_pure_is_refused_before_work_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("impure.toml");
    std::fs::write(
        &file,
        "name = \"impure\"\nseed = 1\n[environment]\ntype = \"impure\"\n[dataset]\ntrajectories = 2\n\
         [[labels]]\nrollouts = 1\n[[methods]]\ntype = \"random\"\n",
    )
    .unwrap();
    let options = |skip| RunOptions {
        out: Some(dir.path().join("run")),
        skip_env_check: skip,
        ..RunOptions::default()
    };
    let err = match plan(&file, &impure_registry(), options(false)) {
        Err(e) => e,
        Ok(_) => panic!("an impure step passed the check"),
    };
    let text = err.to_string();
    assert!(matches!(err, RunnerError::EnvironmentCheck { .. }), "{text}");
    assert!(
        text.contains("`impure`") && text.contains("step is not pure") && text.contains("--skip-env-check"),
        "{text}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the check's error is kept as the source"
    );
    assert!(!dir.path().join("run").exists(), "work started before the check");
    plan(&file, &impure_registry(), options(true)).expect("skip_env_check skips the check");
}
