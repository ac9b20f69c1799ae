//! Your own dense signal, evaluated on the quickstart's data.
//!
//! ```text
//! cargo run --release -p qval-cli -- run experiments/quickstart.toml   # writes runs/quickstart/
//! cargo run --release --example custom_method     # scores those points with the method below
//! ```
//!
//! A method is any type implementing `DenseSignalMethod`: a name, the signal it estimates
//! (Q or V), and a score per point. Only the order of the scores matters.

use qval::io::{Kind, read_jsonl};
use qval::metrics::{CorrelationConfig, align, spearman};
use qval::stage::layout;
use qval::{DenseSignalMethod, EvaluationPoint, Label, MethodContext, Signal, StageOptions, async_trait, predict};

/// Manhattan distance from the agent (`@`) to the bottom-right corner of the grid, read off
/// the text the agent sees after the action: nearer the goal is better. Knows nothing of holes.
struct Manhattan;

#[async_trait]
impl DenseSignalMethod for Manhattan {
    fn name(&self) -> String {
        "manhattan-q".into()
    }
    fn signal(&self) -> Signal {
        Signal::Q
    }
    async fn evaluate(&self, point: &EvaluationPoint, _ctx: &MethodContext) -> qval::Result<f64> {
        let rows: Vec<Vec<&str>> = point
            .next_observation
            .text
            .lines()
            .filter(|l| !l.starts_with("Error"))
            .map(|l| l.split(' ').collect())
            .collect();
        let (r, c) = rows
            .iter()
            .enumerate()
            .find_map(|(r, row)| row.iter().position(|t| *t == "@").map(|c| (r, c)))
            .ok_or_else(|| qval::CoreError::Method("no agent `@` in the observation".into()))?;
        Ok(-(((rows.len() - 1 - r) + (rows[0].len() - 1 - c)) as f64))
    }
}

/// Reads one file of the run folder. Only a file that does not exist is blamed on a missing
/// quickstart run; any other error (a malformed line, a binary file, no permission) is
/// reported as it is, with its path and line.
pub fn read_run_file<T: serde::de::DeserializeOwned>(path: &std::path::Path, kind: Kind) -> anyhow::Result<Vec<T>> {
    match read_jsonl::<T>(path, kind) {
        Ok((_, records)) => Ok(records),
        Err(qval::CoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(anyhow::anyhow!(
                "{} does not exist: run `cargo run --release -p qval-cli -- run experiments/quickstart.toml` first to create it",
                path.display()
            ))
        }
        Err(e) => Err(e.into()),
    }
}

#[tokio::main]
async fn main() {
    qval::cli::exit_on_error(run().await);
}

async fn run() -> anyhow::Result<()> {
    let run = std::path::Path::new(std::env::args().nth(1).as_deref().unwrap_or("runs/quickstart")).to_path_buf();
    let points: Vec<EvaluationPoint> = read_run_file(&layout::points(&run), Kind::Points)?;
    let labels: Vec<Label> = read_run_file(&layout::labels(&run, "mvmc-q"), Kind::Labels)?;
    let env = qval::envs::frozenlake::FrozenLake::builder().preset_8x8().build()?;
    let ctx = MethodContext::from_spec(qval::Environment::spec(&env));

    let preds = predict(
        &Manhattan,
        &points,
        &ctx,
        &StageOptions::to_file(layout::predictions(&run, &Manhattan.name())),
    )
    .await?;
    let a = align(&labels, &preds);
    let rho = spearman(&a.predictions, &a.labels, &CorrelationConfig::default())?;
    println!(
        "{}: Spearman rho = {:.4} over {} points",
        Manhattan.name(),
        rho.value,
        rho.n
    );
    Ok(())
}
