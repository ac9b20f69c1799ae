//! Potential and shaped-reward entries in the published layout. No published summary has
//! them, so `scripts/make_shaped_fixtures.py` constructs two from the published evaluation
//! code (figures by scipy): recomputed, they agree to the last digit; the potentials of shaped
//! rewards, which the summary cannot reproduce (it keeps the raw values), are listed with the
//! reason. The transforms equal the script's (the published code's) bit for bit.

mod common;

use common::fixture;
use qval_metrics::summary::Granularity;
use qval_metrics::transforms::{TrajectoryStep, potentials, sum_per_trajectory};
use qval_metrics::{EvaluateConfig, recompute_published};
use serde_json::Value;

fn values(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan())
}

#[test]
fn constructed_potential_and_shaped_reward_summaries_recompute_with_no_difference() {
    let r = recompute_published(
        &fixture("qval_constructed/constructed_potential_summary.json"),
        &EvaluateConfig::default(),
    )
    .unwrap();
    assert!(r.differences.is_empty(), "{:#?}", r.differences);
    assert!(r.not_recomputable.is_empty(), "{:?}", r.not_recomputable);
    // 2 estimations x 3 methods x 3 figures x (coefficient, p, n).
    assert_eq!(r.compared, 54);
    let shaped = &r.summary.estimations["shaped_returns"];
    assert_eq!(shaped.granularity, Granularity::Trajectory);
    let m = shaped.flat_methods();
    let (_, good) = m.iter().find(|(n, _)| n == "return_shaping").unwrap();
    let rho = good.correlations.spearman.as_ref().unwrap();
    assert_eq!(rho.num_points, 59, "60 trajectories, one sum NaN");
    assert!(rho.correlation.unwrap() > 0.8);
    assert!(good.predicted_trajectory_sums.as_ref().unwrap().len() == 60);

    // With shaped-reward predictions, the potential entry needs the points' trajectories.
    let r = recompute_published(
        &fixture("qval_constructed/constructed_shaped_reward_summary.json"),
        &EvaluateConfig::default(),
    )
    .unwrap();
    assert!(r.differences.is_empty(), "{:#?}", r.differences);
    assert_eq!(r.compared, 27);
    assert_eq!(r.not_recomputable.len(), 1);
    assert_eq!(r.not_recomputable[0].what, "estimations.potential_mc_max");
    assert!(
        r.not_recomputable[0].why.contains("running sums"),
        "{:?}",
        r.not_recomputable
    );
}

#[test]
fn the_transforms_equal_the_published_code_bit_for_bit() {
    let text = std::fs::read_to_string(fixture("qval_constructed/constructed_points.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let points: Vec<TrajectoryStep> = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| TrajectoryStep {
            trajectory: p[0].as_u64().unwrap() as usize,
            step: p[1].as_u64().unwrap() as usize,
        })
        .collect();
    for name in ["good_shaping", "return_shaping", "noise"] {
        let f = values(&v["predictions"][name]);
        let want = values(&v["potentials"][name]);
        assert!(same_bits(&potentials(&f, &points), &want), "{name}: potentials");
        let want = values(&v["trajectory_sums"][name]);
        assert!(same_bits(&sum_per_trajectory(&f, &points, 60), &want), "{name}: sums");
    }
}
