//! The random baseline.

use async_trait::async_trait;
use rand::Rng as _;

use qval_core::seed::{rng_for, stable_hash};
use qval_core::{DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal};

/// Uniform scores in [0, 1): the floor. The score of a point depends only on the seed and
/// the point's id, so it is the same in every run and batch order.
#[derive(Clone, Copy, Debug)]
pub struct RandomBaseline {
    seed: u64,
    signal: Signal,
}

impl RandomBaseline {
    /// A baseline for `signal` seeded with `seed`.
    pub fn new(seed: u64, signal: Signal) -> Self {
        RandomBaseline { seed, signal }
    }
}

#[async_trait]
impl DenseSignalMethod for RandomBaseline {
    fn name(&self) -> String {
        format!("random-{}", self.signal).to_lowercase()
    }

    fn signal(&self) -> Signal {
        self.signal
    }

    async fn evaluate(&self, point: &EvaluationPoint, _ctx: &MethodContext) -> Result<f64> {
        Ok(rng_for(self.seed, &[stable_hash(&point.id)]).random::<f64>())
    }
}
