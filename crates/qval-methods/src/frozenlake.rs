//! A hand-written FrozenLake signal: the template for your own environment heuristic.

use async_trait::async_trait;

use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal};
use qval_envs::frozenlake::FrozenLakeState;

/// Minus the shortest-path distance from the agent to the goal, avoiding holes: 0 on the
/// goal, more negative farther away, and worst of all (minus the number of cells, minus 1)
/// in a hole or where the goal cannot be reached.
///
/// For Q it scores the next state s' (where the action led); for V the state s.
///
/// Copy this file to write a signal for your own environment: restore the typed state with
/// [`EvaluationPoint::next_state_as`], compute, return a number.
#[derive(Clone, Copy, Debug)]
pub struct FrozenLakeDistance {
    signal: Signal,
}

impl FrozenLakeDistance {
    /// The heuristic for Q (scores s') or V (scores s).
    ///
    /// # Panics
    /// For [`Signal::Advantage`], which this heuristic does not estimate.
    pub fn new(signal: Signal) -> Self {
        assert!(signal != Signal::Advantage, "FrozenLakeDistance estimates Q or V");
        FrozenLakeDistance { signal }
    }

    /// The score of a state.
    pub fn score(state: &FrozenLakeState) -> f64 {
        let worst = -(state.map.len() as f64) - 1.0;
        match state.map.distances_to_goal()[state.pos] {
            Some(d) => -(d as f64),
            None => worst,
        }
    }
}

#[async_trait]
impl DenseSignalMethod for FrozenLakeDistance {
    fn name(&self) -> String {
        format!("distance-{}", self.signal).to_lowercase()
    }

    fn signal(&self) -> Signal {
        self.signal
    }

    async fn evaluate(&self, point: &EvaluationPoint, _ctx: &MethodContext) -> Result<f64> {
        let state: FrozenLakeState = match self.signal {
            Signal::V => point.state_as()?,
            _ => point.next_state_as()?,
        };
        Ok(Self::score(&state))
    }
}
