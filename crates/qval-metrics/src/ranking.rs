//! Per-state ranking correlation, for methods that order candidate actions in a state.

use serde::{Deserialize, Serialize};

use crate::bootstrap::{BootstrapConfig, Interval, interval, multiplicities, run_parallel};
use crate::correlation::spearman_rho_of;
use crate::special::pairwise_sum;

/// One state's candidates: their reference values and the method's predictions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateCandidates {
    /// The state's id.
    pub state: String,
    /// Reference values of the candidates.
    pub labels: Vec<f64>,
    /// Predictions for the same candidates, in the same order.
    pub predictions: Vec<f64>,
}

/// What a state whose candidates all get the same prediction counts for (its rho is
/// undefined).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RankingTies {
    /// As the published testbed: the state is counted with an undefined rho, which makes
    /// the mean and std undefined (null); a NaN label is treated the same way.
    #[default]
    Published,
    /// qval's stricter choice: the state counts as rho 0 (the method expressed no
    /// preference), and states with a NaN label are skipped.
    Zero,
}

/// Per-state Spearman correlations and their summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerStateRanking {
    /// Mean of the per-state rho over used states; NaN if none.
    pub mean: f64,
    /// Sample standard deviation (ddof 1) of the per-state rho; 0.0 for one state.
    pub std: f64,
    /// States counted (the published `num_valid`).
    pub used: usize,
    /// Skipped: fewer than 2 candidates.
    pub skipped_too_few: usize,
    /// Skipped: a NaN among the labels or predictions.
    pub skipped_nan: usize,
    /// Skipped: all reference values equal (nothing to rank).
    pub skipped_constant_reference: usize,
    /// States whose predictions are all equal (counted: NaN under the published rule, 0
    /// under [`RankingTies::Zero`]).
    pub tied_predictions: usize,
    /// Per-state rho, NaN for skipped states, in input order.
    pub per_state: Vec<f64>,
    /// Bootstrap interval of the mean over states (resampling states), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Interval>,
}

/// Per state, Spearman between candidate predictions and candidate reference values, with
/// the published skip rules (fewer than 2 candidates, any NaN prediction, all reference
/// values equal); states whose predictions are all equal follow `ties`.
pub fn per_state_ranking(
    states: &[StateCandidates],
    ties: RankingTies,
    boot: Option<&BootstrapConfig>,
) -> PerStateRanking {
    let mut r = PerStateRanking {
        mean: f64::NAN,
        std: f64::NAN,
        used: 0,
        skipped_too_few: 0,
        skipped_nan: 0,
        skipped_constant_reference: 0,
        tied_predictions: 0,
        per_state: Vec::with_capacity(states.len()),
        ci: None,
    };
    let mut counted = Vec::with_capacity(states.len());
    for s in states {
        let value = if s.labels.len() < 2 || s.labels.len() != s.predictions.len() {
            r.skipped_too_few += 1;
            None
        } else if s.predictions.iter().any(|v| v.is_nan())
            || (ties == RankingTies::Zero && s.labels.iter().any(|v| v.is_nan()))
        {
            r.skipped_nan += 1;
            None
        } else if s.labels.iter().all(|v| *v == s.labels[0]) {
            r.skipped_constant_reference += 1;
            None
        } else if s.predictions.iter().all(|v| *v == s.predictions[0]) {
            r.tied_predictions += 1;
            Some(if ties == RankingTies::Zero { 0.0 } else { f64::NAN })
        } else if s.labels.iter().any(|v| v.is_nan()) {
            Some(f64::NAN)
        } else {
            Some(spearman_rho_of(&s.predictions, &s.labels))
        };
        if let Some(v) = value {
            counted.push(v);
        }
        r.per_state.push(value.unwrap_or(f64::NAN));
    }
    r.used = counted.len();
    let used = counted;
    if !used.is_empty() {
        r.mean = pairwise_sum(&used) / used.len() as f64;
    }
    if used.len() == 1 {
        r.std = if r.mean.is_nan() { f64::NAN } else { 0.0 };
    }
    if used.len() >= 2 {
        let m = r.mean;
        let ss: Vec<f64> = used.iter().map(|v| (v - m) * (v - m)).collect();
        r.std = (pairwise_sum(&ss) / (used.len() - 1) as f64).sqrt();
    }
    if let Some(cfg) = boot
        && used.len() >= 2
        && !r.mean.is_nan()
    {
        let n = used.len();
        let values = run_parallel(cfg, |b| {
            let mut c = vec![0u32; n];
            multiplicities(cfg.seed, b, n, &mut c);
            let total: f64 = used.iter().zip(&c).map(|(v, &k)| v * k as f64).sum();
            total / n as f64
        });
        r.ci = Some(interval(values, cfg));
    }
    r
}
