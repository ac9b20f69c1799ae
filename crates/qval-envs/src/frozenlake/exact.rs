//! Exact reference labels on FrozenLake, from the transition model: the expected discounted
//! return of the reference policy over the point's remaining step budget. This is what MVMC
//! estimates by sampling (with the mean; on non-slippery maps one rollout gives it exactly),
//! so it is both a label set and the yardstick MVMC labels are compared with.

use async_trait::async_trait;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::solver::{Values, policy_values, reference_policy};
use super::{FrozenLake, FrozenLakeAction, FrozenLakeState};
use qval_core::{Aggregation, Environment, EvaluationPoint, Label, Labeler, Signal};

/// Exact Q, V or advantage labels of the reference policy ([`super::OptimalPolicy`]).
///
/// For a point at step `t` of an episode of `max_steps`, with `h = max_steps - t` steps left:
/// Q = sum over outcomes p (r + gamma V_{h-1}(s')) for the point's action (a wasted turn: gamma
/// V_{h-1}(s)); V = V_h(s); advantage = V_{h-1}(s') - V_h(s), with V of a terminal state 0.
///
/// ```
/// use qval_envs::frozenlake::{ExactLabeler, FrozenLake};
/// use qval_core::{Labeler, Signal};
/// use std::sync::Arc;
///
/// let env = Arc::new(FrozenLake::builder().preset_4x4().slippery(true).build().unwrap());
/// let labeler = ExactLabeler::new(env, Signal::Q, None);
/// assert_eq!(labeler.name(), "exact-q");
/// ```
pub struct ExactLabeler {
    env: Arc<FrozenLake>,
    signal: Signal,
    gamma: f64,
    tables: Mutex<HashMap<(u64, usize), Arc<Values>>>,
    policies: Mutex<HashMap<u64, Arc<Vec<usize>>>>,
}

impl ExactLabeler {
    /// Labels of `signal` on `env`, discounted by `gamma` (default: the environment's).
    pub fn new(env: Arc<FrozenLake>, signal: Signal, gamma: Option<f64>) -> Self {
        let gamma = gamma.unwrap_or(env.gamma());
        ExactLabeler {
            env,
            signal,
            gamma,
            tables: Mutex::new(HashMap::new()),
            policies: Mutex::new(HashMap::new()),
        }
    }

    /// V of the reference policy with `h` steps left, per cell of `state`'s map.
    fn values(&self, state: &FrozenLakeState, h: usize) -> Arc<Values> {
        let key = state.map.key();
        if let Some(v) = self.tables.lock().expect("table lock").get(&(key, h)) {
            return v.clone();
        }
        let policy = self
            .policies
            .lock()
            .expect("policy lock")
            .entry(key)
            // The reference policy is solved with the environment's discount, as the policy
            // MVMC rolls out; the labels use their own.
            .or_insert_with(|| Arc::new(reference_policy(&state.map, self.env.slippery(), self.env.gamma())))
            .clone();
        let v = Arc::new(policy_values(&state.map, self.env.slippery(), self.gamma, &policy, h));
        self.tables.lock().expect("table lock").insert((key, h), v.clone());
        v
    }

    fn v(&self, state: &FrozenLakeState, h: usize) -> f64 {
        if h == 0 || state.tile().is_terminal() {
            return 0.0;
        }
        self.values(state, h).v[state.pos]
    }

    fn value(&self, point: &EvaluationPoint) -> qval_core::Result<f64> {
        let max = self.env.spec().max_steps;
        let h = max.saturating_sub(point.step_index);
        let state: FrozenLakeState = point.state_as()?;
        Ok(match self.signal {
            Signal::V | Signal::Potential => self.v(&state, h),
            Signal::ShapedReward => return Err(qval_core::label::shaped_reward_not_per_point()),
            Signal::Q => {
                if h == 0 || state.tile().is_terminal() {
                    return Ok(0.0);
                }
                let action: FrozenLakeAction = point.action_as()?;
                match action.index() {
                    Some(a) => self.values(&state, h).q[state.pos][a],
                    None => self.gamma * self.v(&state, h - 1),
                }
            }
            Signal::Advantage => {
                let next: FrozenLakeState = point.next_state_as()?;
                let after = if point.terminated {
                    0.0
                } else {
                    self.v(&next, h.saturating_sub(1))
                };
                after - self.v(&state, h)
            }
        })
    }
}

#[async_trait]
impl Labeler for ExactLabeler {
    fn name(&self) -> String {
        format!("exact-{}", self.signal.key())
    }

    fn signal(&self) -> Signal {
        self.signal
    }

    fn params(&self) -> serde_json::Value {
        json!({
            "method": "exact",
            "env": self.env.spec().name,
            "policy": "frozenlake-optimal",
            "gamma": self.gamma,
            "signal": self.signal,
        })
    }

    async fn label(&self, point: &EvaluationPoint) -> Label {
        match self.value(point) {
            Ok(value) => Label::exact(point.id.clone(), self.signal, value),
            Err(e) => Label::aborted(point.id.clone(), self.signal, Aggregation::Mean, e.to_string()),
        }
    }
}
