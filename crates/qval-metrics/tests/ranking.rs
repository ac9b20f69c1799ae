use qval_metrics::{BootstrapConfig, RankingTies, StateCandidates, group_summary, per_state_ranking};

fn state(labels: &[f64], predictions: &[f64]) -> StateCandidates {
    StateCandidates {
        state: "s".into(),
        labels: labels.to_vec(),
        predictions: predictions.to_vec(),
    }
}

#[test]
fn per_state_ranking_applies_the_published_skip_rules() {
    let states = vec![
        state(&[0.9, 0.5, 0.1, 0.0], &[4.0, 3.0, 2.0, 1.0]), // rho 1
        state(&[0.9, 0.5, 0.1, 0.0], &[1.0, 2.0, 3.0, 4.0]), // rho -1
        state(&[0.9, 0.9, 0.1, 0.0], &[3.0, 3.0, 2.0, 1.0]), // ties on both sides: rho 1
        state(&[0.5], &[1.0]),                               // too few
        state(&[0.5, f64::NAN], &[1.0, 2.0]),                // NaN
        state(&[0.5, 0.5, 0.5], &[1.0, 2.0, 3.0]),           // constant reference
        state(&[0.1, 0.5, 0.9], &[2.0, 2.0, 2.0]),           // constant prediction
        state(&[0.1, 0.5, 0.9], &[1.0, 3.0, 2.0]),           // rho 0.5
    ];
    // qval's stricter rule: a tie scores 0, a NaN label is skipped.
    let r = per_state_ranking(&states, RankingTies::Zero, None);
    assert_eq!(r.used, 5);
    assert_eq!(
        (
            r.skipped_too_few,
            r.skipped_nan,
            r.skipped_constant_reference,
            r.tied_predictions
        ),
        (1, 1, 1, 1)
    );
    let expect = [1.0, -1.0, 1.0, 0.0, 0.5];
    let used: Vec<f64> = r.per_state.iter().copied().filter(|v| !v.is_nan()).collect();
    for (a, b) in used.iter().zip(expect) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    assert!((r.mean - 0.3).abs() < 1e-12);
    // numpy.std([1, -1, 1, 0, 0.5], ddof=1) = 0.8366600265340756
    assert!((r.std - 0.836_660_026_534_075_6).abs() < 1e-12, "{}", r.std);
    // The published rule: the tied state and the NaN label are counted with an undefined
    // rho, which voids the mean and std.
    let p = per_state_ranking(&states, RankingTies::Published, None);
    assert_eq!(
        (p.used, p.skipped_too_few, p.skipped_nan, p.skipped_constant_reference),
        (6, 1, 0, 1)
    );
    assert!(p.mean.is_nan() && p.std.is_nan());
    let clean: Vec<StateCandidates> = states.iter().take(3).cloned().collect();
    let c = per_state_ranking(&clean, RankingTies::Published, None);
    assert!((c.mean - 1.0 / 3.0).abs() < 1e-12);
    let one = per_state_ranking(&clean[..1], RankingTies::Published, None);
    assert_eq!((one.mean, one.std), (1.0, 0.0), "one state: std 0.0 as published");
    let boot = BootstrapConfig::builder().resamples(1000).seed(1).build().unwrap();
    let ci = per_state_ranking(&states, RankingTies::Zero, Some(&boot)).ci.unwrap();
    assert!(ci.low < r.mean && r.mean < ci.high && ci.low >= -1.0 && ci.high <= 1.0);
}

#[test]
fn group_summary_of_samples() {
    let s = group_summary(&[0.88, 0.99, 0.91, f64::NAN, 0.95]);
    assert_eq!((s.n, s.nan), (4, 1));
    assert!((s.mean - 0.9325).abs() < 1e-12);
    // statistics.stdev([0.88, 0.99, 0.91, 0.95]) = 0.04787135538781689 (n - 1, as the published aggregate)
    assert!((s.std - 0.04787135538781689).abs() < 1e-12, "{}", s.std);
    assert_eq!(group_summary(&[0.5]).std, 0.0, "one sample: 0.0");
    assert_eq!((s.min, s.max), (0.88, 0.99));
    assert!((s.median - 0.93).abs() < 1e-12);
    assert!(group_summary(&[f64::NAN]).mean.is_nan());
}
