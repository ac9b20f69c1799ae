//! `qval evaluate`: a run folder, a folder of the published testbed's prediction files, or a
//! summary to recompute.
//!
//! Exit status: 0 when the evaluation is done (and, for a summary, every stored figure agrees
//! with the recomputed one), 4 when a recomputed summary differs or holds nothing to compare,
//! so the command can gate CI; 2 for a user error.

use clap::Args;
use std::path::{Path, PathBuf};

use qval_core::io::RunLock;
use qval_metrics::{EvaluateConfig, LabelSet, PredictionSet, Summary};

use crate::{CliError, Result, out, runner, spec};

/// `qval evaluate`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// A run folder, a folder of the published testbed's prediction files (`gt/` and
    /// `eval/`), or a `summary_*.json` (the published testbed's or qval's) to recompute.
    pub path: PathBuf,
    /// Bootstrap resamples for the intervals (0: none; default: the run's `[evaluate]`, else
    /// 10,000).
    #[arg(long)]
    pub bootstrap: Option<usize>,
    /// The minimum of usable pairs (default: the run's `[evaluate]`, else the published 50).
    #[arg(long)]
    pub min_points: Option<usize>,
    /// Predictions from anywhere: a CSV (`point_id,value`) or JSON Lines file, evaluated
    /// against the run's labels; ids that match no label are listed.
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
    /// The name of `--predictions` (default: the file's stem): letters, digits, `-`, `_`, `.`,
    /// and not a method the run has.
    #[arg(long, requires = "predictions")]
    pub name: Option<String>,
    /// The signal of `--predictions`: q, v, advantage, potential or shaped-reward.
    #[arg(long, default_value = "q", requires = "predictions")]
    pub signal: String,
    /// Also evaluate Q methods against V labels and the reverse.
    #[arg(long)]
    pub relabel: bool,
    /// Drop pairs with a zero on either side (published `exclude_zero_points`).
    #[arg(long)]
    pub exclude_zero_points: bool,
    /// Also write the run's labels and predictions as the published testbed's prediction
    /// files (`DIR/gt/`, `DIR/eval/`; ranking label sets and methods in the published ranking
    /// layout).
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
}

/// Runs `qval evaluate`.
///
/// # Errors
/// Unreadable or malformed input, a refused `--predictions`, and
/// [`CliError::Disagrees`] when a recomputed summary differs or compares nothing.
pub fn evaluate(a: &EvaluateArgs) -> Result<()> {
    // A run folder is evaluated with its own `[evaluate]` (so a re-evaluation writes the run's
    // bytes); the flags given override it.
    let mut ev = match runner::Manifest::read(&a.path).ok().flatten() {
        Some(m) if a.path.is_dir() => {
            serde_json::from_value(m.experiment["resolved"]["evaluate"].clone()).unwrap_or_default()
        }
        _ => spec::EvaluateSpec::default(),
    };
    ev.bootstrap = a.bootstrap.unwrap_or(ev.bootstrap);
    ev.min_points = a.min_points.unwrap_or(ev.min_points);
    ev.relabel |= a.relabel;
    ev.exclude_zero_points |= a.exclude_zero_points;
    let cfg = runner::evaluate_config(&ev)?;
    if a.path.is_dir() && a.path.join("gt").is_dir() && !a.path.join("labels").is_dir() {
        // A folder of the published testbed's prediction files.
        let (labels, predictions) = qval_metrics::read_prediction_folder(&a.path)?;
        let mut summary = qval_metrics::evaluate(&labels, &predictions, &cfg)?;
        summary.experiment_info.predictions_dir = Some(a.path.display().to_string());
        let stem = format!("summary_{}", now_stamp());
        let (written, warnings) = summary.write(&a.path, &stem)?;
        warn(warnings);
        out::line(summary.markdown().trim_end());
        out::line(&format!("\n{} files written in {}", written.len(), a.path.display()));
        return Ok(());
    }
    if a.path.is_dir() {
        return evaluate_run_folder(a, &cfg);
    }
    if !a.path.is_file() {
        return Err(CliError::Usage(format!(
            "{}: no such run folder, prediction folder or summary file",
            a.path.display()
        )));
    }
    recompute_summary(&a.path, &cfg)
}

fn warn(warnings: Vec<String>) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// `YYYYmmdd_HHMMSS` now, for the published file names.
fn now_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    qval_metrics::qvalfiles::file_timestamp(secs)
}

