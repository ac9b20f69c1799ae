//! Correlation coefficients under the published evaluation rules, with p-values computed as
//! `scipy.stats` computes them by default.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use crate::MetricsError;
use crate::rank::{count_inversions, dense_ranks, doubled_average_ranks, huge_vec, join, sorted_positions};
use crate::special::{
    binomial_cdf, inc_beta_pair, kendall_exact_p, normal_sf, pairwise_sum, pairwise_sum_by, student_t_sf,
};

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
/// The usable pairs: borrowed when nothing had to be dropped.
pub(crate) type Pairs<'a> = (Cow<'a, [f64]>, Cow<'a, [f64]>);

pub(crate) fn usable_pairs<'a>(x: &'a [f64], y: &'a [f64], cfg: &CorrelationConfig) -> Result<Pairs<'a>, MetricsError> {
    if x.len() != y.len() && cfg.lengths == LengthPolicy::Error {
        return Err(MetricsError::LengthMismatch {
            left: x.len(),
            right: y.len(),
        });
    }
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    if !x.iter().chain(y).any(|v| v.is_nan()) {
        return Ok((Cow::Borrowed(x), Cow::Borrowed(y)));
    }
    let (a, b): (Vec<f64>, Vec<f64>) = x
        .iter()
        .zip(y)
        .filter(|(a, b)| !a.is_nan() && !b.is_nan())
        .map(|(a, b)| (*a, *b))
        .unzip();
    Ok((Cow::Owned(a), Cow::Owned(b)))
}

fn mean(x: &[f64]) -> f64 {
    pairwise_sum(x) / x.len() as f64
}

fn is_constant(x: &[f64]) -> bool {
    x.iter().all(|v| *v == x[0])
}

/// Pearson's r as scipy computes it (deviations scaled by their maximum before the norms,
/// numpy's pairwise sums); `None` if either input is constant.
pub(crate) fn pearson_r(x: &[f64], y: &[f64]) -> Option<f64> {
    if is_constant(x) || is_constant(y) {
        return None;
    }
    let n = x.len();
    let (mx, my) = (mean(x), mean(y));
    let xmax = x.iter().fold(0.0f64, |a, v| a.max((v - mx).abs()));
    let ymax = y.iter().fold(0.0f64, |a, v| a.max((v - my).abs()));
    let nx = xmax * pairwise_sum_by(n, &|i| ((x[i] - mx) / xmax) * ((x[i] - mx) / xmax)).sqrt();
    let ny = ymax * pairwise_sum_by(n, &|i| ((y[i] - my) / ymax) * ((y[i] - my) / ymax)).sqrt();
    Some(pairwise_sum_by(n, &|i| ((x[i] - mx) / nx) * ((y[i] - my) / ny)).clamp(-1.0, 1.0))
}

/// Spearman's rho from doubled average ranks: the sums of centred products are exact
/// integers (accumulated in i128), rounded once, then combined as `numpy.corrcoef` does.
fn spearman_rho(rx2: &[u32], ry2: &[u32]) -> f64 {
    let n = rx2.len();
    let m = (n + 1) as i64;
    let (mut sxy, mut sxx, mut syy) = (0i128, 0i128, 0i128);
    for (cx, cy) in rx2.chunks(1024).zip(ry2.chunks(1024)) {
        let (mut a, mut b, mut c) = (0i64, 0i64, 0i64);
        for (&u, &v) in cx.iter().zip(cy) {
            let (du, dv) = (u as i64 - m, v as i64 - m);
            a += du * dv;
            b += du * du;
            c += dv * dv;
        }
        sxy += a as i128;
        sxx += b as i128;
        syy += c as i128;
    }
    rho_from_sums(n, sxy, sxx, syy)
}

/// rho from the exact sums of centred doubled ranks (each 4x the sum over ranks; dividing by
/// 4 is exact), combined as `numpy.corrcoef` does.
fn rho_from_sums(n: usize, sxy: i128, sxx: i128, syy: i128) -> f64 {
    let f = 1.0 / (n as f64 - 1.0);
    let cxy = sxy as f64 / 4.0 * f;
    let sx = (sxx as f64 / 4.0 * f).sqrt();
    let sy = (syy as f64 / 4.0 * f).sqrt();
    (cxy / sx / sy).clamp(-1.0, 1.0)
}

