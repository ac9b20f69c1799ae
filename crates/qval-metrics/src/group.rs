//! Summaries of a method that comes in samples (e.g. 16 generated code samples).

use serde::{Deserialize, Serialize};

use crate::special::pairwise_sum;

/// Mean, standard deviation, min, max and median of per-sample figures (NaN samples are
/// counted and left out).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Samples with a value.
    pub n: usize,
    /// Samples whose figure was NaN.
    pub nan: usize,
    /// Mean.
    #[serde(with = "qval_core::types::nan_as_null")]
    pub mean: f64,
    /// Sample standard deviation (n - 1, `statistics.stdev` as the published aggregate uses;
    /// 0.0 for one value).
    #[serde(with = "qval_core::types::nan_as_null")]
    pub std: f64,
    /// Minimum.
    #[serde(with = "qval_core::types::nan_as_null")]
    pub min: f64,
    /// Maximum.
    #[serde(with = "qval_core::types::nan_as_null")]
    pub max: f64,
    /// Median (the mean of the middle two for an even count).
    #[serde(with = "qval_core::types::nan_as_null")]
    pub median: f64,
}

/// Summarises per-sample figures.
///
/// ```
/// let s = qval_metrics::group_summary(&[0.5, 0.9, f64::NAN, 0.7]);
/// assert_eq!((s.n, s.nan, s.min, s.max, s.median), (3, 1, 0.5, 0.9, 0.7));
/// assert!((s.mean - 0.7).abs() < 1e-15);
/// ```
pub fn group_summary(values: &[f64]) -> GroupSummary {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    let nan = values.len() - v.len();
    if v.is_empty() {
        return GroupSummary {
            n: 0,
            nan,
            mean: f64::NAN,
            std: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
            median: f64::NAN,
        };
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mean = pairwise_sum(&v) / n as f64;
    let dev: Vec<f64> = v.iter().map(|x| (x - mean) * (x - mean)).collect();
    // The published aggregate: `statistics.stdev` (n - 1), 0.0 for a single sample.
    let std = if n == 1 {
        0.0
    } else {
        (pairwise_sum(&dev) / (n - 1) as f64).sqrt()
    };
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    GroupSummary {
        n,
        nan,
        mean,
        std,
        min: v[0],
        max: v[n - 1],
        median,
    }
}
