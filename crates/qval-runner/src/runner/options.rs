//! How a plan is run ([`RunOptions`]) and what a run did ([`RunReport`]).

use serde::Serialize;
use std::path::PathBuf;

use super::stage::{Redo, Stage};
use qval_core::Share;
use qval_methods::llm::BackendEntry;

/// Where LLM methods send their requests when the command line overrides the file.
#[derive(Clone, Debug)]
pub enum BackendOverride {
    /// Every LLM method uses this backend of the experiment's `[backends]`.
    Named(String),
    /// Every LLM method uses this backend entry (from a backends file), under its name.
    Entry(String, BackendEntry),
    /// Every LLM method uses this endpoint and model.
    Endpoint {
        /// The OpenAI-compatible base URL.
        base_url: String,
        /// The model.
        model: String,
        /// The variable holding the API key, if one is needed.
        api_key_env: Option<String>,
    },
}

/// How to run a plan.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The run folder (default `runs/<experiment name>`).
    pub out: Option<PathBuf>,
    /// The folder the file's relative paths are relative to (default: the file's own; a
    /// plan made again from `run.json` passes the folder the run recorded).
    pub spec_dir: Option<PathBuf>,
    /// Overrides the backend of every LLM method.
    pub backend: Option<BackendOverride>,
    /// Only these methods (their names, or their types).
    pub only: Vec<String>,
    /// Stages to redo, and what depends on them.
    pub redo: Vec<Redo>,
    /// No progress bars and no report on standard output.
    pub quiet: bool,
    /// Do only this shard's share of the work, in `shards/I-of-N/` (see [`merge`]).
    pub shard: Option<Share>,
    /// Stop after sampling (and the ranking candidates): what a merge of collected shards
    /// does before the shards label and predict.
    pub prepare_only: bool,
    /// Compute again the points whose prediction is NaN, and let the LLM cache ask again
    /// the requests whose reply did not parse (`--reask-unparsed`).
    pub reask_unparsed: bool,
    /// The rollout store shared across runs (overrides the file's `rollout_store`; default:
    /// the run folder's `rollouts/`).
    pub rollout_store: Option<PathBuf>,
    /// Skip the conformance checks run on the environment before any work
    /// ([`EnvPlugin::check`]), for environments whose steps are expensive.
    pub skip_env_check: bool,
}

/// What a run did, for the caller and the tests.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// Stages that ran in this invocation (skipped ones are absent).
    pub ran: Vec<Stage>,
    /// The summary's Markdown.
    pub markdown: String,
    /// The summary, when the evaluation stage ran (it is also written to `summary.json`).
    pub summary: Option<qval_metrics::Summary>,
    /// Acting's results, when the experiment has `[acting]` (also in `acting.json`).
    pub acting: Option<qval_metrics::acting::ActingSummary>,
    /// Files written by the evaluation.
    pub written: Vec<PathBuf>,
    /// What the run waits for before it can go on (a merge of shards), if anything.
    pub waiting: Option<String>,
    /// Methods that failed on every point, and points that failed in transport (a rerun
    /// asks them again): one line each, for the exit status.
    pub failing: Vec<String>,
}
