//! How much of a correlation's uncertainty comes from the Monte-Carlo labels.
//!
//! An MVMC label is the max (or mean) of k rollout returns, itself a random quantity. The
//! usual bootstrap resamples points and treats labels as exact. [`two_level_spearman`]
//! resamples twice: the points, and inside every drawn point its stored rollout returns
//! (k draws with replacement, the label recomputed as their max or mean; an advantage label
//! as the difference of its two aggregates). Labels without stored returns (exact labels)
//! stay fixed. Both levels use the same point draws (the outer generator of resample b is the
//! one of the points-only bootstrap), so when every point's returns agree the two intervals
//! are identical.
//!
//! From the same returns it projects how the interval would shrink with more rollouts: the
//! label part of the variance, `var(two-level with k' draws) - var(points only)`, is measured
//! for k' = 1, 2, 4, ... up to the smallest k of any point and fitted as `c / k'`; the widths
//! at 2k, 4k, 8k are projected from the width measured at k (`width_k * sqrt((var_points +
//! c / k'') / (var_points + c / k))`), and
//! the *rollouts needed* figure is the smallest power of two k'' with `c / k'' <= 0.1
//! var_points` (label noise adds at most a tenth to the variance, about 5% to the width).
//! The projection is an approximation: draws from k stored returns cannot show outcomes the
//! stored rollouts never reached.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::bootstrap::{BootstrapConfig, interval, run_parallel};
use crate::correlation::spearman_rho_of;
use qval_core::seed::rng_for;
use qval_core::{Aggregation, Label, Signal};

/// The interval width at one number of rollouts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutWidth {
    /// Rollouts per label.
    pub rollouts: usize,
    /// Width of the two-level interval.
    pub width: Option<f64>,
    /// Whether the width is projected from the fit (more rollouts than stored) or measured.
    pub projected: bool,
}

/// Points-only and two-level intervals of Spearman's rho, and the rollouts projection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelNoise {
    /// Points used (prediction and label defined).
    pub n: usize,
    /// The smallest number of stored returns of a used point (0: no stored returns).
    pub rollouts: usize,
    /// The percentile interval resampling points only.
    pub points_only: [Option<f64>; 2],
    /// The percentile interval resampling points and, inside each, its returns.
    pub two_level: [Option<f64>; 2],
    /// The share of the two-level variance that comes from the labels.
    pub label_share: Option<f64>,
    /// Widths measured at 1, 2, 4, ... up to `rollouts`, projected at 2x, 4x, 8x.
    pub widths: Vec<RolloutWidth>,
    /// The smallest power of two of rollouts at which label noise adds at most 10% to the
    /// variance.
    pub rollouts_needed: Option<usize>,
}

fn opt(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn aggregate(agg: Aggregation, v: impl Iterator<Item = f64>) -> f64 {
    match agg {
        Aggregation::Max => v.fold(f64::NEG_INFINITY, f64::max),
        Aggregation::Mean => {
            let (s, c) = v.fold((0.0, 0usize), |(s, c), x| (s + x, c + 1));
            s / c as f64
        }
    }
}

fn draw(returns: &[f64], k: usize, agg: Aggregation, rng: &mut impl rand::Rng) -> f64 {
    aggregate(agg, (0..k).map(|_| returns[rng.random_range(0..returns.len())]))
}

struct Point<'a> {
    prediction: f64,
    label: &'a Label,
}

fn sample_variance(v: &[f64]) -> f64 {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64
}

/// Resample values of rho; `k = None`: points only; `Some(0)`: each point's own count.
fn resample(points: &[Point], k: Option<usize>, cfg: &BootstrapConfig) -> Vec<f64> {
    let n = points.len();
    let seed = cfg.seed;
    run_parallel(cfg, |b| {
        let mut outer = rng_for(seed, &[b as u64]);
        let mut inner = rng_for(seed, &[b as u64, 1]);
        let (mut x, mut y) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let p = &points[outer.random_range(0..n)];
            x.push(p.prediction);
            let l = p.label;
            let label = match k {
                Some(k) if !l.returns.is_empty() => {
                    let own = |r: &[f64]| if k == 0 { r.len() } else { k };
                    let v = draw(&l.returns, own(&l.returns), l.aggregation, &mut inner);
                    if l.signal == Signal::Advantage && !l.baseline_returns.is_empty() {
                        v - draw(&l.baseline_returns, own(&l.baseline_returns), l.aggregation, &mut inner)
                    } else {
                        v
                    }
                }
                _ => l.value,
            };
            y.push(label);
        }
        let constant = |v: &[f64]| v.iter().all(|e| *e == v[0]);
        if n < 3 || constant(&x) || constant(&y) {
            f64::NAN
        } else {
            spearman_rho_of(&x, &y)
        }
    })
}

