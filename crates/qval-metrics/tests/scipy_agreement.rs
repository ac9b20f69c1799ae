//! qval's correlations and p-values against scipy's, on fixtures written by
//! `scripts/make_scipy_fixtures.py` (committed as data, so this test needs no Python).

mod common;

use qval_metrics::special::binomial_cdf;
use qval_metrics::{Correlation, CorrelationConfig, kendall, pearson, spearman};
use serde_json::Value;

fn fixtures() -> Value {
    let path = common::fixture("scipy.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the committed fixture file")).expect("valid JSON")
}

fn expect(v: &Value) -> (f64, f64) {
    let f = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
    (f(&v[0]), f(&v[1]))
}

fn check(what: &str, case: &Value, got: &Correlation, want: (f64, f64), failures: &mut Vec<String>) {
    let (stat, p) = want;
    let label = format!(
        "{what} kind={} n={} (usable {})",
        case["kind"], case["n"], case["usable"]
    );
    if stat.is_nan() {
        if !got.value.is_nan() || !got.p_value.is_nan() || got.note.is_none() {
            failures.push(format!("{label}: scipy gives NaN, qval {:?}", got));
        }
        return;
    }
    if (got.value - stat).abs() > 1e-12 {
        failures.push(format!(
            "{label}: statistic {} vs scipy {} (diff {:e})",
            got.value,
            stat,
            got.value - stat
        ));
    }
    let p_ok = if p < 1e-300 {
        got.p_value < 1e-290
    } else {
        ((got.p_value - p) / p).abs() <= 1e-9
    };
    if !p_ok {
        failures.push(format!(
            "{label}: p {:e} vs scipy {:e} (rel {:e})",
            got.p_value,
            p,
            (got.p_value - p) / p
        ));
    }
}

#[test]
fn correlations_and_p_values_agree_with_scipy() {
    let fx = fixtures();
    let cfg = CorrelationConfig::builder().min_pairs(3).build().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap() as usize;
        let (x, y) = common::make(case["kind"].as_str().unwrap(), n, case["seed"].as_u64().unwrap());
        let usable = x.iter().zip(&y).filter(|(a, b)| !a.is_nan() && !b.is_nan()).count();
        assert_eq!(
            usable as u64,
            case["usable"].as_u64().unwrap(),
            "inputs are rebuilt identically"
        );
        check(
            "pearson",
            case,
            &pearson(&x, &y, &cfg).unwrap(),
            expect(&case["pearson"]),
            &mut failures,
        );
        check(
            "spearman",
            case,
            &spearman(&x, &y, &cfg).unwrap(),
            expect(&case["spearman"]),
            &mut failures,
        );
        check(
            "kendall",
            case,
            &kendall(&x, &y, &cfg).unwrap(),
            expect(&case["kendall"]),
            &mut failures,
        );
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn binomial_test_agrees_with_scipy() {
    let fx = fixtures();
    for t in fx["binomtest"].as_array().unwrap() {
        let (k, n, p) = (
            t["k"].as_u64().unwrap(),
            t["n"].as_u64().unwrap(),
            t["p"].as_f64().unwrap(),
        );
        let got = if 2 * k == n {
            1.0
        } else {
            (2.0 * binomial_cdf(k.min(n - k), n, 0.5)).min(1.0)
        };
        assert!(
            (got - p).abs() <= 1e-9 * p.max(1e-300),
            "binomtest({k}, {n}): {got:e} vs scipy {p:e}"
        );
    }
}
