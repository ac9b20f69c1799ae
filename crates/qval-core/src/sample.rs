//! Stage 2: sampling evaluation points along trajectories.

use rand::seq::index::sample;

use crate::seed::rng_for;
use crate::types::{EvaluationPoint, Trajectory};
use crate::{CoreError, Result};

/// Which steps of a trajectory become points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The first `per_trajectory` eligible steps.
    First,
    /// `per_trajectory` eligible steps drawn without replacement (seeded by the root seed and
    /// the trajectory index), in step order.
    Random,
    /// Evenly spread: eligible step `round(i * (n - 1) / (m - 1))` for i in 0..m, rounding
    /// half to even as Python's `round` does.
    Uniform,
}

impl Strategy {
    /// The name experiment files and metadata use.
    pub fn key(self) -> &'static str {
        match self {
            Strategy::First => "first",
            Strategy::Random => "random",
            Strategy::Uniform => "uniform",
        }
    }
}

/// Parameters of [`sample_points`]. Build with [`SampleConfig::builder`].
///
/// | parameter | default | range |
/// |---|---|---|
/// | `per_trajectory` (m) | 5 | >= 1 |
/// | `strategy` | [`Strategy::Random`] | |
/// | `discard_first` | 1 | any |
/// | `discard_last` | 1 | any |
/// | `seed` | 0 | any |
///
/// When discarding leaves no step, every step is eligible (the published rule).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SampleConfig {
    /// At most this many points per trajectory.
    pub per_trajectory: usize,
    /// How to choose them.
    pub strategy: Strategy,
    /// Steps skipped at the start.
    pub discard_first: usize,
    /// Steps skipped at the end.
    pub discard_last: usize,
    /// Root seed of [`Strategy::Random`].
    pub seed: u64,
}

impl SampleConfig {
    /// A builder with the defaults of the table above.
    pub fn builder() -> SampleConfigBuilder {
        SampleConfigBuilder(SampleConfig {
            per_trajectory: 5,
            strategy: Strategy::Random,
            discard_first: 1,
            discard_last: 1,
            seed: 0,
        })
    }

    /// The step indices (positions in the trajectory) chosen from a trajectory of `n` steps.
    pub fn select(&self, n: usize, trajectory_index: usize) -> Vec<usize> {
        let lo = self.discard_first.min(n);
        let hi = n.saturating_sub(self.discard_last);
        let eligible: Vec<usize> = if lo < hi { (lo..hi).collect() } else { (0..n).collect() };
        let e = eligible.len();
        let m = self.per_trajectory;
        if e <= m {
            return eligible;
        }
        match self.strategy {
            Strategy::First => eligible[..m].to_vec(),
            Strategy::Random => {
                let mut rng = rng_for(self.seed, &[trajectory_index as u64]);
                let mut idx = sample(&mut rng, e, m).into_vec();
                idx.sort_unstable();
                idx.into_iter().map(|i| eligible[i]).collect()
            }
            Strategy::Uniform => {
                if m == 1 {
                    return vec![eligible[0]];
                }
                let mut out: Vec<usize> = (0..m)
                    .map(|i| {
                        let pos = (i as f64 * (e - 1) as f64 / (m - 1) as f64).round_ties_even() as usize;
                        eligible[pos]
                    })
                    .collect();
                out.dedup();
                out
            }
        }
    }
}

/// Builder of [`SampleConfig`].
#[derive(Clone, Debug)]
pub struct SampleConfigBuilder(SampleConfig);

impl SampleConfigBuilder {
    /// At most this many points per trajectory (default 5).
    pub fn per_trajectory(mut self, m: usize) -> Self {
        self.0.per_trajectory = m;
        self
    }
    /// The strategy (default random).
    pub fn strategy(mut self, s: Strategy) -> Self {
        self.0.strategy = s;
        self
    }
    /// Steps skipped at the start (default 1).
    pub fn discard_first(mut self, n: usize) -> Self {
        self.0.discard_first = n;
        self
    }
    /// Steps skipped at the end (default 1).
    pub fn discard_last(mut self, n: usize) -> Self {
        self.0.discard_last = n;
        self
    }
    /// Root seed of the random strategy (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
    /// Validates and returns the configuration.
    ///
    /// # Errors
    /// [`CoreError::InvalidParameter`] if `per_trajectory` is 0.
    pub fn build(self) -> Result<SampleConfig> {
        if self.0.per_trajectory == 0 {
            return Err(CoreError::invalid(
                "per_trajectory",
                0,
                "at least one point per trajectory",
            ));
        }
        Ok(self.0)
    }
}

/// Samples evaluation points from every trajectory, in trajectory then step order.
pub fn sample_points(trajectories: &[Trajectory], config: &SampleConfig) -> Vec<EvaluationPoint> {
    trajectories
        .iter()
        .flat_map(|t| {
            config
                .select(t.len(), t.index)
                .into_iter()
                .map(move |i| EvaluationPoint::from_trajectory(t, i))
        })
        .collect()
}
