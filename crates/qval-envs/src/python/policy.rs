//! Policies and exact labels of a [`PythonEnv`], from its adapter's reference policy and
//! exact values.

use async_trait::async_trait;
use rand::Rng as _;
use serde_json::{Value, json};
use std::sync::Arc;

use super::{PythonEnv, PythonState};
use crate::EnvsError;
use qval_core::{Aggregation, Environment, EvaluationPoint, Label, Labeler, Policy, PolicyInput, QRng, Result, Signal};

/// An error of the bridge as an error of the environment, named.
fn named(env: &PythonEnv) -> impl Fn(EnvsError) -> qval_core::CoreError + '_ {
    |e| e.in_env(&env.spec().name)
}

fn legal(env: &PythonEnv, state: &PythonState) -> Result<Vec<Value>> {
    match env.legal_actions(state) {
        Some(a) if !a.is_empty() => Ok(a),
        _ => Err(named(env)(EnvsError::bridge(format!(
            "`{}` has no closed action set here: a uniform choice needs legal_actions()",
            env.adapter()
        )))),
    }
}

/// The adapter's reference policy (its `reference_action`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferencePolicy;

#[async_trait]
impl Policy<PythonEnv> for ReferencePolicy {
    fn name(&self) -> String {
        "python-reference".into()
    }

    async fn act(&self, env: &PythonEnv, input: PolicyInput<'_, PythonState>, _rng: &mut QRng) -> Result<Value> {
        env.reference_action(input.state).map_err(named(env))
    }
}

/// A uniform choice among the legal actions.
#[derive(Clone, Copy, Debug, Default)]
pub struct UniformPolicy;

#[async_trait]
impl Policy<PythonEnv> for UniformPolicy {
    fn name(&self) -> String {
        "python-uniform".into()
    }

    async fn act(&self, env: &PythonEnv, input: PolicyInput<'_, PythonState>, rng: &mut QRng) -> Result<Value> {
        let actions = legal(env, input.state)?;
        Ok(actions[rng.random_range(0..actions.len())].clone())
    }
}

/// With probability `epsilon` a uniform legal action, else the reference action. Draws as
/// FrozenLake's native epsilon-greedy does (a float, then an index), so on the same maps both
/// collect the same trajectories.
#[derive(Clone, Copy, Debug)]
pub struct EpsilonGreedy {
    epsilon: f64,
}

impl EpsilonGreedy {
    /// # Errors
    /// [`EnvsError::InvalidParameter`] for `epsilon` outside [0, 1].
    pub fn new(epsilon: f64) -> std::result::Result<Self, EnvsError> {
        if !(0.0..=1.0).contains(&epsilon) {
            return Err(EnvsError::InvalidParameter {
                name: "epsilon",
                value: epsilon.to_string(),
                reason: "a probability in [0, 1]".into(),
            });
        }
        Ok(EpsilonGreedy { epsilon })
    }
}

#[async_trait]
impl Policy<PythonEnv> for EpsilonGreedy {
    fn name(&self) -> String {
        format!("python-epsilon-greedy(epsilon={})", self.epsilon)
    }

    async fn act(&self, env: &PythonEnv, input: PolicyInput<'_, PythonState>, rng: &mut QRng) -> Result<Value> {
        if rng.random::<f64>() < self.epsilon {
            let actions = legal(env, input.state)?;
            Ok(actions[rng.random_range(0..actions.len())].clone())
        } else {
            env.reference_action(input.state).map_err(named(env))
        }
    }
}

/// Exact Q, V or advantage labels from the adapter's `exact_value`: for a point at step `t`
/// with `h = max_steps - t` steps left, Q = exact(s, a, h), V = exact(s, h), advantage =
/// exact(s', h - 1) - exact(s, h) (0 after a terminating step), as FrozenLake's native
/// [`crate::frozenlake::ExactLabeler`].
pub struct ExactLabeler {
    env: Arc<PythonEnv>,
    signal: Signal,
    gamma: f64,
}

impl ExactLabeler {
    /// Labels of `signal` discounted by `gamma` (default: the environment's).
    pub fn new(env: Arc<PythonEnv>, signal: Signal, gamma: Option<f64>) -> Self {
        let gamma = gamma.unwrap_or(env.spec().gamma);
        ExactLabeler { env, signal, gamma }
    }

    fn value(&self, point: &EvaluationPoint) -> Result<f64> {
        let h = self.env.spec().max_steps.saturating_sub(point.step_index);
        let state: PythonState = point.state_as()?;
        let exact = |s: &PythonState, a: Option<&Value>, h: usize| {
            self.env.exact_value(s, a, self.gamma, h).map_err(named(&self.env))
        };
        Ok(match self.signal {
            Signal::V | Signal::Potential => exact(&state, None, h)?,
            Signal::ShapedReward => return Err(qval_core::label::shaped_reward_not_per_point()),
            Signal::Q => {
                let action: Value = point.action_as()?;
                exact(&state, Some(&action), h)?
            }
            Signal::Advantage => {
                let next: PythonState = point.next_state_as()?;
                let after = if point.terminated {
                    0.0
                } else {
                    exact(&next, None, h.saturating_sub(1))?
                };
                after - exact(&state, None, h)?
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

    fn params(&self) -> Value {
        json!({
            "method": "exact",
            "env": self.env.spec().name,
            "adapter": self.env.adapter(),
            "policy": "python-reference",
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