/// Spearman's rho of two short, NaN-free, non-constant slices (per-state ranking).
pub(crate) fn spearman_rho_of(x: &[f64], y: &[f64]) -> f64 {
    spearman_rho(&doubled_average_ranks(x), &doubled_average_ranks(y))
}

/// Pearson's r with scipy's two-sided p-value (`scipy.stats.pearsonr`): the exact null
/// distribution of r under bivariate normality, a Beta(n/2 - 1, n/2 - 1) on [-1, 1].
///
/// # Errors
/// [`MetricsError::LengthMismatch`] under [`LengthPolicy::Error`].
pub fn pearson(x: &[f64], y: &[f64], cfg: &CorrelationConfig) -> Result<Correlation, MetricsError> {
    let (x, y) = usable_pairs(x, y, cfg)?;
    let n = x.len();
    if n < cfg.min_pairs {
        return Ok(too_few(n, cfg));
    }
    let Some(r) = pearson_r(&x, &y) else {
        return Ok(Correlation::undefined(n, CONSTANT));
    };
    let ab = n as f64 / 2.0 - 1.0;
    let arg = (r.abs() + 1.0) / 2.0;
    let (_, sf) = inc_beta_pair(ab, ab, arg, 1.0 - arg);
    Ok(Correlation {
        value: r,
        p_value: (2.0 * sf).min(1.0),
        n,
        note: None,
    })
}

/// Spearman's rho (Pearson's r of average ranks) with scipy's two-sided p-value
/// (`scipy.stats.spearmanr`: Student's t with n - 2 degrees of freedom).
///
/// # Errors
/// [`MetricsError::LengthMismatch`] under [`LengthPolicy::Error`].
pub fn spearman(x: &[f64], y: &[f64], cfg: &CorrelationConfig) -> Result<Correlation, MetricsError> {
    let (x, y) = usable_pairs(x, y, cfg)?;
    let n = x.len();
    if n < cfg.min_pairs {
        return Ok(too_few(n, cfg));
    }
    if is_constant(&x) || is_constant(&y) {
        return Ok(Correlation::undefined(n, CONSTANT));
    }
    let (rx2, ry2) = join(n, || doubled_average_ranks(&x), || doubled_average_ranks(&y));
    let rho = spearman_rho(&rx2, &ry2);
    Ok(Correlation {
        value: rho,
        p_value: spearman_p(rho, n),
        n,
        note: None,
    })
}

/// The two-sided p-value of a Spearman rho over `n` pairs, as scipy computes it.
pub(crate) fn spearman_p(rho: f64, n: usize) -> f64 {
    let dof = (n - 2) as f64;
    let t = rho * (dof / ((rho + 1.0) * (1.0 - rho))).max(0.0).sqrt();
    2.0 * student_t_sf(t.abs(), dof)
}

/// Pair counts behind Kendall's tau-b (the quantities of scipy's `kendalltau`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct KendallCounts {
    pub n: u64,
    pub tot: u64,
    pub dis: u64,
    pub xtie: u64,
    pub ytie: u64,
    pub ntie: u64,
    pub x0: f64,
    pub x1: f64,
    pub y0: f64,
    pub y1: f64,
}

impl KendallCounts {
    pub fn con_minus_dis(&self) -> i128 {
        self.tot as i128 - self.xtie as i128 - self.ytie as i128 + self.ntie as i128 - 2 * self.dis as i128
    }

    pub fn concordant(&self) -> u64 {
        (self.con_minus_dis() + self.dis as i128) as u64
    }

    /// Tau-b, or `None` when either variable is constant.
    pub fn tau_b(&self) -> Option<f64> {
        if self.xtie == self.tot || self.ytie == self.tot {
            return None;
        }
        let tau = self.con_minus_dis() as f64
            / ((self.tot - self.xtie) as f64).sqrt()
            / ((self.tot - self.ytie) as f64).sqrt();
        Some(tau.clamp(-1.0, 1.0))
    }

