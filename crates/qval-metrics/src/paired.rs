//! Paired comparison of two methods on the same points: does method A rank the points closer
//! to the labels than method B, or can the two not be told apart?
//!
//! The published testbed reports one rho per method; two methods' rho over the same points
//! are dependent (they share the labels), so comparing their separate intervals is wrong in
//! both directions. [`paired_spearman`] resamples the points once for both methods and reports
//! the difference `rho_a - rho_b` with
//! - a paired bootstrap percentile interval and a two-sided bootstrap p-value
//!   (`min(1, 2 (min(#{d* <= 0}, #{d* >= 0}) + 1) / (B + 1))`), and
//! - as a closed-form cross-check, Zou's (2007) interval for two correlations that share a
//!   variable, on Fisher's z with the Spearman variance `1.06 / (n - 3)` (Fieller, Hartley and
//!   Pearson 1957).
//!
//! Only points where the label and both predictions are defined are used, so both rho are
//! computed on exactly the same points (they may differ from each method's own rho, which
//! uses every point that method scored). [`tiers`] groups methods that cannot be told apart.
//!
//! ```
//! use qval_metrics::{BootstrapConfig, paired_spearman};
//!
//! let labels: Vec<f64> = (0..200).map(|i| (i as f64 * 0.37).sin()).collect();
//! let good: Vec<f64> = labels.iter().enumerate().map(|(i, y)| y + 0.1 * (i as f64).cos()).collect();
//! let poor: Vec<f64> = labels.iter().enumerate().map(|(i, y)| y + 2.0 * (i as f64 * 1.3).cos()).collect();
//! let cfg = BootstrapConfig::builder().resamples(500).seed(1).build().unwrap();
//! let d = paired_spearman(&good, &poor, &labels, &cfg).unwrap();
//! assert!(d.difference.unwrap() > 0.0 && d.interval[0].unwrap() > 0.0, "A is better and the interval says so");
//! assert!(d.p_value.unwrap() < 0.05);
//! ```

use serde::{Deserialize, Serialize};

use crate::MetricsError;
use crate::bootstrap::{BootstrapConfig, groups, interval, multiplicities, run_parallel, weighted_pearson};
use crate::correlation::spearman_rho_of;

/// The difference of two methods' Spearman rho over the same points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Points where the label and both predictions are defined.
    pub n: usize,
    /// Method A's rho on those points.
    pub rho_a: Option<f64>,
    /// Method B's rho on those points.
    pub rho_b: Option<f64>,
    /// The rho between the two methods' predictions.
    pub rho_ab: Option<f64>,
    /// `rho_a - rho_b`.
    pub difference: Option<f64>,
    /// Paired bootstrap percentile interval of the difference.
    pub interval: [Option<f64>; 2],
    /// Two-sided bootstrap p-value of "no difference".
    pub p_value: Option<f64>,
    /// Zou's (2007) closed-form interval of the difference.
    pub zou_interval: [Option<f64>; 2],
    /// Resamples where both rho were defined.
    pub valid_resamples: usize,
}

impl PairedComparison {
    /// Whether the interval excludes zero (the methods can be told apart at the level).
    pub fn distinguishable(&self) -> bool {
        match self.interval {
            [Some(lo), Some(hi)] => lo > 0.0 || hi < 0.0,
            _ => false,
        }
    }
}

fn opt(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// The standard normal quantile (statrs).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(p)
}

/// Zou's (2007) interval for `r1 - r2`, two correlations with a common variable (here the
/// labels), `r12` the correlation of the two other variables, each r's own interval from
/// Fisher's z with variance `1.06 / (n - 3)`.
pub fn zou_interval(r1: f64, r2: f64, r12: f64, n: usize, level: f64) -> [f64; 2] {
    if n < 5 {
        return [f64::NAN; 2];
    }
    zou_with_se(r1, r2, r12, (1.06 / (n as f64 - 3.0)).sqrt(), level)
}

/// Zou's interval with a given standard error of Fisher's z.
fn zou_with_se(r1: f64, r2: f64, r12: f64, se: f64, level: f64) -> [f64; 2] {
    if !(r1.is_finite() && r2.is_finite() && r12.is_finite()) {
        return [f64::NAN; 2];
    }
    let z = normal_quantile(1.0 - (1.0 - level) / 2.0);
    let ci = |r: f64| {
        let fz = r.clamp(-0.999_999_999_999, 0.999_999_999_999).atanh();
        ((fz - z * se).tanh(), (fz + z * se).tanh())
    };
    let ((l1, u1), (l2, u2)) = (ci(r1), ci(r2));
    let c = ((r12 - r1 * r2 / 2.0) * (1.0 - r1 * r1 - r2 * r2 - r12 * r12) + r12.powi(3))
        / ((1.0 - r1 * r1) * (1.0 - r2 * r2));
    let d = r1 - r2;
    let lo = d
        - ((r1 - l1).powi(2) + (u2 - r2).powi(2) - 2.0 * c * (r1 - l1) * (u2 - r2))
            .max(0.0)
            .sqrt();
    let hi = d
        + ((u1 - r1).powi(2) + (r2 - l2).powi(2) - 2.0 * c * (u1 - r1) * (r2 - l2))
            .max(0.0)
            .sqrt();
    [lo, hi]
}

