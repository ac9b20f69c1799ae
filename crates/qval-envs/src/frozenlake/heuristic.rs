//! FrozenLake's hand-written signals (the environment's `heuristic` methods): the template for
//! your own environment heuristic.

use async_trait::async_trait;

use super::{FrozenLakeState, Tile};
use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal};

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
    /// The heuristic for Q (scores s'), V or potential (scores s), or a shaped reward (the
    /// change of score).
    ///
    /// # Panics
    /// For [`Signal::Advantage`], which this heuristic does not estimate.
    pub fn new(signal: Signal) -> Self {
        assert!(
            signal != Signal::Advantage,
            "FrozenLakeDistance does not estimate advantages"
        );
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

/// A FrozenLake heuristic's value of a point from its score of a state: of the state s for V
/// and potential, of the next state s' (where the action led) for Q, and for a shaped reward
/// the change it made, score(s') - score(s) (potential-based shaping with the score as the
/// potential).
fn scored(signal: Signal, point: &EvaluationPoint, score: fn(&FrozenLakeState) -> f64) -> Result<f64> {
    let state = || point.state_as::<FrozenLakeState>();
    let next = || point.next_state_as::<FrozenLakeState>();
    Ok(match signal {
        Signal::V | Signal::Potential => score(&state()?),
        Signal::ShapedReward => score(&next()?) - score(&state()?),
        Signal::Q | Signal::Advantage => score(&next()?),
    })
}

#[async_trait]
impl DenseSignalMethod for FrozenLakeDistance {
    fn name(&self) -> String {
        format!("distance-{}", self.signal.key())
    }

    fn signal(&self) -> Signal {
        self.signal
    }

    async fn evaluate(&self, point: &EvaluationPoint, _ctx: &MethodContext) -> Result<f64> {
        scored(self.signal, point, Self::score)
    }
}

/// Minus the Manhattan distance from the agent to the goal, ignoring holes: a deliberately
/// imperfect signal (it walks through holes and never sees a dead end), between the exact
/// [`FrozenLakeDistance`] and a random baseline. For Q it scores s', for V the state s.
#[derive(Clone, Copy, Debug)]
pub struct FrozenLakeManhattan {
    signal: Signal,
}

impl FrozenLakeManhattan {
    /// The heuristic for Q (scores s'), V or potential (scores s), or a shaped reward (the
    /// change of score).
    ///
    /// # Panics
    /// For [`Signal::Advantage`], which this heuristic does not estimate.
    pub fn new(signal: Signal) -> Self {
        assert!(
            signal != Signal::Advantage,
            "FrozenLakeManhattan does not estimate advantages"
        );
        FrozenLakeManhattan { signal }
    }

    /// The score of a state: minus |row - goal row| + |column - goal column|.
    pub fn score(state: &FrozenLakeState) -> f64 {
        let map = &state.map;
        let cols = map.cols();
        let goal = (0..map.len()).find(|&c| map.tile(c) == Tile::Goal).unwrap_or(0);
        let (r, c) = (state.pos / cols, state.pos % cols);
        let (gr, gc) = (goal / cols, goal % cols);
        -((r.abs_diff(gr) + c.abs_diff(gc)) as f64)
    }
}

#[async_trait]
impl DenseSignalMethod for FrozenLakeManhattan {
    fn name(&self) -> String {
        format!("manhattan-{}", self.signal.key())
    }

    fn signal(&self) -> Signal {
        self.signal
    }

    async fn evaluate(&self, point: &EvaluationPoint, _ctx: &MethodContext) -> Result<f64> {
        scored(self.signal, point, Self::score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frozenlake::Grid;
    use std::sync::Arc;

    #[test]
    fn manhattan_ignores_holes_where_the_distance_heuristic_does_not() {
        // The goal is 2 cells right of the start, behind a hole; the way round is 6 long.
        let map = Arc::new(Grid::parse(&["SHG", "FHF", "FFF"]).unwrap());
        let at = |pos| FrozenLakeState {
            map: map.clone(),
            pos,
            error: None,
        };
        assert_eq!(FrozenLakeManhattan::score(&at(0)), -2.0);
        assert_eq!(FrozenLakeDistance::score(&at(0)), -6.0);
        assert_eq!(
            FrozenLakeManhattan::score(&at(1)),
            -1.0,
            "a hole scores by its distance"
        );
        assert_eq!(FrozenLakeManhattan::score(&at(2)), 0.0);
    }
}
