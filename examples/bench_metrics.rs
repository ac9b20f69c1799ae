//! Metrics speed: bootstrap of 10,000 resamples at n = 1,000 for each statistic, and how
//! Kendall's tau grows with n (time / (n log2 n) should stay flat for an O(n log n) method).
//!
//! ```text
//! cargo run --release --example bench_metrics
//! ```

use std::time::Instant;

use qval::metrics::{BootstrapConfig, CorrelationConfig, Statistic, bootstrap, kendall};

fn data(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let x: Vec<f64> = (0..n).map(|_| next()).collect();
    // Labels with ties, as MVMC labels have.
    let y: Vec<f64> = x.iter().map(|v| ((v + next()) * 20.0).floor()).collect();
    (x, y)
}

fn main() {
    qval::cli::exit_on_error(run());
}

fn run() -> anyhow::Result<()> {
    let corr = CorrelationConfig::default();
    let cfg = BootstrapConfig::builder().resamples(10_000).seed(1).build()?;
    let (x, y) = data(1_000, 1);
    println!("bootstrap, n = 1,000, 10,000 resamples, {} threads:", cfg.threads);
    for stat in [
        Statistic::Pearson,
        Statistic::Spearman,
        Statistic::Kendall,
        Statistic::PairwiseAccuracy,
    ] {
        let t = Instant::now();
        let ci = bootstrap(&x, &y, stat, &corr, &cfg)?;
        println!(
            "  {:<18} {:>8.1} ms   95% CI [{:.4}, {:.4}]",
            format!("{stat:?}"),
            t.elapsed().as_secs_f64() * 1e3,
            ci.low,
            ci.high
        );
    }
    println!("Kendall tau-b growth:");
    for n in [10_000usize, 100_000, 1_000_000, 10_000_000] {
        let (x, y) = data(n, 2);
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            let _ = kendall(&x, &y, &corr)?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        let nlogn = n as f64 * (n as f64).log2();
        println!(
            "  n = {n:>10}: {:>9.2} ms, {:.2} ns per n log2 n",
            best * 1e3,
            best * 1e9 / nlogn
        );
    }
    Ok(())
}
