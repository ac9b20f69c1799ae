//! Max-Value Monte Carlo labels against exact values.

mod common;

use common::{point_at, runtime};
use qval::envs::frozenlake::{FrozenLake, OptimalPolicy, solver};
use qval::{Aggregation, Labeler, MvmcConfig, MvmcLabeler, Signal};
use qval_core::Environment;
use std::sync::Arc;

/// gamma^(n-1) by repeated multiplication, the order MVMC discounts in.
fn discounted(gamma: f64, n: usize) -> f64 {
    (1..n).fold(1.0, |acc, _| acc * gamma)
}

#[test]
fn deterministic_labels_are_gamma_to_the_steps_and_equal_finite_horizon_q_star() {
    let env = Arc::new(FrozenLake::builder().random_maps(40, 8, 2024).build().unwrap());
    let gamma = env.gamma();
    let policy = Arc::new(OptimalPolicy::for_env(&env));
    let labeler = MvmcLabeler::new(env.clone(), policy, MvmcConfig::builder().rollouts(1).build().unwrap());
    let max_steps = env.spec().max_steps;
    let mut points = Vec::new();
    for (m, grid) in env.maps().iter().enumerate() {
        for pos in (0..64).filter(|&p| !grid.tile(p).is_terminal()) {
            for a in 0..4 {
                for step in [0, 10, 20, 25, 29] {
                    points.push(point_at(&env, m, pos, a, step));
                }
            }
        }
    }
    let labels = runtime(2).block_on(labeler.label_batch(&points));
    let mut checked = 0;
    let mut positive = 0;
    let mut budget_cut = 0;
    for (p, l) in points.iter().zip(&labels) {
        assert!(l.aborted.is_none(), "{:?}", l.aborted);
        let m = p.trajectory_index;
        let grid = &env.maps()[m];
        let pos: usize = p.state["pos"].as_u64().unwrap() as usize;
        let a = p.action_text.as_str();
        let a = ["left", "down", "right", "up"].iter().position(|x| *x == a).unwrap();
        let remaining = max_steps - p.step_index;
        // Exact: n = 1 + distance from the next cell, if within the remaining budget.
        let next = grid.move_from(pos, a);
        let dist = grid.distances_to_goal()[next];
        let expected = match dist {
            Some(d) if d < remaining && !(grid.tile(next).is_terminal() && d > 0) => discounted(gamma, 1 + d),
            _ => 0.0,
        };
        assert_eq!(
            l.value, expected,
            "point {}: label {} expected {}",
            p.id, l.value, expected
        );
        // And Q* over the remaining budget from dynamic programming, bit for bit.
        let q = solver::optimal_values(grid, false, gamma, Some(remaining)).q[pos][a];
        assert_eq!(
            l.value, q,
            "point {}: label {} vs finite-horizon Q* {}",
            p.id, l.value, q
        );
        if l.value > 0.0 {
            positive += 1;
        }
        if dist.is_some_and(|d| 1 + d > remaining) {
            budget_cut += 1;
        }
        checked += 1;
    }
    assert!(checked > 40_000, "{checked}");
    assert!(
        positive > checked / 4 && budget_cut > 1000,
        "the test covers both cases: {positive} {budget_cut}"
    );
    // The values published for FrozenLake: 0.95^12 = 0.5404 for 13 steps.
    assert!((discounted(0.95, 13) - 0.5404).abs() < 1e-4);
}

