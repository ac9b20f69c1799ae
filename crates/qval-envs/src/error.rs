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
    /// A Python adapter raised (the Python traceback is kept).
    #[error("python adapter `{adapter}` raised in `{op}`: {message}\n{traceback}")]
    Python {
        /// The adapter (`module:Class`).
        adapter: String,
        /// The protocol operation.
        op: String,
        /// The exception's type and message.
        message: String,
        /// Python's traceback.
        traceback: String,
    },
    /// A Python worker died, hung or broke the protocol twice in a row (it was restarted
    /// and the request retried once).
    #[error(
        "python worker for `{adapter}` failed in `{op}` twice (restarted after the first):\nfirst: {first}\nthen: {second}"
    )]
    Worker {
        /// The adapter (`module:Class`).
        adapter: String,
        /// The protocol operation.
        op: String,
        /// The first failure, with the worker's last stderr lines.
        first: String,
        /// The failure of the retry.
        second: String,
    },
    /// A Python package the adapter needs is missing.
    #[error("{message}: install it with `{pip}`")]
    MissingPackage {
        /// What is missing.
        message: String,
        /// The pip command that installs it.
        pip: String,
    },
    /// The Python bridge cannot work (a worker cannot start, a malformed reply).
    #[error("python bridge: {0}")]
    Bridge(String),
}

impl EnvsError {
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

impl From<qval_python::PyError> for EnvsError {
    fn from(e: qval_python::PyError) -> Self {
        use qval_python::PyError as P;
        match e {
            P::Python {
                adapter,
                op,
                message,
                traceback,
            } => EnvsError::Python {
                adapter,
                op,
                message,
                traceback,
            },
            P::Worker {
                adapter,
                op,
                first,
                second,
            } => EnvsError::Worker {
                adapter,
                op,
                first,
                second,
            },
            P::MissingPackage { message, pip } => EnvsError::MissingPackage { message, pip },
            P::Bridge(m) => EnvsError::Bridge(m),
        }
    }
}
