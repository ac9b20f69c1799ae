//! The error type of `qval-runner`.

use std::path::PathBuf;

/// What can go wrong reading an experiment or running it.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The experiment file is malformed or names something that does not exist; the position
    /// is the offending key or value.
    #[error("{}:{line}:{col}: {message}", file.display())]
    Spec {
        /// The experiment file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong, with the allowed values where there is a list.
        message: String,
    },
    /// A stage finished with other settings than the experiment now asks for.
    #[error(
        "stage `{stage}` already finished with `{setting}` = {old}; the experiment now says {new}. \
         Rerun with `--redo {stage}` to redo it and what depends on it, or restore the setting"
    )]
    Changed {
        /// The stage (`collect`, `sample`, `label:NAME`, `predict:METHOD`).
        stage: String,
        /// The setting, as a path (`dataset.collector.epsilon`).
        setting: String,
        /// Its value when the stage ran.
        old: String,
        /// Its value now.
        new: String,
    },
    /// A command-line or configuration error that is not tied to a position in a file.
    #[error("{0}")]
    Usage(String),
    /// A comparison found differences, or had nothing to compare (`qval evaluate
    /// summary.json`): exit status 4, so that it can gate CI.
    #[error("{0}")]
    Disagrees(String),
    /// The run finished, but some methods failed on every point, or some points failed in
    /// transport and wait for a rerun: exit status 3 (unless `--allow-failures`).
    #[error("{0}")]
    Failing(String),
    /// Reading or writing a file failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A stage failed (qval-core).
    #[error(transparent)]
    Core(#[from] qval_core::CoreError),
    /// Evaluation failed (qval-metrics).
    #[error(transparent)]
    Metrics(#[from] qval_metrics::MetricsError),
    /// An LLM backend could not be built or called (qval-methods).
    #[error(transparent)]
    Llm(#[from] qval_methods::llm::LlmError),
    /// An environment could not be built (qval-envs).
    #[error(transparent)]
    Envs(#[from] qval_envs::EnvsError),
    /// A method could not be built (qval-methods).
    #[error(transparent)]
    Methods(#[from] qval_methods::MethodsError),
    /// An LLM backend of the experiment could not be built (a missing API key variable, a
    /// malformed URL).
    #[error("backend `{name}`: {source}")]
    Backend {
        /// The backend's name.
        name: String,
        /// The client's error.
        #[source]
        source: qval_llm::LlmError,
    },
    /// The environment failed a conformance check before any work (`--skip-env-check`
    /// skips them).
    #[error(
        "environment type `{kind}` failed a conformance check before any work: {source} \
         (`--skip-env-check` skips the checks)"
    )]
    EnvironmentCheck {
        /// The environment type, as the experiment file names it.
        kind: String,
        /// The check that failed.
        #[source]
        source: qval_core::CoreError,
    },
    /// A plugin (a user's environment or method) failed.
    #[error("{context}: {source}")]
    Plugin {
        /// What was being done.
        context: String,
        /// The plugin's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl RunnerError {
    /// A file operation error.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RunnerError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// A plugin's (or a component's) error, kept as the source, after `context`.
    pub fn plugin(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        RunnerError::Plugin {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Whether the user can fix it (a file, a flag, a setting), so that one line suffices.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunnerError::Spec { .. }
            | RunnerError::Changed { .. }
            | RunnerError::Usage(_)
            | RunnerError::Backend { .. }
            | RunnerError::EnvironmentCheck { .. } => 2,
            RunnerError::Core(qval_core::CoreError::RunLocked { .. }) => 2,
            RunnerError::Disagrees(_) => 4,
            RunnerError::Failing(_) => 3,
            _ => 1,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = RunnerError> = std::result::Result<T, E>;