/// Compares method `a` with method `b` on the points where `labels`, `a` and `b` are all
/// defined (the three slices are aligned by position).
///
/// # Errors
/// [`MetricsError::LengthMismatch`] when the slices differ in length.
pub fn paired_spearman(
    a: &[f64],
    b: &[f64],
    labels: &[f64],
    cfg: &BootstrapConfig,
) -> Result<PairedComparison, MetricsError> {
    if a.len() != labels.len() || b.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            left: a.len().max(b.len()),
            right: labels.len(),
        });
    }
    let keep: Vec<usize> = (0..labels.len())
        .filter(|&i| !(a[i].is_nan() || b[i].is_nan() || labels[i].is_nan()))
        .collect();
    let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let (x, z, y) = (pick(a), pick(b), pick(labels));
    let n = y.len();
    let constant = |v: &[f64]| v.iter().all(|e| *e == v[0]);
    let rho = |p: &[f64], q: &[f64]| {
        if n < 3 || constant(p) || constant(q) {
            f64::NAN
        } else {
            spearman_rho_of(p, q)
        }
    };
    let (ra, rb, rab) = (rho(&x, &y), rho(&z, &y), rho(&x, &z));
    let empty = PairedComparison {
        n,
        rho_a: opt(ra),
        rho_b: opt(rb),
        rho_ab: opt(rab),
        difference: opt(ra - rb),
        interval: [None, None],
        p_value: None,
        zou_interval: [None, None],
        valid_resamples: 0,
    };
    if n < 3 || ra.is_nan() || rb.is_nan() {
        return Ok(empty);
    }
    let (gx, gz, gy) = (groups(&x), groups(&z), groups(&y));
    let seed = cfg.seed;
    let diffs = run_parallel(cfg, |r| {
        let mut c = vec![0u32; n];
        multiplicities(seed, r, n, &mut c);
        let (mut rx, mut rz, mut ry) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        gx.resampled_ranks(&c, &mut rx);
        gz.resampled_ranks(&c, &mut rz);
        gy.resampled_ranks(&c, &mut ry);
        weighted_pearson(&rx, &ry, &c) - weighted_pearson(&rz, &ry, &c)
    });
    let valid: Vec<f64> = diffs.iter().copied().filter(|d| !d.is_nan()).collect();
    let le = valid.iter().filter(|d| **d <= 0.0).count();
    let ge = valid.iter().filter(|d| **d >= 0.0).count();
    let p = (2.0 * (le.min(ge) + 1) as f64 / (valid.len() + 1) as f64).min(1.0);
    let iv = interval(diffs, cfg);
    let zou = zou_interval(ra, rb, rab, n, cfg.level);
    Ok(PairedComparison {
        interval: [opt(iv.low), opt(iv.high)],
        p_value: (!valid.is_empty()).then_some(p),
        zou_interval: [opt(zou[0]), opt(zou[1])],
        valid_resamples: valid.len(),
        ..empty
    })
}