    /// scipy's two-sided p-value with `method="auto"`: exact without ties for n <= 33 (or
    /// when at most one pair is discordant or concordant), else the normal approximation
    /// with the tie-corrected variance.
    pub fn p_value(&self) -> f64 {
        let (n, tot, dis) = (self.n, self.tot, self.dis);
        if self.xtie == 0 && self.ytie == 0 && (n <= 33 || dis.min(tot - dis) <= 1) {
            return kendall_exact_p(n, tot - dis);
        }
        let size = n as f64;
        let m = size * (size - 1.0);
        let var = (m * (2.0 * size + 5.0) - self.x1 - self.y1) / 18.0
            + (2 * self.xtie as u128 * self.ytie as u128) as f64 / m
            + (self.x0 as u128 * self.y0 as u128) as f64 / (9.0 * m * (size - 2.0));
        let z = self.con_minus_dis() as f64 / var.sqrt();
        2.0 * normal_sf(z.abs())
    }
}

fn tie_stats(groups: &[u64]) -> (u64, f64, f64) {
    let t: u64 = groups.iter().map(|&c| c * (c - 1) / 2).sum();
    let a: Vec<f64> = groups
        .iter()
        .map(|&c| c as f64 * (c as f64 - 1.0) * (c as f64 - 2.0))
        .collect();
    let b: Vec<f64> = groups
        .iter()
        .map(|&c| c as f64 * (c as f64 - 1.0) * (2.0 * c as f64 + 5.0))
        .collect();
    (t, pairwise_sum(&a).trunc(), pairwise_sum(&b).trunc())
}

/// Counts concordant, discordant and tied pairs in O(n log n): the positions sorted by x
/// (radix sort) and the dense ranks of y (on a second thread), the y ranks laid out in x
/// order with each run of tied x sorted by y, then a merge-sort count of the inversions.
pub(crate) fn kendall_counts(x: &[f64], y: &[f64]) -> KendallCounts {
    let n = x.len();
    let (sx, ry) = join(n, || sorted_positions(x), || dense_ranks(y));
    let mut yseq: Vec<u32> = huge_vec(n);
    let mut x_groups = Vec::new();
    let mut ntie = 0u64;
    sx.for_each_group(x, |s, i, j| {
        let start = yseq.len();
        yseq.extend(s.items[i..j].iter().map(|&p| ry.dense[s.pos(p)]));
        if j - i > 1 {
            x_groups.push((j - i) as u64);
            let g = &mut yseq[start..];
            g.sort_unstable();
            let mut k = 0;
            while k < g.len() {
                let mut l = k + 1;
                while l < g.len() && g[l] == g[k] {
                    l += 1;
                }
                let c = (l - k) as u64;
                ntie += c * (c - 1) / 2;
                k = l;
            }
        }
    });
    drop(sx);
    let dis = count_inversions(&mut yseq);
    let (xtie, x0, x1) = tie_stats(&x_groups);
    let (ytie, y0, y1) = tie_stats(&ry.tie_groups);
    let n = n as u64;
    KendallCounts {
        n,
        tot: n * n.saturating_sub(1) / 2,
        dis,
        xtie,
        ytie,
        ntie,
        x0,
        x1,
        y0,
        y1,
    }
}

/// Kendall's tau-b with scipy's two-sided p-value (`scipy.stats.kendalltau`, method "auto"),
/// in O(n log n).
///
/// # Errors
/// [`MetricsError::LengthMismatch`] under [`LengthPolicy::Error`].
pub fn kendall(x: &[f64], y: &[f64], cfg: &CorrelationConfig) -> Result<Correlation, MetricsError> {
    let (x, y) = usable_pairs(x, y, cfg)?;
    let n = x.len();
    if n < cfg.min_pairs {
        return Ok(too_few(n, cfg));
    }
    let counts = kendall_counts(&x, &y);
    match counts.tau_b() {
        Some(tau) => Ok(Correlation {
            value: tau,
            p_value: counts.p_value(),
            n,
            note: None,
        }),
        None => Ok(Correlation::undefined(n, CONSTANT)),
    }
}

