//! The error type of `qval-envs`.

use qval_core::CoreError;

/// What can go wrong building or running an environment.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EnvsError {
    /// A map is not a valid FrozenLake map.
    #[error("invalid FrozenLake map: {0}")]
    InvalidMap(String),
    /// A builder parameter is out of range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The setter's name.
        name: &'static str,
        /// The rejected value.
        value: String,
        /// What it must satisfy.
        reason: String,
    },
    /// The sandbox cannot run (TerminalBench refuses to run commands unconfined).
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// The snapshot store failed.
    #[error("snapshot store: {0}")]
    Store(String),
    /// A task cannot be loaded or used.
    #[error("task `{task}`: {message}")]
    Task {
        /// The task id.
        task: String,
        /// What is wrong.
        message: String,
    },
    /// The Python bridge (`qval_python`): an adapter that raised (with Python's traceback),
    /// a worker that died, hung or broke the protocol twice (restarted after the first), a
    /// missing package (with the pip command), a reply qval cannot use.
    #[error(transparent)]
    Python(#[from] qval_python::PyError),
}

impl EnvsError {
    /// A reply of the Python bridge qval cannot use (or a worker that cannot start).
    pub(crate) fn bridge(message: impl Into<String>) -> Self {
        EnvsError::Python(qval_python::PyError::Bridge(message.into()))
    }

    /// The error as the core's environment error of the environment named `env`.
    pub fn in_env(self, env: &str) -> CoreError {
        CoreError::Environment {
            env: env.to_string(),
            message: self.to_string(),
        }
    }
}

/// Without the environment's name at hand; prefer [`EnvsError::in_env`].
impl From<EnvsError> for CoreError {
    fn from(e: EnvsError) -> Self {
        CoreError::Environment {
            env: "qval-envs".into(),
            message: e.to_string(),
        }
    }
}
