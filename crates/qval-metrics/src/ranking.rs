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

/// Per-state Spearman correlations and their summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerStateRanking {
    /// Mean of the per-state rho over used states; NaN if none.
    pub mean: f64,
    /// Sample standard deviation (ddof 1) of the per-state rho; NaN below 2 states.
    pub std: f64,
    /// States used.
    pub used: usize,
    /// Skipped: fewer than 2 candidates.
    pub skipped_too_few: usize,
    /// Skipped: a NaN among the labels or predictions.
    pub skipped_nan: usize,
    /// Skipped: all reference values equal (nothing to rank).
    pub skipped_constant_reference: usize,
    /// Skipped: all predictions equal (rho undefined, as scipy says).
    pub skipped_constant_prediction: usize,
    /// Per-state rho, NaN for skipped states, in input order.
    pub per_state: Vec<f64>,
    /// Bootstrap interval of the mean over states (resampling states), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Interval>,
}

/// Per state, Spearman between candidate predictions and candidate reference values, with
/// the published skip rules (fewer than 2 candidates, any NaN, all reference values equal);
/// states whose predictions are all equal are skipped too and counted apart.
pub fn per_state_ranking(states: &[StateCandidates], boot: Option<&BootstrapConfig>) -> PerStateRanking {
    let mut r = PerStateRanking {
        mean: f64::NAN,
        std: f64::NAN,
        used: 0,
        skipped_too_few: 0,
        skipped_nan: 0,
        skipped_constant_reference: 0,
        skipped_constant_prediction: 0,
        per_state: Vec::with_capacity(states.len()),
        ci: None,
    };
    for s in states {
        let value = if s.labels.len() < 2 || s.labels.len() != s.predictions.len() {
            r.skipped_too_few += 1;
            f64::NAN
        } else if s.labels.iter().chain(&s.predictions).any(|v| v.is_nan()) {
            r.skipped_nan += 1;
            f64::NAN
        } else if s.labels.iter().all(|v| *v == s.labels[0]) {
            r.skipped_constant_reference += 1;
            f64::NAN
        } else if s.predictions.iter().all(|v| *v == s.predictions[0]) {
            r.skipped_constant_prediction += 1;
            f64::NAN
        } else {
            r.used += 1;
            spearman_rho_of(&s.predictions, &s.labels)
        };
        r.per_state.push(value);
    }
    let used: Vec<f64> = r.per_state.iter().copied().filter(|v| !v.is_nan()).collect();
    if !used.is_empty() {
        r.mean = pairwise_sum(&used) / used.len() as f64;
    }
    if used.len() >= 2 {
        let m = r.mean;
        let ss: Vec<f64> = used.iter().map(|v| (v - m) * (v - m)).collect();
        r.std = (pairwise_sum(&ss) / (used.len() - 1) as f64).sqrt();
    }
    if let Some(cfg) = boot
        && used.len() >= 2
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