/// The share of pairs whose order the predictions get right, among pairs with different
/// reference values (ties in the predictions count as wrong), as reward-model benchmarks
/// report it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairwiseAccuracy {
    /// Concordant pairs / pairs with different reference values; NaN if undefined.
    pub value: f64,
    /// Concordant pairs.
    pub concordant: u64,
    /// Pairs with different reference values.
    pub pairs: u64,
    /// Usable points.
    pub n: usize,
    /// Why the figure is NaN, when it is.
    pub note: Option<String>,
}

/// Pairwise accuracy of `predictions` against `labels`, in O(n log n).
///
/// # Errors
/// [`MetricsError::LengthMismatch`] under [`LengthPolicy::Error`].
pub fn pairwise_accuracy(
    predictions: &[f64],
    labels: &[f64],
    cfg: &CorrelationConfig,
) -> Result<PairwiseAccuracy, MetricsError> {
    let (x, y) = usable_pairs(predictions, labels, cfg)?;
    let n = x.len();
    let undefined = |note: String| PairwiseAccuracy {
        value: f64::NAN,
        concordant: 0,
        pairs: 0,
        n,
        note: Some(note),
    };
    if n < cfg.min_pairs {
        return Ok(undefined(too_few(n, cfg).note.unwrap_or_default()));
    }
    let c = kendall_counts(&x, &y);
    let pairs = c.tot - c.ytie;
    if pairs == 0 {
        return Ok(undefined("all reference values are equal".into()));
    }
    let concordant = c.concordant();
    Ok(PairwiseAccuracy {
        value: concordant as f64 / pairs as f64,
        concordant,
        pairs,
        n,
        note: None,
    })
}

/// How often the prediction and the label have the same sign, as published: over every
/// usable pair (zeros included: the sign of 0 is 0 and equals only 0), with a two-sided
/// binomial test against chance (p = 1/2), as `scipy.stats.binomtest` computes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignAgreement {
    /// Agreements / usable pairs; NaN below the minimum of pairs.
    pub value: f64,
    /// Pairs whose signs agree.
    pub agree: u64,
    /// Usable pairs.
    pub n: u64,
    /// Two-sided binomial p-value.
    pub p_value: f64,
    /// Why the figure is NaN, when it is.
    pub note: Option<String>,
}

fn sign(v: f64) -> i8 {
    if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    }
}

/// Sign agreement of `predictions` with `labels`.
///
/// # Errors
/// [`MetricsError::LengthMismatch`] under [`LengthPolicy::Error`].
pub fn sign_agreement(
    predictions: &[f64],
    labels: &[f64],
    cfg: &CorrelationConfig,
) -> Result<SignAgreement, MetricsError> {
    let (x, y) = usable_pairs(predictions, labels, cfg)?;
    let n = x.len() as u64;
    if (n as usize) < cfg.min_pairs {
        return Ok(SignAgreement {
            value: f64::NAN,
            agree: 0,
            n,
            p_value: f64::NAN,
            note: Some(format!("{n} usable pairs, fewer than the minimum of {}", cfg.min_pairs)),
        });
    }
    let agree = x.iter().zip(y.iter()).filter(|(a, b)| sign(**a) == sign(**b)).count() as u64;
    let p_value = if 2 * agree == n {
        1.0
    } else {
        (2.0 * binomial_cdf(agree.min(n - agree), n, 0.5)).min(1.0)
    };
    Ok(SignAgreement {
        value: agree as f64 / n as f64,
        agree,
        n,
        p_value,
        note: None,
    })
}

const CONSTANT: &str = "an input is constant; the correlation is undefined (scipy warns and returns NaN)";

fn too_few(n: usize, cfg: &CorrelationConfig) -> Correlation {
    Correlation::undefined(
        n,
        format!("{n} usable pairs, fewer than the minimum of {}", cfg.min_pairs),
    )
}
