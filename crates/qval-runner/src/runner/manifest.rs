//! `run.json`: what a run was asked and which stages finished, with their settings.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Result, RunnerError};
use qval_core::io::write_atomic;

/// `run.json`: what was asked and what finished.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The qval version of the last run.
    pub qval_version: String,
    /// The experiment, every default filled in.
    pub experiment: Value,
    /// The environment's spec.
    pub environment: Value,
    /// What methods were told.
    pub context: Value,
    /// The folder the experiment file's relative paths point to (absolute), so that a plan
    /// made again from `run.json` (`qval preview`, shard merges) resolves them as the run did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_dir: Option<PathBuf>,
    /// Each stage: its settings and whether it finished.
    pub stages: BTreeMap<String, StageRecord>,
}

/// One stage in `run.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// The settings that determine its output.
    pub settings: Value,
    /// Whether it finished.
    pub finished: bool,
    /// Wall time of the run that finished it, in seconds.
    #[serde(default)]
    pub seconds: f64,
    /// LLM requests it sent.
    #[serde(default)]
    pub requests: u64,
    /// LLM tokens it used (prompt and completion).
    #[serde(default)]
    pub tokens: u64,
    /// A label stage: the rollouts it ran and reused, and their environment steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollouts: Option<qval_core::rollout::RolloutCounts>,
}

impl Manifest {
    /// The folder the experiment file's relative paths point to, as the run recorded it
    /// (`None` for runs made before it was recorded, or when the folder is gone).
    pub fn spec_dir(&self) -> Option<PathBuf> {
        self.spec_dir.clone().filter(|d| d.is_dir())
    }

    /// Reads `run.json` of a run folder (`None` if there is none).
    ///
    /// # Errors
    /// A file that cannot be read or is not a manifest (named, with its line).
    pub fn read(run_dir: &Path) -> Result<Option<Manifest>> {
        let path = run_dir.join("run.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| RunnerError::io("reading", &path, e))?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            RunnerError::Usage(format!(
                "{}:{}:{}: not a qval run manifest: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })
    }

    /// Whether `stage` finished.
    pub fn finished(&self, stage: &str) -> bool {
        self.stages.get(stage).is_some_and(|s| s.finished)
    }

    /// Writes `run.json` into `run_dir` (atomically).
    ///
    /// # Errors
    /// A folder that cannot be written.
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| RunnerError::plugin("run.json", e))?;
        Ok(write_atomic(&run_dir.join("run.json"), (text + "\n").as_bytes())?)
    }
}

/// The first leaf where two settings differ: (path, old, new).
pub(crate) fn first_difference(path: &str, old: &Value, new: &Value) -> Option<(String, String, String)> {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                first_difference(&p, a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null))
            })
        }
        _ if old == new => None,
        _ => Some((path.to_string(), old.to_string(), new.to_string())),
    }
}

/// What a run's summary records about the run ([`qval_metrics::RunInfo`]): `qval run` and
/// `qval evaluate RUN` evaluate with the same, so a re-evaluation keeps it.
pub type RunMetadata = qval_metrics::RunInfo;

/// Reads a run folder's metadata back from `run.json` and its points and trajectories
/// files; `None` for a folder without `run.json` (labels and predictions made by hand).
///
/// # Errors
/// A `run.json`, points or trajectories file that cannot be read.
pub fn read_run_metadata(run: &Path) -> Result<Option<RunMetadata>> {
    use qval_core::io::{Kind, read_jsonl};
    use qval_core::stage::layout;
    let Some(manifest) = Manifest::read(run)? else {
        return Ok(None);
    };
    let resolved = &manifest.experiment["resolved"];
    let count = |path: PathBuf, kind: Kind| -> Result<usize> {
        if !path.exists() {
            return Ok(0);
        }
        Ok(read_jsonl::<serde::de::IgnoredAny>(&path, kind)?.1.len())
    };
    /// A point's place, read without the rest of it.
    #[derive(serde::Deserialize)]
    struct Place {
        id: String,
        trajectory_index: usize,
        step_index: usize,
    }
    let places: Vec<Place> = match layout::points(run) {
        p if p.exists() => read_jsonl::<Place>(&p, Kind::Points)?.1,
        _ => Vec::new(),
    };
    let trajectories = count(layout::trajectories(run), Kind::Trajectories)?;
    Ok(Some(RunMetadata {
        name: resolved["name"].as_str().unwrap_or_default().to_string(),
        seed: resolved["seed"].as_u64().unwrap_or_default(),
        env_kind: resolved["environment"]["type"].as_str().unwrap_or_default().to_string(),
        environment: manifest.environment.clone(),
        points: places.len(),
        trajectories,
        points_limits: serde_json::from_value(manifest.experiment["points_limits"].clone()).unwrap_or_default(),
        layout: Some(qval_metrics::transforms::PointLayout::new(
            places.iter().map(|p| (p.id.as_str(), p.trajectory_index, p.step_index)),
            trajectories,
        )),
    }))
}