#[test]
fn slippery_mean_approaches_the_exact_q_of_the_reference_policy() {
    let env = Arc::new(
        FrozenLake::builder()
            .preset_4x4()
            .slippery(true)
            .max_steps(100)
            .build()
            .unwrap(),
    );
    let gamma = env.gamma();
    let grid = env.maps()[0].clone();
    let policy = Arc::new(OptimalPolicy::for_env(&env));
    let table = solver::reference_policy(&grid, true, gamma);
    let k = 4000;
    let mean = MvmcLabeler::new(
        env.clone(),
        policy.clone(),
        MvmcConfig::builder()
            .rollouts(k)
            .aggregation(Aggregation::Mean)
            .seed(5)
            .build()
            .unwrap(),
    );
    let max = MvmcLabeler::new(
        env.clone(),
        policy,
        MvmcConfig::builder().rollouts(k).seed(5).build().unwrap(),
    );
    let points: Vec<_> = [0, 4, 8, 9, 10, 13, 14]
        .iter()
        .flat_map(|&pos| (0..4).map(move |a| (pos, a)))
        .map(|(pos, a)| point_at(&env, 0, pos, a, 60))
        .collect();
    let rt = runtime(2);
    let means = rt.block_on(mean.label_batch(&points));
    let maxes = rt.block_on(max.label_batch(&points));
    let exact = solver::policy_values(&grid, true, gamma, &table, 40);
    for ((p, lm), lx) in points.iter().zip(&means).zip(&maxes) {
        let pos = p.state["pos"].as_u64().unwrap() as usize;
        let a = ["left", "down", "right", "up"]
            .iter()
            .position(|x| *x == p.action_text)
            .unwrap();
        let q = exact.q[pos][a];
        // Returns lie in [0, 1]: sd of the mean <= 0.5 / sqrt(k) = 0.0079; allow 4 sd.
        assert!(
            (lm.value - q).abs() < 0.032,
            "point {}: mean {} vs exact {}",
            p.id,
            lm.value,
            q
        );
        assert_eq!(lm.returns, lx.returns, "same seed, same rollouts");
        assert!(lx.value >= lm.value);
        assert_eq!(lx.value, lx.returns.iter().copied().fold(f64::MIN, f64::max));
        assert_eq!(lm.returns.len(), k);
    }
    // The labels differ across actions: the test is not vacuous.
    let spread = means.iter().map(|l| l.value).fold(0.0, f64::max) - means.iter().map(|l| l.value).fold(1.0, f64::min);
    assert!(spread > 0.3, "{spread}");
}

#[test]
fn v_and_advantage_labels_match_exact_values() {
    let env = Arc::new(FrozenLake::builder().random_maps(5, 8, 9).build().unwrap());
    let gamma = env.gamma();
    let policy = Arc::new(OptimalPolicy::for_env(&env));
    let v = MvmcLabeler::new(
        env.clone(),
        policy.clone(),
        MvmcConfig::builder().rollouts(1).signal(Signal::V).build().unwrap(),
    );
    let adv = MvmcLabeler::new(
        env.clone(),
        policy,
        MvmcConfig::builder()
            .rollouts(1)
            .signal(Signal::Advantage)
            .build()
            .unwrap(),
    );
    assert_eq!(Labeler::name(&v), "mvmc-v");
    let points: Vec<_> = (0..64)
        .filter(|&p| !env.maps()[1].tile(p).is_terminal())
        .flat_map(|p| (0..4).map(move |a| (p, a)))
        .map(|(p, a)| point_at(&env, 1, p, a, 12))
        .collect();
    let rt = runtime(2);
    let vs = rt.block_on(v.label_batch(&points));
    let advs = rt.block_on(adv.label_batch(&points));
    let grid = &env.maps()[1];
    let v_now = solver::optimal_values(grid, false, gamma, Some(30 - 12)).v;
    let v_next = solver::optimal_values(grid, false, gamma, Some(30 - 13)).v;
    for ((p, lv), la) in points.iter().zip(&vs).zip(&advs) {
        let pos = p.state["pos"].as_u64().unwrap() as usize;
        let next = p.next_state["pos"].as_u64().unwrap() as usize;
        assert_eq!(lv.value, v_now[pos]);
        let vn = if grid.tile(next).is_terminal() {
            0.0
        } else {
            v_next[next]
        };
        assert_eq!(la.value, vn - v_now[pos], "{}", p.id);
    }
}

