//! Policies and exact labels of a [`PythonEnv`], from its adapter's reference policy and
//! exact values.

use async_trait::async_trait;
use rand::Rng as _;
use serde_json::{Value, json};
use std::sync::Arc;

use super::{PythonEnv, PythonState};
use crate::EnvsError;
use qval_core::{Aggregation, Environment, EvaluationPoint, Label, Labeler, Policy, PolicyInput, QRng, Result, Signal};

fn legal(env: &PythonEnv, state: &PythonState) -> Result<Vec<Value>> {
    match env.legal_actions(state) {
        Some(a) if !a.is_empty() => Ok(a),
        _ => Err(EnvsError::Bridge(format!(
            "`{}` has no closed action set here: a uniform choice needs legal_actions()",
            env.adapter()
        ))
        .into()),
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
        Ok(env.reference_action(input.state)?)
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
            Ok(env.reference_action(input.state)?)
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
        Ok(match self.signal {
            Signal::V => self.env.exact_value(&state, None, self.gamma, h)?,
            Signal::Q => {
                let action: Value = point.action_as()?;
                self.env.exact_value(&state, Some(&action), self.gamma, h)?
            }
            Signal::Advantage => {
                let next: PythonState = point.next_state_as()?;
                let after = if point.terminated {
                    0.0
                } else {
                    self.env.exact_value(&next, None, self.gamma, h.saturating_sub(1))?
                };
                after - self.env.exact_value(&state, None, self.gamma, h)?
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
