//! An experiment driven from your own program through the library, without the command line:
//! load the file, register your own environment and method types, run it, read the summary.
//!
//! ```text
//! cargo run --release --example run_experiment     # runs examples/corridor.toml in a temp folder
//! ```
//!
//! The registrations (an environment type `corridor`, a method type `steps-left`) are in
//! `examples/support/corridor.rs`, shared with `custom_environment`, which puts them in the
//! `qval` command instead.

#[path = "support/corridor.rs"]
mod corridor;

use qval::runner::{Plan, RunOptions, spec};

fn main() {
    qval::cli::exit_on_error(run());
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let (experiment, source) = spec::load("examples/corridor.toml".as_ref())?;
    let folder = tempfile::tempdir()?;
    let options = RunOptions {
        out: Some(folder.path().join("corridor")),
        quiet: true,
        ..RunOptions::default()
    };
    // Everything in the file is checked here, before any work: a misspelled key, a bad value,
    // an environment type or method type the registry does not know.
    let plan = Plan::new(experiment, &source, &corridor::registry(), options)?;
    let report = qval::runner::run(&plan).await?;
    let summary = report
        .summary
        .ok_or_else(|| anyhow::anyhow!("the run did not evaluate"))?;
    let mut rho = std::collections::BTreeMap::new();
    for (labels, estimation) in &summary.estimations {
        for (method, e) in estimation.flat_methods() {
            let r = e.correlations.spearman.as_ref().and_then(|f| f.correlation);
            println!(
                "{labels} vs {method}: Spearman rho {}",
                r.map_or("NaN".into(), |r| format!("{r:.3}"))
            );
            rho.insert(method, r.unwrap_or(f64::NAN));
        }
    }
    // The distance to the end ranks actions as their value does; a random score does not.
    let (steps, random) = (rho["steps-left-q"], rho["random-q"]);
    anyhow::ensure!(
        steps > 0.5 && steps > random,
        "steps-left-q ({steps:.3}) should rank far above random ({random:.3})"
    );
    let ran: Vec<String> = report.ran.iter().map(ToString::to_string).collect();
    println!("stages run: {}", ran.join(", "));
    Ok(())
}
