//! Stage 5 on its own: evaluate a run folder, or re-evaluate a published testbed summary.
//!
//! ```text
//! cargo run --release --example evaluate -- runs/quickstart
//! cargo run --release --example evaluate -- path/to/summary_frozenlake.json
//! ```
//!
//! A folder: every method in `predictions/` against every reference in `labels/` with the
//! same signal; writes `summary.json`, `summary.md` and `summary_plots/` into the folder.
//! A file: a published `summary_*.json`, whose figures are recomputed from its stored values
//! under the published rules; writes `<name>.qval.json`, `.md` and plots beside it, and
//! prints every figure that differs from the stored one.

use anyhow::Context as _;
use clap::Parser;

use qval::metrics::{BootstrapConfig, EvaluateConfig, evaluate_run, recompute_published};

#[derive(Parser)]
#[command(about = "Evaluate a qval run folder or a published testbed summary")]
struct Args {
    /// A run folder (with labels/ and predictions/) or a published summary JSON file.
    path: std::path::PathBuf,
    /// Bootstrap resamples for the confidence intervals (0 skips them).
    #[arg(long, default_value_t = 10_000)]
    resamples: usize,
    /// Minimum usable pairs for a correlation (published: 50).
    #[arg(long, default_value_t = 50)]
    min_pairs: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut cfg = EvaluateConfig::default();
    cfg.correlation.min_pairs = args.min_pairs;
    cfg.bootstrap = match args.resamples {
        0 => None,
        b => Some(BootstrapConfig::builder().resamples(b).build()?),
    };
    let (summary, dir, stem, diffs) = if args.path.is_dir() {
        let s = evaluate_run(&args.path, &cfg)?;
        (s, args.path.clone(), "summary".to_string(), None)
    } else {
        let (s, d) = recompute_published(&args.path, &cfg)?;
        let dir = args.path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
        let stem = format!(
            "{}.qval",
            args.path.file_stem().context("a file name")?.to_string_lossy()
        );
        (s, dir, stem, Some(d))
    };
    print!("{}", summary.markdown());
    let (written, warnings) = summary.write(&dir, &stem)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "wrote {} files: {}",
        written.len(),
        dir.join(format!("{stem}.json")).display()
    );
    if let Some(diffs) = diffs {
        if diffs.is_empty() {
            println!("every stored figure agrees with qval's (1e-9 relative)");
        } else {
            println!("{} figures differ from the stored summary:", diffs.len());
            for d in diffs {
                println!("  {}: stored {} / qval {}", d.what, d.stored, d.recomputed);
            }
        }
    }
    Ok(())
}
