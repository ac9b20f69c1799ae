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
    /// A dense-signal method failed on a point (the predict stage records it as NaN). Made
    /// from a message (`CoreError::Method("why".into())`) or from the error itself
    /// ([`MethodError::from_error`]), which it keeps.
    #[error(transparent)]
    Method(MethodError),
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
    /// [`CoreError::Transient`] stays transient, a [`CoreError::Method`] stays itself (sharing
    /// the error it keeps), anything else becomes [`CoreError::Method`] with the same text.
    pub fn for_each_point(&self) -> CoreError {
        match self {
            CoreError::Transient(m) => CoreError::Transient(m.clone()),
            CoreError::Method(m) => CoreError::Method(m.clone()),
            other => CoreError::Method(other.to_string().into()),
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

/// A method's failure on a point ([`CoreError::Method`]): a message, or the error that
/// caused it, kept whole.
///
/// Like [`std::io::Error::other`], an error kept whole is shown as itself (its text, then its
/// own [`source`](std::error::Error::source) chain, never its text twice) and can be
/// looked at again with [`get_ref`](Self::get_ref) or [`downcast_ref`](Self::downcast_ref).
/// Cloning shares it, so every point of a batch that failed as a whole keeps it.
///
/// ```
/// use qval_core::CoreError;
/// use qval_core::error::MethodError;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("backend `x` lacks scoring")]
/// struct Unsupported;
///
/// let e = CoreError::Method(MethodError::from_error(Unsupported));
/// assert_eq!(e.to_string(), "backend `x` lacks scoring");
/// let CoreError::Method(m) = &e else { unreachable!() };
/// assert!(m.downcast_ref::<Unsupported>().is_some());
/// // A message alone, as before.
/// assert_eq!(CoreError::Method("no agent".into()).to_string(), "no agent");
/// ```
#[derive(Clone)]
pub struct MethodError(MethodRepr);

#[derive(Clone)]
enum MethodRepr {
    Message(String),
    Error(std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>),
}

impl MethodError {
    /// A failure told by its message.
    pub fn new(message: impl Into<String>) -> Self {
        MethodError(MethodRepr::Message(message.into()))
    }

    /// The failure `error`, kept whole: shown as `error` is, found again with
    /// [`get_ref`](Self::get_ref).
    pub fn from_error<E: std::error::Error + Send + Sync + 'static>(error: E) -> Self {
        MethodError(MethodRepr::Error(std::sync::Arc::new(error)))
    }

    /// The error kept whole, if it was made from one.
    pub fn get_ref(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &self.0 {
            MethodRepr::Message(_) => None,
            MethodRepr::Error(e) => Some(&**e),
        }
    }

    /// The error kept whole, if it was made from one of type `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.get_ref().and_then(|e| e.downcast_ref::<E>())
    }
}

impl From<String> for MethodError {
    fn from(message: String) -> Self {
        MethodError::new(message)
    }
}

impl From<&str> for MethodError {
    fn from(message: &str) -> Self {
        MethodError::new(message)
    }
}

impl std::fmt::Display for MethodError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            MethodRepr::Message(m) => f.write_str(m),
            MethodRepr::Error(e) => std::fmt::Display::fmt(e, f),
        }
    }
}

impl std::fmt::Debug for MethodError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            MethodRepr::Message(m) => std::fmt::Debug::fmt(m, f),
            MethodRepr::Error(e) => std::fmt::Debug::fmt(e, f),
        }
    }
}

impl std::error::Error for MethodError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            MethodRepr::Message(_) => None,
            MethodRepr::Error(e) => e.source(),
        }
    }
}

/// `Result` with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
