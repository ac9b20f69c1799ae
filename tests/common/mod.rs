//! Helpers shared by the cross-crate tests.
#![allow(dead_code)]

pub mod python;

use qval::envs::frozenlake::{FrozenLake, FrozenLakeAction, FrozenLakeState};
use qval::{EvaluationPoint, Observation, Task};
use qval_core::Environment;

/// A point at `pos` of `env`'s map `map`, forcing `action`, at step counter `step`.
pub fn point_at(env: &FrozenLake, map: usize, pos: usize, action: usize, step: usize) -> EvaluationPoint {
    let grid = env.maps()[map].clone();
    let state = env.state_at(&grid, pos);
    let a = FrozenLakeAction::from_index(action);
    let next = FrozenLakeState {
        pos: grid.move_from(pos, action),
        ..state.clone()
    };
    EvaluationPoint {
        id: format!("m{map}-p{pos}-a{action}-s{step}"),
        trajectory_index: map,
        step_index: step,
        task: Task {
            id: format!("map{map}"),
            instruction: String::new(),
            params: serde_json::Value::Null,
        },
        history: vec![],
        state: serde_json::to_value(&state).unwrap(),
        observation: Observation::text(FrozenLake::render_text(&state)),
        action: serde_json::to_value(&a).unwrap(),
        action_text: env.render_action(&a),
        reward: 0.0,
        next_state: serde_json::to_value(&next).unwrap(),
        next_observation: Observation::text(FrozenLake::render_text(&next)),
        terminated: next.tile().is_terminal(),
        candidate_of: None,
        thought: None,
    }
}

/// A multi-threaded runtime with `threads` workers.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap()
}
