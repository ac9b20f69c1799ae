//! Correlation coefficients under the published evaluation rules.

use serde::{Deserialize, Serialize};

use crate::MetricsError;
use crate::rank::average_ranks;

/// What to do when predictions and labels differ in length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LengthPolicy {
    /// Refuse (default): a length mismatch usually means misaligned data.
    #[default]
    Error,
    /// Keep the common prefix, as the published evaluation did.
    TruncateToShorter,
}

/// Parameters shared by all correlations. Build with [`CorrelationConfig::builder`].
///
/// | parameter | default | range |
/// |---|---|---|
/// | `min_pairs` | 50 (published) | >= 3 |
/// | `lengths` | [`LengthPolicy::Error`] | |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorrelationConfig {
    /// Below this many usable pairs the figure is NaN.
    pub min_pairs: usize,
    /// How to treat inputs of different lengths.
    pub lengths: LengthPolicy,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            min_pairs: 50,
            lengths: LengthPolicy::Error,
        }
    }
}

impl CorrelationConfig {
    /// A builder with the defaults.
    pub fn builder() -> CorrelationConfigBuilder {
        CorrelationConfigBuilder(CorrelationConfig::default())
    }
}

/// Builder of [`CorrelationConfig`].
#[derive(Clone, Debug)]
pub struct CorrelationConfigBuilder(CorrelationConfig);

impl CorrelationConfigBuilder {
    /// Minimum usable pairs (default 50).
    pub fn min_pairs(mut self, n: usize) -> Self {
        self.0.min_pairs = n;
        self
    }
    /// Length policy (default: error).
    pub fn lengths(mut self, p: LengthPolicy) -> Self {
        self.0.lengths = p;
        self
    }
    /// Validates.
    ///
    /// # Errors
    /// [`MetricsError::InvalidParameter`] for `min_pairs` below 3 (no correlation is defined
    /// on fewer points).
    pub fn build(self) -> Result<CorrelationConfig, MetricsError> {
        if self.0.min_pairs < 3 {
            return Err(MetricsError::InvalidParameter {
                name: "min_pairs",
                value: self.0.min_pairs.to_string(),
                reason: "at least 3".into(),
            });
        }
        Ok(self.0)
    }
}

/// A correlation coefficient with its two-sided p-value and the number of pairs used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// The coefficient; NaN when it is undefined (see `note`).
    pub value: f64,
    /// The two-sided p-value; NaN when the coefficient is.
    pub p_value: f64,
    /// Usable pairs (both sides finite).
    pub n: usize,
    /// Why the figure is NaN, when it is.
    pub note: Option<String>,
}

impl Correlation {
    fn undefined(n: usize, note: impl Into<String>) -> Self {
        Correlation {
            value: f64::NAN,
            p_value: f64::NAN,
            n,
            note: Some(note.into()),
        }
    }
}

/// Applies the length policy and drops pairs where either side is NaN.
pub(crate) fn usable_pairs(
    x: &[f64],
    y: &[f64],
    cfg: &CorrelationConfig,
) -> Result<(Vec<f64>, Vec<f64>), MetricsError> {
    if x.len() != y.len() && cfg.lengths == LengthPolicy::Error {
        return Err(MetricsError::LengthMismatch {
            left: x.len(),
            right: y.len(),
        });
    }
    Ok(x.iter()
        .zip(y)
        .filter(|(a, b)| !a.is_nan() && !b.is_nan())
        .map(|(a, b)| (*a, *b))
        .unzip())
}

/// Pearson's r of two slices of equal length with no NaN, or `None` if either is constant.
pub(crate) fn pearson_r(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

fn correlate(x: &[f64], y: &[f64], cfg: &CorrelationConfig, ranked: bool) -> Result<Correlation, MetricsError> {
    let (x, y) = usable_pairs(x, y, cfg)?;
    let n = x.len();
    if n < cfg.min_pairs {
        return Ok(Correlation::undefined(
            n,
            format!("{n} usable pairs, fewer than the minimum of {}", cfg.min_pairs),
        ));
    }
    let (x, y) = if ranked {
        (average_ranks(&x), average_ranks(&y))
    } else {
        (x, y)
    };
    match pearson_r(&x, &y) {
        Some(r) => Ok(Correlation {
            value: r,
            p_value: f64::NAN,
            n,
            note: None,
        }),
        None => Ok(Correlation::undefined(
            n,
            "an input is constant; the correlation is undefined",
        )),
    }
}

/// Pearson's r.
///
/// # Errors
/// [`MetricsError::LengthMismatch`] under [`LengthPolicy::Error`].
pub fn pearson(x: &[f64], y: &[f64], cfg: &CorrelationConfig) -> Result<Correlation, MetricsError> {
    correlate(x, y, cfg, false)
}

/// Spearman's rho: Pearson's r of the average ranks.
///
/// # Errors
/// [`MetricsError::LengthMismatch`] under [`LengthPolicy::Error`].
pub fn spearman(x: &[f64], y: &[f64], cfg: &CorrelationConfig) -> Result<Correlation, MetricsError> {
    correlate(x, y, cfg, true)
}
