//! The error type of `qval-python`.

/// Why a Python request failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PyError {
    /// The Python code raised (the Python traceback is kept).
    #[error("python `{adapter}` raised in `{op}`: {message}\n{traceback}")]
    Python {
        /// What the worker serves (`module:Class`).
        adapter: String,
        /// The protocol operation.
        op: String,
        /// The exception's type and message.
        message: String,
        /// Python's traceback.
        traceback: String,
    },
    /// A worker died, hung or broke the protocol twice in a row (it was restarted and the
    /// request retried once).
    #[error(
        "python worker for `{adapter}` failed in `{op}` twice (restarted after the first):\nfirst: {first}\nthen: {second}"
    )]
    Worker {
        /// What the worker serves (`module:Class`).
        adapter: String,
        /// The protocol operation.
        op: String,
        /// The first failure, with the worker's last stderr lines.
        first: String,
        /// The failure of the retry.
        second: String,
    },
    /// A Python package the code needs is missing.
    #[error("{message}: install it with `{pip}`")]
    MissingPackage {
        /// What is missing.
        message: String,
        /// The pip command that installs it.
        pip: String,
    },
    /// The bridge cannot work (a worker cannot start, a malformed reply).
    #[error("python bridge: {0}")]
    Bridge(String),
}
