//! all-MiniLM-L6-v2 throughput in Rust: sentences per second for the texts of a JSON file
//! (a list of strings), best of `--repeat` runs. Driven by
//! `scripts/bench_minilm_vs_torch.py`, which times sentence-transformers on the same texts.
//!
//! ```text
//! cargo run --release --features minilm --example bench_minilm -- texts.json --batch 64
//! ```

use clap::Parser;
use std::time::Instant;

use qval::encoders::{MiniLm, MiniLmConfig};

#[derive(Parser)]
struct Args {
    /// A JSON list of texts.
    texts: std::path::PathBuf,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Runs; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

fn main() {
    qval::cli::exit_on_error(run());
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let texts: Vec<String> = serde_json::from_str(&std::fs::read_to_string(&args.texts)?)?;
    let model = MiniLm::load(&MiniLmConfig {
        model_dir: MiniLm::locate()?,
        batch_size: args.batch,
    })?;
    model.encode_texts(&texts[..texts.len().min(args.batch)])?; // warm up
    let mut best = f64::INFINITY;
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        let v = model.encode_texts(&texts)?;
        best = best.min(t.elapsed().as_secs_f64());
        anyhow::ensure!(v.len() == texts.len());
    }
    println!(
        "{{\"texts\": {}, \"seconds\": {best:.6}, \"per_second\": {:.1}}}",
        texts.len(),
        texts.len() as f64 / best
    );
    Ok(())
}