/// The two-level bootstrap of Spearman's rho between `predictions` and `labels` (aligned by
/// position; pairs with a NaN on either side are dropped).
pub fn two_level_spearman(predictions: &[f64], labels: &[Label], cfg: &BootstrapConfig) -> LabelNoise {
    let points: Vec<Point> = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| !p.is_nan() && !l.value.is_nan())
        .map(|(p, l)| Point {
            prediction: *p,
            label: l,
        })
        .collect();
    let rollouts = points
        .iter()
        .filter(|p| !p.label.returns.is_empty())
        .map(|p| p.label.returns.len())
        .min()
        .unwrap_or(0);
    let width = |iv: &crate::Interval| opt(iv.high - iv.low);
    let bounds = |iv: &crate::Interval| [opt(iv.low), opt(iv.high)];
    let base = resample(&points, None, cfg);
    let own = resample(&points, Some(0), cfg);
    let v_points = sample_variance(&base);
    let v_own = sample_variance(&own);
    let (pi, ti) = (interval(base, cfg), interval(own, cfg));
    let mut widths = Vec::new();
    let (mut num, mut den) = (0.0, 0.0);
    let mut k = 1;
    while rollouts > 0 && k <= rollouts {
        let vals = resample(&points, Some(k), cfg);
        let v = sample_variance(&vals);
        let iv = interval(vals, cfg);
        widths.push(RolloutWidth {
            rollouts: k,
            width: width(&iv),
            projected: false,
        });
        if v.is_finite() && v_points.is_finite() {
            let extra = (v - v_points).max(0.0);
            num += extra / k as f64;
            den += 1.0 / (k * k) as f64;
        }
        k = if k < rollouts && k * 2 > rollouts {
            rollouts
        } else {
            k * 2
        };
    }
    let c = if den > 0.0 { num / den } else { f64::NAN };
    let mut rollouts_needed = None;
    if rollouts > 0 && c.is_finite() && v_points > 0.0 {
        let at_k = widths.iter().find(|w| w.rollouts == rollouts).and_then(|w| w.width);
        let v_at = |k: usize| v_points + c / k as f64;
        for m in [2, 4, 8] {
            let kk = rollouts * m;
            widths.push(RolloutWidth {
                rollouts: kk,
                width: at_k.and_then(|w| opt(w * (v_at(kk) / v_at(rollouts)).sqrt())),
                projected: true,
            });
        }
        let mut kk = 1usize;
        while c / kk as f64 > 0.1 * v_points && kk < 1 << 20 {
            kk *= 2;
        }
        rollouts_needed = Some(kk);
    }
    LabelNoise {
        n: points.len(),
        rollouts,
        points_only: bounds(&pi),
        two_level: bounds(&ti),
        label_share: opt(((v_own - v_points) / v_own).max(0.0)),
        widths,
        rollouts_needed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(value_returns: Vec<f64>, agg: Aggregation) -> Label {
        let value = aggregate(agg, value_returns.iter().copied());
        Label {
            point_id: String::new(),
            signal: Signal::Q,
            value,
            aggregation: agg,
            returns: value_returns,
            baseline_returns: Vec::new(),
            aborted: None,
            candidate_of: None,
            expert: None,
            steps: None,
        }
    }

    #[test]
    fn equal_returns_give_the_points_only_interval_and_noisy_ones_a_wider_one() {
        let cfg = BootstrapConfig::builder().resamples(1000).seed(2).build().unwrap();
        let n = 200;
        let truth: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let preds: Vec<f64> = truth
            .iter()
            .enumerate()
            .map(|(i, t)| t + 0.2 * (i as f64 * 2.3).cos())
            .collect();
        let agree: Vec<Label> = truth.iter().map(|t| label(vec![*t; 4], Aggregation::Mean)).collect();
        let a = two_level_spearman(&preds, &agree, &cfg);
        assert_eq!(a.points_only, a.two_level);
        assert_eq!(a.label_share, Some(0.0));
        assert_eq!(a.rollouts, 4);
        assert_eq!(a.rollouts_needed, Some(1));
        let noisy: Vec<Label> = truth
            .iter()
            .enumerate()
            .map(|(i, t)| {
                label(
                    (0..4).map(|j| t + ((i * 7 + j * 13) as f64).sin()).collect(),
                    Aggregation::Max,
                )
            })
            .collect();
        let b = two_level_spearman(&preds, &noisy, &cfg);
        let w = |x: [Option<f64>; 2]| x[1].unwrap() - x[0].unwrap();
        assert!(w(b.two_level) > 1.04 * w(b.points_only), "{b:?}");
        assert_eq!(
            b.widths[2].width,
            Some(w(b.two_level)),
            "k = 4 measured is the two-level interval"
        );
        assert!(b.label_share.unwrap() > 0.1, "{b:?}");
        let measured: Vec<usize> = b.widths.iter().filter(|w| !w.projected).map(|w| w.rollouts).collect();
        assert_eq!(measured, [1, 2, 4]);
        // More rollouts, narrower intervals.
        let ws: Vec<f64> = b.widths.iter().map(|w| w.width.unwrap()).collect();
        assert!(ws[0] > ws[2] && ws[2] > ws[3] && ws[3] > ws[5], "{ws:?}");
        assert!(b.rollouts_needed.unwrap() > 4);
        let again = two_level_spearman(
            &preds,
            &noisy,
            &BootstrapConfig {
                threads: 1,
                ..cfg.clone()
            },
        );
        assert_eq!(again, b, "the same bytes for any thread count");
    }
}
