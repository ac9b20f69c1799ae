//! FrozenLake policies: the value-iteration reference, epsilon-greedy around it, uniform.

use async_trait::async_trait;
use rand::Rng as _;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::solver::reference_policy;
use super::{FrozenLake, FrozenLakeAction, FrozenLakeState};
use qval_core::{Policy, PolicyInput, QRng, Result};

/// The published reference policy: optimal by value iteration on the state's map, ties
/// broken by fewest steps then right, down, left, up ([`reference_policy`]). Deterministic.
/// The solved table is cached per map.
pub struct OptimalPolicy {
    slippery: bool,
    gamma: f64,
    cache: RwLock<HashMap<u64, Arc<Vec<usize>>>>,
}

impl OptimalPolicy {
    /// The reference policy for an environment (its slipperiness and discount).
    pub fn for_env(env: &FrozenLake) -> Self {
        Self::new(env.slippery(), env.gamma())
    }

    /// The reference policy for maps of the given slipperiness, solved with `gamma`.
    pub fn new(slippery: bool, gamma: f64) -> Self {
        OptimalPolicy {
            slippery,
            gamma,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The action the policy takes in `state`.
    pub fn action(&self, state: &FrozenLakeState) -> usize {
        let key = state.map.key();
        if let Some(table) = self.cache.read().expect("cache lock").get(&key) {
            return table[state.pos];
        }
        let table = Arc::new(reference_policy(&state.map, self.slippery, self.gamma));
        let a = table[state.pos];
        self.cache.write().expect("cache lock").insert(key, table);
        a
    }
}

#[async_trait]
impl Policy<FrozenLake> for OptimalPolicy {
    fn name(&self) -> String {
        format!("frozenlake-optimal(gamma={})", self.gamma)
    }

    async fn act(
        &self,
        _env: &FrozenLake,
        input: PolicyInput<'_, FrozenLakeState>,
        _rng: &mut QRng,
    ) -> Result<FrozenLakeAction> {
        Ok(FrozenLakeAction::from_index(self.action(input.state)))
    }
}

/// With probability `epsilon` a uniformly random move, otherwise the reference policy's:
/// the published collector (epsilon 0.1).
pub struct EpsilonGreedy {
    optimal: OptimalPolicy,
    epsilon: f64,
}

impl EpsilonGreedy {
    /// Epsilon-greedy around the reference policy of `env`.
    ///
    /// # Errors
    /// [`crate::EnvsError::InvalidParameter`] for an epsilon outside [0, 1].
    pub fn new(env: &FrozenLake, epsilon: f64) -> std::result::Result<Self, crate::EnvsError> {
        if !(0.0..=1.0).contains(&epsilon) {
            return Err(crate::EnvsError::InvalidParameter {
                name: "epsilon",
                value: epsilon.to_string(),
                reason: "a probability in [0, 1]".into(),
            });
        }
        Ok(EpsilonGreedy {
            optimal: OptimalPolicy::for_env(env),
            epsilon,
        })
    }
}

#[async_trait]
impl Policy<FrozenLake> for EpsilonGreedy {
    fn name(&self) -> String {
        format!("frozenlake-epsilon-greedy(epsilon={})", self.epsilon)
    }

    async fn act(
        &self,
        _env: &FrozenLake,
        input: PolicyInput<'_, FrozenLakeState>,
        rng: &mut QRng,
    ) -> Result<FrozenLakeAction> {
        let a = if rng.random::<f64>() < self.epsilon {
            rng.random_range(0..4)
        } else {
            self.optimal.action(input.state)
        };
        Ok(FrozenLakeAction::from_index(a))
    }
}

/// Uniformly random moves.
#[derive(Clone, Copy, Debug, Default)]
pub struct UniformPolicy;

#[async_trait]
impl Policy<FrozenLake> for UniformPolicy {
    fn name(&self) -> String {
        "frozenlake-uniform".into()
    }

    async fn act(
        &self,
        _env: &FrozenLake,
        _input: PolicyInput<'_, FrozenLakeState>,
        rng: &mut QRng,
    ) -> Result<FrozenLakeAction> {
        Ok(FrozenLakeAction::from_index(rng.random_range(0..4)))
    }
}