#[test]
fn exhausted_budget_and_bad_states_abort_with_a_reason() {
    let env = Arc::new(FrozenLake::builder().preset_4x4().build().unwrap());
    let labeler = MvmcLabeler::new(
        env.clone(),
        Arc::new(OptimalPolicy::for_env(&env)),
        MvmcConfig::builder().rollouts(2).build().unwrap(),
    );
    let mut late = point_at(&env, 0, 0, 2, 30);
    late.id = "late".into();
    let mut broken = point_at(&env, 0, 0, 2, 3);
    broken.state = serde_json::json!({"map": ["nonsense"], "pos": 0});
    let labels = runtime(1).block_on(labeler.label_batch(&[late, broken]));
    assert!(labels[0].value.is_nan());
    assert!(
        labels[0].aborted.as_deref().unwrap().contains("no steps left"),
        "{:?}",
        labels[0].aborted
    );
    assert!(labels[1].value.is_nan());
    assert!(
        labels[1].aborted.as_deref().unwrap().contains("cannot restore state"),
        "{:?}",
        labels[1].aborted
    );
}

#[test]
fn builder_rejects_bad_parameters() {
    assert!(
        MvmcConfig::builder()
            .rollouts(0)
            .build()
            .unwrap_err()
            .to_string()
            .contains("rollouts")
    );
    assert!(
        MvmcConfig::builder()
            .gamma(0.0)
            .build()
            .unwrap_err()
            .to_string()
            .contains("gamma")
    );
    assert!(MvmcConfig::builder().gamma(1.01).build().is_err());
    assert!(MvmcConfig::builder().concurrency(0).build().is_err());
    assert!(MvmcConfig::builder().step_penalty(f64::NAN).build().is_err());
}

/// Exact labels are what MVMC estimates: equal to one rollout on deterministic maps (Q, V
/// and advantage, at every step counter), and the limit of the MVMC mean on slippery ones.
#[test]
fn exact_labels_equal_deterministic_mvmc_and_the_slippery_mean() {
    use qval::envs::frozenlake::ExactLabeler;
    let rt = runtime(2);
    for (slippery, rollouts) in [(false, 1), (true, 4000)] {
        let env = Arc::new(
            FrozenLake::builder()
                .random_maps(3, 6, 11)
                .slippery(slippery)
                .max_steps(20)
                .build()
                .unwrap(),
        );
        let mut points = Vec::new();
        for (m, grid) in env.maps().iter().enumerate() {
            for pos in (0..36)
                .filter(|&p| !grid.tile(p).is_terminal())
                .step_by(if slippery { 5 } else { 1 })
            {
                for a in 0..4 {
                    for step in [0, 9, 17, 19] {
                        points.push(point_at(&env, m, pos, a, step));
                    }
                }
            }
        }
        for signal in [Signal::Q, Signal::V, Signal::Advantage] {
            let exact = ExactLabeler::new(env.clone(), signal, None);
            let mvmc = MvmcLabeler::new(
                env.clone(),
                Arc::new(OptimalPolicy::for_env(&env)),
                MvmcConfig::builder()
                    .rollouts(rollouts)
                    .aggregation(Aggregation::Mean)
                    .signal(signal)
                    .seed(3)
                    .build()
                    .unwrap(),
            );
            let e = rt.block_on(exact.label_batch(&points));
            let m = rt.block_on(mvmc.label_batch(&points));
            let mut worst: f64 = 0.0;
            for (x, y) in e.iter().zip(&m) {
                assert!(x.aborted.is_none() && y.aborted.is_none());
                worst = worst.max((x.value - y.value).abs());
            }
            // Deterministic: identical to the last bit. Slippery: within Monte-Carlo error
            // (a return is in [-1, 1]; 4000 rollouts give a standard error below 0.016).
            let tolerance = if slippery { 0.07 } else { 1e-12 };
            assert!(
                worst <= tolerance,
                "slippery {slippery}, {signal:?}: worst |exact - mvmc| = {worst} over {} points",
                points.len()
            );
        }
    }
}
