//! `qval report`: one table across evaluated runs.

use clap::Args;
use std::path::{Path, PathBuf};

use crate::{CliError, Result, out};

/// `qval report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Evaluated run folders (each with a summary.json).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where to write the report: a folder, `report/` in the current folder unless given.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
}

/// Runs `qval report`: reads each run's `summary.json`, names each run's column by the part
/// of its path that tells it from the others, and writes the cross-run report.
///
/// # Errors
/// A summary that cannot be read, a run given twice, a folder that cannot be written.
pub fn report(a: &ReportArgs) -> Result<()> {
    let names = run_names(&a.runs)?;
    let mut runs = Vec::new();
    for (dir, name) in a.runs.iter().zip(names) {
        let summary = qval_metrics::Summary::read(&dir.join("summary.json"))?;
        runs.push((name, summary));
    }
    let written = qval_metrics::write_cross_run_report(&runs, &a.out).map_err(|e| CliError::plugin("report", e))?;
    // Runs with an acting stage: alignment against gain, across runs.
    let mut acting = Vec::new();
    for (dir, (name, _)) in a.runs.iter().zip(&runs) {
        let path = dir.join("acting.json");
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| CliError::io("reading", &path, e))?;
            let summary: qval_metrics::acting::ActingSummary =
                serde_json::from_str(&text).map_err(|e| CliError::plugin(format!("{}", path.display()), e))?;
            acting.push((name.clone(), summary));
        }
    }
    if !acting.is_empty() {
        let md = a.out.join("report.md");
        let mut body = std::fs::read_to_string(&md).map_err(|e| CliError::io("reading", &md, e))?;
        body.push_str(&qval_metrics::acting::cross_run_markdown(&acting));
        qval_core::io::write_atomic(&md, body.as_bytes())?;
    }
    out::line(&format!(
        "The report of {} run(s) is in {}/ (choose the folder with --out DIR):",
        runs.len(),
        a.out.display()
    ));
    for p in &written {
        out::line(&format!("  {}", p.display()));
    }
    Ok(())
}

/// The components of a run folder's path, from the root (resolved when it exists, so that
/// `a/../b/run` and `b/run` are the same folder).
fn components(path: &Path) -> Vec<String> {
    let full = std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf());
    full.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|c| c != "/")
        .collect()
}

/// Column names for run folders: each folder's name, with as many parent folders as it takes
/// to tell it from the others (`a/run` and `b/run`, but `run-1` and `run-2`).
///
/// # Errors
/// The same folder given twice.
pub fn run_names(paths: &[PathBuf]) -> Result<Vec<String>> {
    let parts: Vec<Vec<String>> = paths.iter().map(|p| components(p)).collect();
    let mut depth = vec![1usize; paths.len()];
    let name = |i: usize, d: usize| parts[i][parts[i].len().saturating_sub(d)..].join("/");
    loop {
        let names: Vec<String> = (0..paths.len()).map(|i| name(i, depth[i])).collect();
        let clashing: Vec<usize> = (0..paths.len())
            .filter(|&i| (0..paths.len()).any(|j| j != i && names[j] == names[i]))
            .collect();
        if clashing.is_empty() {
            return Ok(names);
        }
        for &i in &clashing {
            if let Some(j) = (0..i).find(|&j| parts[j] == parts[i]) {
                return Err(CliError::Usage(format!(
                    "{}: the same run folder is given twice (as {} too)",
                    paths[i].display(),
                    paths[j].display()
                )));
            }
        }
        for i in clashing {
            depth[i] = (depth[i] + 1).min(parts[i].len());
        }
    }
}