/// Groups methods that cannot be told apart: methods sorted by rho (best first; undefined
/// last) are cut into tiers, a method joining the current tier when its paired interval with
/// the tier's leader includes zero. `compare(i, j)` returns the comparison of methods i and j.
pub fn tiers(
    rhos: &[(String, Option<f64>)],
    mut compare: impl FnMut(usize, usize) -> Option<PairedComparison>,
) -> Vec<Vec<String>> {
    let mut order: Vec<usize> = (0..rhos.len()).collect();
    order.sort_by(|&i, &j| {
        let key = |k: usize| rhos[k].1.unwrap_or(f64::NEG_INFINITY);
        key(j).total_cmp(&key(i)).then_with(|| rhos[i].0.cmp(&rhos[j].0))
    });
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut leader: Option<usize> = None;
    for i in order {
        let joins = match leader {
            Some(l) if rhos[i].1.is_some() => compare(l, i).is_some_and(|c| !c.distinguishable()),
            _ => false,
        };
        if joins {
            out.last_mut().expect("a tier exists").push(rhos[i].0.clone());
        } else {
            out.push(vec![rhos[i].0.clone()]);
            leader = Some(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::special::normal_sf;
    use qval_core::seed::rng_for;

    fn normal(rng: &mut impl rand::Rng) -> f64 {
        // Box-Muller.
        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Labels y and two methods y + noise; `sa`, `sb` set each method's noise.
    fn simulate(seed: u64, n: usize, sa: f64, sb: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut rng = rng_for(seed, &[17]);
        let y: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let a = y.iter().map(|v| v + sa * normal(&mut rng)).collect();
        let b = y.iter().map(|v| v + sb * normal(&mut rng)).collect();
        (a, b, y)
    }

    #[test]
    fn normal_quantile_inverts_the_normal_cdf() {
        for p in [1e-10, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999_999] {
            let x = normal_quantile(p);
            assert!((normal_sf(-x) - p).abs() < 1e-9 * p, "p {p}: x {x}");
        }
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
    }

    #[test]
    fn zou_interval_matches_the_published_worked_example() {
        // Zou (2007), example 2: r12 = .396 (r_jk), r13 = .179 (r_jh), r23 = .088, n = 66,
        // interval (-0.093, 0.517) with Fisher's usual variance 1 / (n - 3).
        let [lo, hi] = zou_with_se(0.396, 0.179, 0.088, (1.0 / 63.0f64).sqrt(), 0.95);
        assert!((lo - -0.093).abs() < 1e-3 && (hi - 0.517).abs() < 1e-3, "[{lo}, {hi}]");
        // The Spearman variance widens it.
        let [slo, shi] = zou_interval(0.396, 0.179, 0.088, 66, 0.95);
        assert!(slo < lo && shi > hi);
    }

    #[test]
    fn the_paired_test_holds_its_level_and_detects_a_real_difference() {
        let cfg = |s: u64| {
            BootstrapConfig::builder()
                .resamples(400)
                .seed(s)
                .threads(2)
                .build()
                .unwrap()
        };
        // Same true correlation: the 95% interval excludes 0 in about 5% of 200 seeds.
        let mut rejected = 0;
        let mut zou_rejected = 0;
        for seed in 0..200 {
            let (a, b, y) = simulate(seed, 150, 1.0, 1.0);
            let d = paired_spearman(&a, &b, &y, &cfg(seed)).unwrap();
            rejected += d.distinguishable() as usize;
            let [lo, hi] = d.zou_interval;
            zou_rejected += (lo.unwrap() > 0.0 || hi.unwrap() < 0.0) as usize;
        }
        eprintln!("level: bootstrap {rejected}/200, Zou {zou_rejected}/200");
        assert!((3..=20).contains(&rejected), "bootstrap rejected {rejected} of 200");
        assert!((3..=20).contains(&zou_rejected), "Zou rejected {zou_rejected} of 200");
        // A true difference of about 0.1 in rho at n = 1,000 is found in most seeds.
        let mut found = 0;
        for seed in 0..40 {
            let (a, b, y) = simulate(1000 + seed, 1000, 0.75, 1.05);
            let d = paired_spearman(&a, &b, &y, &cfg(seed)).unwrap();
            assert!(
                (d.difference.unwrap() - 0.1).abs() < 0.06,
                "difference {:?}",
                d.difference
            );
            found += (d.interval[0].unwrap() > 0.0) as usize;
        }
        eprintln!("power: {found}/40");
        assert!(found >= 32, "found {found} of 40");
    }

    #[test]
    fn the_comparison_is_deterministic_uses_common_points_and_is_antisymmetric() {
        let (mut a, b, y) = simulate(5, 300, 0.5, 0.8);
        a[3] = f64::NAN;
        let one = BootstrapConfig::builder()
            .resamples(300)
            .seed(9)
            .threads(1)
            .build()
            .unwrap();
        let four = BootstrapConfig::builder()
            .resamples(300)
            .seed(9)
            .threads(4)
            .build()
            .unwrap();
        let d = paired_spearman(&a, &b, &y, &one).unwrap();
        assert_eq!(d, paired_spearman(&a, &b, &y, &four).unwrap());
        assert_eq!(d.n, 299);
        let r = paired_spearman(&b, &a, &y, &one).unwrap();
        assert!((d.difference.unwrap() + r.difference.unwrap()).abs() < 1e-15);
        assert!((d.interval[0].unwrap() + r.interval[1].unwrap()).abs() < 1e-12);
        assert_eq!(d.p_value, r.p_value);
        // Against itself: no difference, p = 1.
        let s = paired_spearman(&a, &a, &y, &one).unwrap();
        assert_eq!(s.difference, Some(0.0));
        assert_eq!(s.p_value, Some(1.0));
        assert!(!s.distinguishable());
    }

    #[test]
    fn tiers_group_methods_that_cannot_be_told_apart() {
        let (good, _, y) = simulate(1, 800, 0.3, 0.3);
        let (same, poor, _) = {
            let mut rng = rng_for(2, &[1]);
            let same: Vec<f64> = y.iter().map(|v| v + 0.3 * normal(&mut rng)).collect();
            let poor: Vec<f64> = y.iter().map(|v| v + 3.0 * normal(&mut rng)).collect();
            (same, poor, ())
        };
        let preds = [good, poor, same];
        let cfg = BootstrapConfig::builder().resamples(400).seed(3).build().unwrap();
        let rhos: Vec<(String, Option<f64>)> = ["good", "poor", "same"]
            .iter()
            .zip(&preds)
            .map(|(n, p)| (n.to_string(), Some(spearman_rho_of(p, &y))))
            .collect();
        let t = tiers(&rhos, |i, j| paired_spearman(&preds[i], &preds[j], &y, &cfg).ok());
        assert_eq!(t.len(), 2, "{t:?}");
        let mut first = t[0].clone();
        first.sort();
        assert_eq!(first, ["good", "same"]);
        assert_eq!(t[1], ["poor"]);
    }
}
