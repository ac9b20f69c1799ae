//! The runner: turns an [`Experiment`] into a [`Plan`] (everything checked before any work),
//! then runs its stages in a run folder, resumably, doing only what is not finished.
//!
//! ## The run folder
//! ```text
//! run.json                   the resolved experiment, versions, seeds, and each stage's settings
//! trajectories.jsonl         stage 1
//! points.jsonl               stage 2
//! candidates.jsonl           ranking candidates (when a ranking method is planned)
//! labels/<set>.jsonl         stage 3 (labels/ranking-<set>.jsonl for the candidates)
//! predictions/<method>.jsonl stage 4
//! methods/<method>/          generated code, Eureka rounds
//! summary.json, summary.md, summary_plots/   stage 5
//! acting/<strategy>-k<k>.jsonl, acting.json  stage 6 (with `[acting]`): episodes, results
//! llm-cache/, llm-requests.jsonl             LLM responses and the request log
//! ```
//!
//! A rerun reads `run.json`: a finished stage whose settings are unchanged is skipped (a
//! method whose predictions are finished is not even built); a finished stage whose settings
//! changed is refused, naming the setting, unless `--redo` names the stage; new label sets
//! and methods run alone. An interrupted stage resumes from its checkpoint.

mod act;
pub(crate) mod label;
mod manifest;
mod options;
mod plan;
mod points;
mod registry;
mod services;
mod stage;
mod stages;
mod variants;

pub use crate::net::reachable;
pub use manifest::{Manifest, RunMetadata, StageRecord, read_run_metadata};
pub use options::{BackendOverride, RunOptions, RunReport};
pub use plan::{Plan, ResolvedLabels, shard_dir};
pub use points::{outputs_of, points_of};
pub use registry::Registry;
pub use services::Services;
pub use stage::{Redo, Stage};
pub use stages::evaluate_config;

use crate::Result;
use qval_core::stage::fingerprint;
use stages::{Inputs, Run};

/// Runs `plan`: only what is not finished, refusing changed settings of finished stages.
/// The five stages in order; each hands its result to the next in memory.
///
/// # Errors
/// A changed setting ([`RunnerError::Changed`]), a busy folder, or a stage's own error (the
/// work finished so far is kept, and a rerun resumes).
pub async fn run(plan: &Plan) -> Result<RunReport> {
    let _lock = qval_core::io::RunLock::acquire(&plan.work_dir)?;
    let mut run = Run::open(plan)?;
    let Some(trajectories) = run.collect().await? else {
        return Ok(run.report);
    };
    let points = run.sample(&trajectories)?;
    let dataset = fingerprint(&points);
    let candidates = run.candidates(&points, &dataset).await?;
    if plan.options.prepare_only {
        run.report.waiting = Some("the shards' labels and predictions".into());
        return Ok(run.report);
    }
    let labels = run.label(&points, &trajectories, &dataset, candidates.as_ref()).await?;
    let ctx = plan.method_context();
    let inputs = Inputs {
        trajectories: &trajectories,
        points: &points,
        dataset: &dataset,
        candidates: candidates.as_ref(),
        expert: &labels.expert,
        ctx: &ctx,
    };
    let predictions = run.predict(&inputs).await?;
    if let Some(sh) = plan.options.shard {
        run.act(&inputs, None).await?;
        run.say(&format!(
            "shard {}/{} finished its labels and predictions; when every shard has, run `qval merge {}`",
            sh.index(),
            sh.count(),
            plan.run_dir.display()
        ));
        run.report.waiting = Some("merge of the labels and predictions".into());
        return Ok(run.report);
    }
    let passk = match &plan.passk {
        Some(p) => Some(run.passk(p, &points, &trajectories, &labels).await?),
        None => None,
    };
    let section = label::labels_section(&plan.labels, &labels.sets, passk.as_deref());
    let layout = qval_metrics::transforms::PointLayout::new(
        points.iter().map(|p| (p.id.as_str(), p.trajectory_index, p.step_index)),
        trajectories.len(),
    );
    run.evaluate(labels.sets, predictions, layout, points.len()).await?;
    if run.report.summary.is_some() {
        run.append_summary(&section)?;
    }
    if let Some(summary) = run.report.summary.clone() {
        run.act(&inputs, Some(&summary)).await?;
    }
    run.finished();
    Ok(run.report)
}
