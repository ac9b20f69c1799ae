//! The error type of `qval-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `qval-core`: bad parameters, bad files, and failures
/// reported by plugged-in environments, policies, labelers and methods.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A parameter given to a builder is out of range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name, as the builder's setter spells it.
        name: &'static str,
        /// The rejected value, formatted.
        value: String,
        /// What the value must satisfy.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", "renaming", ...).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file holds something that is not what it should be.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The 1-based line number of the offending record.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A complete file's metadata names more (or fewer) records than it holds: it was cut
    /// short, or edited. A stage resumes from the records it holds.
    #[error(
        "{path} holds {found} of the {expected} records its first line promises: the file was cut short \
         (a full disk, an interrupted copy?); `qval run` resumes or remakes the stage's files, \
         anything else: delete it and make it again"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Records found.
        found: usize,
        /// Records the metadata line names.
        expected: usize,
    },
    /// A method's call failed in transport (connection, time-out, server error after the
    /// retries): not final, so a rerun asks again. The predict stage records it as NaN
    /// with [`crate::Prediction::transient`] set.
    #[error("{0}")]
    Transient(String),
    /// A checkpoint left by an earlier run was made with other settings.
    #[error(
        "checkpoint {path} was written with other settings ({what}); \
         delete it to start over, or rerun with the settings it was made with"
    )]
    CheckpointMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// What differs.
        what: String,
    },
    /// Another process holds the run folder's lock ([`crate::io::RunLock`]).
    #[error(
        "run folder {dir} is in use by another qval process{holder} (it holds {dir}/.qval.lock); \
         wait for it to finish, or use another folder"
    )]
    RunLocked {
        /// The run folder.
        dir: PathBuf,
        /// `" (pid N)"` when the holder wrote its process id, else empty.
        holder: String,
    },
    /// An environment refused or failed a call.
    #[error("environment `{env}`: {message}")]
    Environment {
        /// The environment's name.
        env: String,
        /// What went wrong.
        message: String,
    },
    /// A policy could not choose an action.
    #[error("policy `{policy}`: {message}")]
    Policy {
        /// The policy's name.
        policy: String,
        /// What went wrong.
        message: String,
    },
    /// A dense-signal method failed on a point (the predict stage records it as NaN).
    #[error("{0}")]
    Method(String),
    /// A stored state or action could not be turned back into the environment's type.
    #[error("cannot restore {what} for point `{point}`: {message}")]
    Restore {
        /// "state" or "action".
        what: &'static str,
        /// The point's id.
        point: String,
        /// The deserialisation error.
        message: String,
    },
    /// Too many points could not be labelled.
    #[error(
        "{aborted} of {total} points were aborted ({share:.1}% > the allowed {max:.1}%); \
         first reason: {first_reason}"
    )]
    TooManyAborted {
        /// Aborted points.
        aborted: usize,
        /// All points.
        total: usize,
        /// Aborted share in percent.
        share: f64,
        /// The allowed share in percent.
        max: f64,
        /// The reason the first aborted point gave.
        first_reason: String,
    },
    /// Nothing to work on.
    #[error("{0}")]
    Empty(String),
}

impl CoreError {
    /// Shorthand for [`CoreError::InvalidParameter`].
    pub fn invalid(name: &'static str, value: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        CoreError::InvalidParameter {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The same failure for another point of a batch that failed as a whole: a
    /// [`CoreError::Transient`] stays transient, anything else becomes
    /// [`CoreError::Method`] with the same text.
    pub fn for_each_point(&self) -> CoreError {
        match self {
            CoreError::Transient(m) => CoreError::Transient(m.clone()),
            other => CoreError::Method(other.to_string()),
        }
    }

    /// Shorthand for [`CoreError::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
