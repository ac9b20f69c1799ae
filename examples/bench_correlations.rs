//! Times qval's Spearman, Kendall and Pearson on raw little-endian f64 files, printing one
//! JSON line per statistic (best of `--repeat` runs). Driven by `scripts/bench_vs_scipy.py`,
//! which times scipy on the same data and prints the ratios.
//!
//! ```text
//! cargo run --release --example bench_correlations -- X.f64 Y.f64 --repeat 5
//! ```

use clap::Parser;
use std::time::Instant;

use qval::metrics::{CorrelationConfig, LengthPolicy, kendall, pearson, spearman};

#[derive(Parser)]
struct Args {
    /// First variable, raw little-endian f64.
    x: std::path::PathBuf,
    /// Second variable, raw little-endian f64.
    y: std::path::PathBuf,
    /// Runs per statistic; the best is reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

fn read(path: &std::path::Path) -> anyhow::Result<Vec<f64>> {
    let bytes = std::fs::read(path)?;
    anyhow::ensure!(bytes.len() % 8 == 0, "{}: not a whole number of f64", path.display());
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

fn main() {
    qval::cli::exit_on_error(run());
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let (x, y) = (read(&args.x)?, read(&args.y)?);
    let cfg = CorrelationConfig::builder().lengths(LengthPolicy::Error).build()?;
    type Stat =
        fn(&[f64], &[f64], &CorrelationConfig) -> Result<qval::metrics::Correlation, qval::metrics::MetricsError>;
    let stats: [(&str, Stat); 3] = [("spearman", spearman), ("kendall", kendall), ("pearson", pearson)];
    for (name, f) in stats {
        let mut best = f64::INFINITY;
        let mut result = None;
        for _ in 0..args.repeat.max(1) {
            let t = Instant::now();
            let r = f(&x, &y, &cfg)?;
            best = best.min(t.elapsed().as_secs_f64());
            result = Some(r);
        }
        let r = result.expect("at least one run");
        println!(
            "{{\"stat\": \"{name}\", \"n\": {}, \"seconds\": {best:.9}, \"value\": {:.17}, \"p\": {:e}}}",
            x.len(),
            r.value,
            r.p_value
        );
    }
    Ok(())
}
