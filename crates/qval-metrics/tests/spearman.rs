use qval_metrics::{CorrelationConfig, LengthPolicy, MetricsError, average_ranks, pearson, spearman};

fn cfg(min: usize) -> CorrelationConfig {
    CorrelationConfig::builder().min_pairs(min).build().unwrap()
}

#[test]
fn ranks_average_ties() {
    assert_eq!(
        average_ranks(&[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0]),
        vec![4.0, 1.5, 5.0, 1.5, 6.5, 9.0, 3.0, 8.0, 6.5]
    );
    assert_eq!(average_ranks(&[0.0, -0.0, 1.0]), vec![1.5, 1.5, 3.0]);
    assert_eq!(average_ranks(&[2.0, 2.0, 2.0]), vec![2.0, 2.0, 2.0]);
}

#[test]
fn spearman_matches_hand_computed_values() {
    // scipy.stats.spearmanr([1,2,3,4,5],[5,6,7,8,7]).statistic = 0.8207826816681233
    let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0], &cfg(3)).unwrap();
    assert!((r.value - 0.820_782_681_668_123_3).abs() < 1e-15, "{}", r.value);
    // Monotone transforms do not change rho; reversal negates it.
    let x: Vec<f64> = (0..100).map(|i| ((i * 37) % 101) as f64).collect();
    let y: Vec<f64> = x.iter().map(|v| v.powi(3) - 4.0).collect();
    assert!((spearman(&x, &y, &cfg(50)).unwrap().value - 1.0).abs() < 1e-15);
    let z: Vec<f64> = x.iter().map(|v| -v.exp()).collect();
    assert!((spearman(&x, &z, &cfg(50)).unwrap().value + 1.0).abs() < 1e-15);
    // Pearson differs from Spearman on non-linear data.
    assert!(pearson(&x, &y, &cfg(50)).unwrap().value < 0.95);
}

#[test]
fn nan_pairs_are_dropped_and_small_samples_are_nan_with_a_reason() {
    let x = [1.0, 2.0, f64::NAN, 4.0, 5.0, 6.0];
    let y = [1.0, 2.0, 3.0, f64::NAN, 5.0, 7.0];
    let r = spearman(&x, &y, &cfg(3)).unwrap();
    assert_eq!(r.n, 4);
    assert!((r.value - 1.0).abs() < 1e-15, "{}", r.value);
    let r = spearman(&x, &y, &CorrelationConfig::default()).unwrap();
    assert!(r.value.is_nan() && r.note.unwrap().contains("4 usable pairs, fewer than the minimum of 50"));
    let r = spearman(&[1.0; 60], &(0..60).map(f64::from).collect::<Vec<_>>(), &cfg(50)).unwrap();
    assert!(r.value.is_nan() && r.note.unwrap().contains("constant"));
}

#[test]
fn lengths_must_match_unless_truncation_is_asked_for() {
    let x = [1.0, 2.0, 3.0, 4.0];
    let y = [1.0, 2.0, 3.0];
    assert_eq!(
        spearman(&x, &y, &cfg(3)).unwrap_err(),
        MetricsError::LengthMismatch { left: 4, right: 3 }
    );
    let t = CorrelationConfig::builder()
        .min_pairs(3)
        .lengths(LengthPolicy::TruncateToShorter)
        .build()
        .unwrap();
    assert_eq!(spearman(&x, &y, &t).unwrap().n, 3);
    assert!(CorrelationConfig::builder().min_pairs(2).build().is_err());
}
