//! Percentile bootstrap confidence intervals: seeded, parallel, and the same for a given
//! seed whatever the thread count (resample b always draws from the generator derived from
//! (seed, b)).
//!
//! Each resample is evaluated without re-sorting: the data are sorted once, and a resample
//! is a vector of multiplicities over the original points, so Spearman costs O(n) and
//! Kendall O(n log n) per resample.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::MetricsError;
use crate::correlation::{CorrelationConfig, usable_pairs};
use crate::rank::{dense_ranks, sorted_positions};
use qval_core::seed::rng_for;

/// Parameters of the bootstrap. Build with [`BootstrapConfig::builder`].
///
/// | parameter | default | range |
/// |---|---|---|
/// | `resamples` | 10,000 | >= 100 |
/// | `level` | 0.95 | (0, 1) |
/// | `seed` | 0 | any |
/// | `threads` | all cores | >= 1 |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Number of resamples.
    pub resamples: usize,
    /// Confidence level of the interval.
    pub level: f64,
    /// Root seed.
    pub seed: u64,
    /// Worker threads (does not change the result, so it is not written: the same bytes
    /// for any thread count).
    #[serde(skip_serializing, default = "default_threads")]
    pub threads: usize,
}

impl BootstrapConfig {
    /// A builder with the defaults.
    pub fn builder() -> BootstrapConfigBuilder {
        BootstrapConfigBuilder(BootstrapConfig {
            resamples: 10_000,
            level: 0.95,
            seed: 0,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    }
}

/// Builder of [`BootstrapConfig`].
#[derive(Clone, Debug)]
pub struct BootstrapConfigBuilder(BootstrapConfig);

impl BootstrapConfigBuilder {
    /// Resamples (default 10,000).
    pub fn resamples(mut self, b: usize) -> Self {
        self.0.resamples = b;
        self
    }
    /// Confidence level (default 0.95).
    pub fn level(mut self, l: f64) -> Self {
        self.0.level = l;
        self
    }
    /// Root seed (default 0).
    pub fn seed(mut self, s: u64) -> Self {
        self.0.seed = s;
        self
    }
    /// Worker threads (default: all cores).
    pub fn threads(mut self, t: usize) -> Self {
        self.0.threads = t;
        self
    }
    /// Validates.
    ///
    /// # Errors
    /// [`MetricsError::InvalidParameter`] for fewer than 100 resamples, a level outside
    /// (0, 1), or zero threads.
    pub fn build(self) -> Result<BootstrapConfig, MetricsError> {
        let c = self.0;
        let bad = |name, value: String, reason: &str| MetricsError::InvalidParameter {
            name,
            value,
            reason: reason.into(),
        };
        if c.resamples < 100 {
            return Err(bad("resamples", c.resamples.to_string(), "at least 100"));
        }
        if !(c.level > 0.0 && c.level < 1.0) {
            return Err(bad("level", c.level.to_string(), "a level in (0, 1)"));
        }
        if c.threads == 0 {
            return Err(bad("threads", "0".into(), "at least 1"));
        }
        Ok(c)
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Which statistic to bootstrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// Pearson's r.
    Pearson,
    /// Spearman's rho.
    Spearman,
    /// Kendall's tau-b.
    Kendall,
    /// Pairwise accuracy (predictions first, labels second).
    PairwiseAccuracy,
}

/// A percentile confidence interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound (NaN if no resample gave a value).
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Confidence level.
    pub level: f64,
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples where the statistic was defined (a resample can be constant).
    pub valid: usize,
}

/// numpy's default (linear) percentile of sorted values, `q` in [0, 1].
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// The interval from per-resample values (NaN values are not valid resamples).
pub(crate) fn interval(mut values: Vec<f64>, cfg: &BootstrapConfig) -> Interval {
    let resamples = values.len();
    values.retain(|v| !v.is_nan());
    values.sort_by(f64::total_cmp);
    let alpha = (1.0 - cfg.level) / 2.0;
    Interval {
        low: percentile(&values, alpha),
        high: percentile(&values, 1.0 - alpha),
        level: cfg.level,
        resamples,
        valid: values.len(),
    }
}

/// Evaluates `stat(b)` for every resample b on `cfg.threads` threads, in resample order.
pub(crate) fn run_parallel(cfg: &BootstrapConfig, stat: impl Fn(usize) -> f64 + Sync) -> Vec<f64> {
    let b = cfg.resamples;
    let threads = cfg.threads.min(b).max(1);
    let chunk = b.div_ceil(threads);
    let mut out = vec![0.0; b];
    std::thread::scope(|s| {
        for (t, slot) in out.chunks_mut(chunk).enumerate() {
            let stat = &stat;
            s.spawn(move || {
                for (k, v) in slot.iter_mut().enumerate() {
                    *v = stat(t * chunk + k);
                }
            });
        }
    });
    out
}

/// Multiplicities of a resample of `n` points drawn with replacement.
pub(crate) fn multiplicities(seed: u64, b: usize, n: usize, counts: &mut [u32]) {
    counts.iter_mut().for_each(|c| *c = 0);
    let mut rng = rng_for(seed, &[b as u64]);
    for _ in 0..n {
        counts[rng.random_range(0..n)] += 1;
    }
}

/// Groups of equal values, in ascending order, as position lists.
pub(crate) struct Groups {
    /// Positions in ascending order of value.
    order: Vec<usize>,
    /// `bounds[g]..bounds[g + 1]` is group g in `order`.
    bounds: Vec<usize>,
}

pub(crate) fn groups(x: &[f64]) -> Groups {
    let sorted = sorted_positions(x);
    let mut order = Vec::with_capacity(x.len());
    let mut bounds = vec![0];
    sorted.for_each_group(x, |s, i, j| {
        order.extend(s.items[i..j].iter().map(|&p| s.pos(p)));
        bounds.push(j);
    });
    Groups { order, bounds }
}

impl Groups {
    /// Average ranks of a resample with multiplicities `c`, per original position.
    pub(crate) fn resampled_ranks(&self, c: &[u32], out: &mut [f64]) {
        let mut below = 0u64;
        for g in self.bounds.windows(2) {
            let members = &self.order[g[0]..g[1]];
            let total: u64 = members.iter().map(|&p| c[p] as u64).sum();
            let avg = below as f64 + (total as f64 + 1.0) / 2.0;
            for &p in members {
                out[p] = avg;
            }
            below += total;
        }
    }
}

pub(crate) fn weighted_pearson(x: &[f64], y: &[f64], c: &[u32]) -> f64 {
    let (mut w, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for i in 0..x.len() {
        let ci = c[i] as f64;
        w += ci;
        sx += ci * x[i];
        sy += ci * y[i];
    }
    let (mx, my) = (sx / w, sy / w);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..x.len() {
        let ci = c[i] as f64;
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += ci * dx * dy;
        sxx += ci * dx * dx;
        syy += ci * dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
}

/// Precomputed orderings for Kendall-type statistics on resamples.
struct KendallPrep {
    /// Positions sorted by x, then by y rank.
    order: Vec<usize>,
    /// x-group boundaries in `order`.
    x_bounds: Vec<usize>,
    /// Dense y rank per position (1-based).
    ry: Vec<u32>,
    distinct_y: usize,
}

fn kendall_prep(x: &[f64], y: &[f64]) -> KendallPrep {
    let gx = groups(x);
    let ry = dense_ranks(y).dense;
    let mut order = gx.order;
    for g in gx.bounds.windows(2) {
        order[g[0]..g[1]].sort_by_key(|&p| ry[p]);
    }
    let distinct_y = ry.iter().copied().max().unwrap_or(0) as usize;
    KendallPrep {
        order,
        x_bounds: gx.bounds,
        ry,
        distinct_y,
    }
}

/// Pair counts of a resample with multiplicities `c`.
struct WeightedCounts {
    con_minus_dis: i128,
    dis: u128,
    tot: u64,
    xtie: u64,
    ytie: u64,
}

fn kendall_weighted(k: &KendallPrep, c: &[u32], tree: &mut [u64], ycount: &mut [u64]) -> WeightedCounts {
    tree.iter_mut().for_each(|t| *t = 0);
    ycount.iter_mut().for_each(|t| *t = 0);
    let size = tree.len();
    let (mut dis, mut xtie, mut ntie, mut inserted) = (0u128, 0u64, 0u64, 0u64);
    let mut n = 0u64;
    for g in k.x_bounds.windows(2) {
        let members = &k.order[g[0]..g[1]];
        let mut group_total = 0u64;
        // Queries first (pairs within a group of tied x are not discordant).
        let mut run_rank = 0u32;
        let mut run_total = 0u64;
        for &p in members {
            let w = c[p] as u64;
            if w == 0 {
                continue;
            }
            let r = k.ry[p];
            let mut i = r as usize;
            let mut le = 0u64;
            while i > 0 {
                le += tree[i];
                i &= i - 1;
            }
            dis += (w as u128) * ((inserted - le) as u128);
            group_total += w;
            if r == run_rank {
                run_total += w;
            } else {
                ntie += run_total * run_total.saturating_sub(1) / 2;
                run_rank = r;
                run_total = w;
            }
        }
        ntie += run_total * run_total.saturating_sub(1) / 2;
        for &p in members {
            let w = c[p] as u64;
            if w == 0 {
                continue;
            }
            let mut i = k.ry[p] as usize;
            while i < size {
                tree[i] += w;
                i += i & i.wrapping_neg();
            }
            ycount[k.ry[p] as usize] += w;
        }
        inserted += group_total;
        xtie += group_total * group_total.saturating_sub(1) / 2;
        n += group_total;
    }
    let ytie: u64 = ycount.iter().map(|&d| d * d.saturating_sub(1) / 2).sum();
    let tot = n * n.saturating_sub(1) / 2;
    let con_minus_dis = tot as i128 - xtie as i128 - ytie as i128 + ntie as i128 - 2 * dis as i128;
    WeightedCounts {
        con_minus_dis,
        dis,
        tot,
        xtie,
        ytie,
    }
}

/// A bootstrap percentile interval for `stat` of `predictions` against `labels` (NaN pairs
/// dropped first, as for the statistic itself).
///
/// # Errors
/// [`MetricsError::LengthMismatch`] under the length policy of `corr`.
pub fn bootstrap(
    predictions: &[f64],
    labels: &[f64],
    stat: Statistic,
    corr: &CorrelationConfig,
    cfg: &BootstrapConfig,
) -> Result<Interval, MetricsError> {
    let (x, y) = usable_pairs(predictions, labels, corr)?;
    let n = x.len();
    if n < corr.min_pairs {
        return Ok(Interval {
            low: f64::NAN,
            high: f64::NAN,
            level: cfg.level,
            resamples: 0,
            valid: 0,
        });
    }
    let seed = cfg.seed;
    let values = match stat {
        Statistic::Pearson => run_parallel(cfg, |b| {
            let mut c = vec![0u32; n];
            multiplicities(seed, b, n, &mut c);
            weighted_pearson(&x, &y, &c)
        }),
        Statistic::Spearman => {
            let (gx, gy) = (groups(&x), groups(&y));
            run_parallel(cfg, |b| {
                let mut c = vec![0u32; n];
                multiplicities(seed, b, n, &mut c);
                let (mut rx, mut ry) = (vec![0.0; n], vec![0.0; n]);
                gx.resampled_ranks(&c, &mut rx);
                gy.resampled_ranks(&c, &mut ry);
                weighted_pearson(&rx, &ry, &c)
            })
        }
        Statistic::Kendall | Statistic::PairwiseAccuracy => {
            let prep = kendall_prep(&x, &y);
            run_parallel(cfg, |b| {
                let mut c = vec![0u32; n];
                multiplicities(seed, b, n, &mut c);
                let mut tree = vec![0u64; prep.distinct_y + 1];
                let mut ycount = vec![0u64; prep.distinct_y + 1];
                let w = kendall_weighted(&prep, &c, &mut tree, &mut ycount);
                if stat == Statistic::Kendall {
                    if w.xtie == w.tot || w.ytie == w.tot {
                        return f64::NAN;
                    }
                    let (tx, ty) = ((w.tot - w.xtie) as f64, (w.tot - w.ytie) as f64);
                    (w.con_minus_dis as f64 / tx.sqrt() / ty.sqrt()).clamp(-1.0, 1.0)
                } else {
                    let pairs = w.tot - w.ytie;
                    if pairs == 0 {
                        return f64::NAN;
                    }
                    (w.con_minus_dis + w.dis as i128) as f64 / pairs as f64
                }
            })
        }
    };
    Ok(interval(values, cfg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{kendall, pairwise_accuracy, pearson, spearman};

    fn data(n: usize) -> (Vec<f64>, Vec<f64>) {
        let mut s = 99u64;
        let mut next = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let x: Vec<f64> = (0..n).map(|_| (next() * 8.0).floor()).collect();
        let y: Vec<f64> = x.iter().map(|v| ((v + next() * 6.0) * 2.0).floor()).collect();
        (x, y)
    }

    /// The fast resample statistics equal the statistics of the materialised resample.
    #[test]
    fn weighted_statistics_equal_those_of_the_expanded_resample() {
        let (x, y) = data(300);
        let n = x.len();
        let cfg = CorrelationConfig::builder().min_pairs(3).build().unwrap();
        let (gx, gy) = (groups(&x), groups(&y));
        let prep = kendall_prep(&x, &y);
        for b in 0..20 {
            let mut c = vec![0u32; n];
            multiplicities(7, b, n, &mut c);
            let (mut ex, mut ey) = (Vec::new(), Vec::new());
            for i in 0..n {
                for _ in 0..c[i] {
                    ex.push(x[i]);
                    ey.push(y[i]);
                }
            }
            assert_eq!(ex.len(), n);
            let pr = weighted_pearson(&x, &y, &c);
            assert!((pr - pearson(&ex, &ey, &cfg).unwrap().value).abs() < 1e-12);
            let (mut rx, mut ry) = (vec![0.0; n], vec![0.0; n]);
            gx.resampled_ranks(&c, &mut rx);
            gy.resampled_ranks(&c, &mut ry);
            let rho = weighted_pearson(&rx, &ry, &c);
            assert!((rho - spearman(&ex, &ey, &cfg).unwrap().value).abs() < 1e-12, "b {b}");
            let mut tree = vec![0u64; prep.distinct_y + 1];
            let mut yc = vec![0u64; prep.distinct_y + 1];
            let w = kendall_weighted(&prep, &c, &mut tree, &mut yc);
            let tau = w.con_minus_dis as f64 / ((w.tot - w.xtie) as f64).sqrt() / ((w.tot - w.ytie) as f64).sqrt();
            assert!((tau - kendall(&ex, &ey, &cfg).unwrap().value).abs() < 1e-12, "b {b}");
            let acc = (w.con_minus_dis + w.dis as i128) as f64 / (w.tot - w.ytie) as f64;
            assert!(
                (acc - pairwise_accuracy(&ex, &ey, &cfg).unwrap().value).abs() < 1e-12,
                "b {b}"
            );
        }
    }

    #[test]
    fn intervals_are_deterministic_whatever_the_threads_and_cover_the_estimate() {
        let (x, y) = data(500);
        let corr = CorrelationConfig::default();
        for stat in [
            Statistic::Pearson,
            Statistic::Spearman,
            Statistic::Kendall,
            Statistic::PairwiseAccuracy,
        ] {
            let one = BootstrapConfig::builder()
                .resamples(400)
                .seed(3)
                .threads(1)
                .build()
                .unwrap();
            let four = BootstrapConfig::builder()
                .resamples(400)
                .seed(3)
                .threads(4)
                .build()
                .unwrap();
            let a = bootstrap(&x, &y, stat, &corr, &one).unwrap();
            let b = bootstrap(&x, &y, stat, &corr, &four).unwrap();
            assert_eq!(a, b, "{stat:?}");
            let point = match stat {
                Statistic::Pearson => pearson(&x, &y, &corr).unwrap().value,
                Statistic::Spearman => spearman(&x, &y, &corr).unwrap().value,
                Statistic::Kendall => kendall(&x, &y, &corr).unwrap().value,
                Statistic::PairwiseAccuracy => pairwise_accuracy(&x, &y, &corr).unwrap().value,
            };
            assert!(
                a.low < point && point < a.high,
                "{stat:?}: {point} not in [{}, {}]",
                a.low,
                a.high
            );
            assert!(a.high - a.low < 0.2, "{stat:?}: width {}", a.high - a.low);
            assert_eq!(a.valid, 400);
            let other = BootstrapConfig::builder().resamples(400).seed(4).build().unwrap();
            assert_ne!(bootstrap(&x, &y, stat, &corr, &other).unwrap(), a, "the seed matters");
        }
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 4.0);
        assert_eq!(percentile(&v, 0.5), 2.5);
        // numpy.percentile([1,2,3,4], 2.5) = 1.075
        assert!((percentile(&v, 0.025) - 1.075).abs() < 1e-15);
        assert!(BootstrapConfig::builder().resamples(10).build().is_err());
        assert!(BootstrapConfig::builder().level(1.0).build().is_err());
    }
}