/// Takes a run folder's lock to write into it; `None` when the folder cannot be written
/// (read-only), so that reading it still works.
fn lock_for_writing(dir: &Path) -> Result<Option<RunLock>> {
    use std::io::ErrorKind;
    match RunLock::acquire(dir) {
        Ok(lock) => Ok(Some(lock)),
        Err(qval_core::CoreError::Io { source, .. })
            if matches!(
                source.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn evaluate_run_folder(a: &EvaluateArgs, cfg: &EvaluateConfig) -> Result<()> {
    // Not while a run writes the folder; a folder we cannot write is only read.
    let lock = lock_for_writing(&a.path)?;
    let (mut labels, mut methods) = qval_metrics::read_run(&a.path)?;
    keep_order(&a.path, &mut labels, &mut methods);
    let mut stem = "summary".to_string();
    if let Some(file) = &a.predictions {
        let (mine, name) = user_predictions(a, file, &labels, &methods)?;
        stem = format!("summary_{name}");
        methods.push(mine);
    }
    let run = runner::read_run_metadata(&a.path)?;
    let mut summary = qval_metrics::evaluate_in(&labels, &methods, cfg, run.as_ref())?;
    summary.experiment_info.dataset_source = "points.jsonl".into();
    if lock.is_none() {
        out::line(summary.markdown().trim_end());
        if let Some(dir) = &a.export {
            export(&a.path, dir)?;
        }
        out::line(&format!(
            "\n{} cannot be written: {stem}.json was not written (copy the folder to keep one)",
            a.path.display()
        ));
        return Ok(());
    }
    let (written, warnings) = summary.write(&a.path, &stem)?;
    warn(warnings);
    if let Some(dir) = &a.export {
        export(&a.path, dir)?;
    }
    out::line(summary.markdown().trim_end());
    out::line(&format!("\n{} files written in {}", written.len(), a.path.display()));
    Ok(())
}

/// Puts label sets and methods in the order of the run's own summary (the experiment's
/// order), so that a re-evaluation writes the same bytes; those it does not list follow in
/// file name order.
fn keep_order(run: &Path, labels: &mut [LabelSet], methods: &mut [PredictionSet]) {
    let Ok(old) = Summary::read(&run.join("summary.json")) else {
        return;
    };
    let rank = |order: &[String], name: &str| order.iter().position(|n| n == name).unwrap_or(usize::MAX);
    let info = &old.experiment_info;
    labels.sort_by_key(|l| rank(&info.gt_methods, &l.name));
    methods.sort_by_key(|m| rank(&info.eval_methods, &m.name));
}

/// Reads `--predictions` after refusing what would go wrong: a name that is not plain or that
/// the run already has, a signal the run has no labels of. Lists ids that match no label.
fn user_predictions(
    a: &EvaluateArgs,
    file: &Path,
    labels: &[LabelSet],
    methods: &[PredictionSet],
) -> Result<(PredictionSet, String)> {
    let signal = qval_metrics::parse_signal(&a.signal).ok_or_else(|| {
        CliError::Usage(format!(
            "--signal {}: expected q, v, advantage, potential or shaped-reward",
            a.signal
        ))
    })?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let flag = if a.name.is_some() {
        "--name"
    } else {
        "the name of --predictions (its file stem)"
    };
    if !spec::is_plain_name(&name) {
        return Err(CliError::Usage(format!(
            "{flag} `{name}`: use letters, digits, `-`, `_` and `.` (it names summary_<name>.json in the run folder)"
        )));
    }
    let taken =
        methods.iter().any(|m| m.name == name) || qval_core::stage::layout::predictions(&a.path, &name).exists();
    if taken {
        return Err(CliError::Usage(format!(
            "{flag} `{name}`: {} already has a method of that name; give --name another",
            a.path.display()
        )));
    }
    if !labels
        .iter()
        .any(|l| qval_metrics::comparable(l.signal, signal, a.relabel))
    {
        let sets: Vec<String> = labels
            .iter()
            .map(|l| format!("{} ({})", l.name, l.signal.key()))
            .collect();
        return Err(CliError::Usage(format!(
            "--signal {}: {} has no {} labels to compare `{name}` with; its label sets: {}",
            a.signal,
            a.path.display(),
            signal.key(),
            sets.join(", ")
        )));
    }
    let mine = qval_metrics::read_user_predictions(file, &name, signal)?;
    let unknown = qval_metrics::unmatched_ids(labels, &mine);
    if !unknown.is_empty() {
        eprintln!(
            "{} of {} ids in {} match no label of {}: {}",
            unknown.len(),
            mine.predictions.len(),
            file.display(),
            a.path.display(),
            unknown.join(", ")
        );
    }
    Ok((mine, name))
}

/// Recomputes a summary and lists the figures that differ; differences, or nothing to
/// compare, are [`CliError::Disagrees`] (exit status 4).
fn recompute_summary(path: &Path, cfg: &EvaluateConfig) -> Result<()> {
    let r = qval_metrics::recompute_published(path, cfg)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = format!(
        "{}.recomputed",
        path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default()
    );
    let (written, warnings) = r.summary.write(dir, &stem)?;
    warn(warnings);
    out::line(r.summary.markdown().trim_end());
    for n in &r.not_recomputable {
        out::line(&format!("- {}: not recomputable ({}); kept as stored", n.what, n.why));
    }
    out::line(&format!("{} files written beside {}", written.len(), path.display()));
    if r.compared == 0 {
        return Err(CliError::Disagrees(format!(
            "{}: nothing to compare (no point-granularity figure stored); nothing was checked",
            path.display()
        )));
    }
    if r.differences.is_empty() {
        out::line(&format!(
            "\nEvery stored figure agrees with the recomputed one ({} compared).",
            r.compared
        ));
        return Ok(());
    }
    out::line(&format!("\n{} of {} figures differ:", r.differences.len(), r.compared));
    for d in &r.differences {
        out::line(&format!(
            "- {}: stored {}, recomputed {}",
            d.what, d.stored, d.recomputed
        ));
    }
    Err(CliError::Disagrees(format!(
        "{}: {} of {} stored figures differ from the recomputed ones",
        path.display(),
        r.differences.len(),
        r.compared
    )))
}

/// Writes a run's labels and predictions as the published testbed's prediction files and
/// says what was written and what was left out.
fn export(run: &Path, dir: &Path) -> Result<()> {
    let (labels, predictions) = qval_metrics::read_run(run)?;
    let done = qval_metrics::export_run(&labels, &predictions, dir, &now_stamp())?;
    out::line(&format!(
        "{} prediction files written in {}",
        done.written.len(),
        dir.display()
    ));
    for l in &done.left_out {
        out::line(&format!("- left out: {l}"));
    }
    Ok(())
}
