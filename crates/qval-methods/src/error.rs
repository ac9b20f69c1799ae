//! The error type of `qval-methods`.

use qval_core::CoreError;
use qval_core::error::MethodError;

/// What can go wrong in a method.
#[derive(Debug, thiserror::Error)]
pub enum MethodsError {
    /// The point is not of the environment the method understands.
    #[error("point `{point}`: {message}")]
    WrongPoint {
        /// The point id.
        point: String,
        /// What is wrong.
        message: String,
    },
    /// The method cannot run on what it was given (a backend without a capability it needs).
    #[error("method `{method}`: {message}")]
    Unsupported {
        /// The method.
        method: String,
        /// What is missing.
        message: String,
    },
    /// A method written in Python failed (its worker, its module or its class).
    #[error(transparent)]
    Python(#[from] qval_python::PyError),
    /// An error from qval-core.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<MethodsError> for CoreError {
    /// A [`MethodsError::Core`] is the error it holds; any other becomes
    /// [`CoreError::Method`], kept whole ([`MethodError::from_error`]: the same text, and
    /// `get_ref` or `downcast_ref` finds the `MethodsError` again).
    fn from(e: MethodsError) -> Self {
        match e {
            MethodsError::Core(c) => c,
            other => CoreError::Method(MethodError::from_error(other)),
        }
    }
}
