//! The services a run gives the environment and method factories: folders, and backends
//! built on first use with their usage counters.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::envs::RunServices;
use crate::net::reachable;
use crate::spec;
use crate::{Result, RunnerError};
use qval_methods::llm::{Backend, BackendEntry, UsageCounter};

/// The backend of LLM methods that name none when `--base-url/--model` are given.
pub(crate) const COMMAND_LINE: &str = "command-line";

/// A backend with the counter of its requests and tokens.
pub(crate) type MeteredBackend = (Arc<dyn Backend>, Arc<UsageCounter>);

/// The services a run gives factories: folders and lazily built backends.
pub struct Services {
    pub(crate) run_dir: PathBuf,
    pub(crate) spec_dir: PathBuf,
    pub(crate) entries: BTreeMap<String, BackendEntry>,
    pub(crate) built: Mutex<HashMap<String, MeteredBackend>>,
}

impl Services {
    pub(crate) fn built(&self, name: &str) -> Result<MeteredBackend> {
        let mut built = self.built.lock().expect("backend lock");
        if let Some(b) = built.get(name) {
            return Ok(b.clone());
        }
        let entry = self.entries.get(name).ok_or_else(|| {
            RunnerError::Usage(spec::unknown(
                "backend",
                name,
                &self.entries.keys().map(String::as_str).collect::<Vec<_>>(),
            ))
        })?;
        let b = entry
            .build(
                Some(self.run_dir.join("llm-cache")),
                Some(self.run_dir.join("llm-requests.jsonl")),
            )
            .map_err(|source| RunnerError::Backend {
                name: name.to_string(),
                source,
            })?;
        built.insert(name.to_string(), b.clone());
        Ok(b)
    }

    /// Checks that a backend's server accepts connections (a TCP connection, no request), so
    /// that an unreachable server is one clear error rather than every point retried to NaN.
    pub(crate) fn check_reachable(&self, name: &str) -> Result<()> {
        match self.entries.get(name) {
            Some(entry) => reachable(&format!("backend `{name}`"), entry.base_url.as_str()),
            None => Ok(()),
        }
    }

    /// Whether a backend asks again what did not parse (`reask_unparsed` in its entry, or
    /// `--reask-unparsed`): its methods' NaN points are then computed again.
    pub(crate) fn reask_unparsed(&self, name: &str) -> bool {
        self.entries.get(name).is_some_and(|e| e.reask_unparsed)
    }

    /// What a backend's requests wait for (an exhausted quota), if anything.
    pub(crate) fn waiting(&self, name: &str) -> Option<String> {
        self.built
            .lock()
            .expect("backend lock")
            .get(name)
            .and_then(|(_, u)| u.waiting.lock().expect("usage lock").clone())
    }

    /// Requests and tokens of every backend so far.
    pub(crate) fn total_usage(&self) -> (u64, u64) {
        let names: Vec<String> = self.built.lock().expect("backend lock").keys().cloned().collect();
        names
            .iter()
            .map(|n| self.usage(n))
            .fold((0, 0), |a, u| (a.0 + u.0, a.1 + u.1))
    }

    /// Requests and tokens of a backend so far (0 if never built).
    pub(crate) fn usage(&self, name: &str) -> (u64, u64) {
        self.built
            .lock()
            .expect("backend lock")
            .get(name)
            .map(|(_, u)| {
                (
                    u.requests.load(Ordering::Relaxed),
                    u.prompt_tokens.load(Ordering::Relaxed) + u.completion_tokens.load(Ordering::Relaxed),
                )
            })
            .unwrap_or((0, 0))
    }
}

impl RunServices for Services {
    fn run_dir(&self) -> PathBuf {
        self.run_dir.clone()
    }
    fn spec_dir(&self) -> PathBuf {
        self.spec_dir.clone()
    }
    fn backend(&self, name: &str) -> Result<Arc<dyn Backend>> {
        self.built(name).map(|(b, _)| b)
    }
    fn backend_entries(&self) -> BTreeMap<String, BackendEntry> {
        self.entries.clone()
    }
}
