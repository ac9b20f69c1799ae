//! `run.json`: what a run was asked and which stages finished, with their settings.

use super::*;

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
}

impl Manifest {
    /// Reads `run.json` of a run folder (`None` if there is none).
    ///
    /// # Errors
    /// A file that cannot be read or is not a manifest (named, with its line).
    pub fn read(run_dir: &Path) -> Result<Option<Manifest>> {
        let path = run_dir.join("run.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CliError::io("reading", &path, e))?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            CliError::Usage(format!(
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
        let text = serde_json::to_string_pretty(self).map_err(|e| CliError::Usage(e.to_string()))?;
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
