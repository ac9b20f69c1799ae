//! The error type of `qval-metrics`.

/// What can go wrong computing a statistic.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MetricsError {
    /// The two inputs differ in length and truncation was not asked for.
    #[error(
        "predictions and labels differ in length ({left} vs {right}); pair them by point id, \
         or ask for prefix truncation (LengthPolicy::TruncateToShorter) as the published evaluation did"
    )]
    LengthMismatch {
        /// Length of the first input.
        left: usize,
        /// Length of the second input.
        right: usize,
    },
    /// Reading or writing a file failed.
    #[error("{op} {path}: {message}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        message: String,
    },
    /// A file does not hold what it should.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, with the JSON path of the offending entry where known.
        message: String,
    },
    /// Labels and predictions were made from different points.
    #[error(
        "{predictions} was made from other points than {labels} (dataset {found} vs {expected}); \
         evaluate predictions against labels of the same points"
    )]
    OtherPoints {
        /// The prediction set (its file, or its name).
        predictions: String,
        /// The label set (its file, or its name).
        labels: String,
        /// The predictions' dataset fingerprint.
        found: String,
        /// The labels' dataset fingerprint.
        expected: String,
    },
    /// An error from qval-core (reading run files).
    #[error(transparent)]
    Core(#[from] std::sync::Arc<qval_core::CoreError>),
    /// A picture could not be drawn.
    #[error("drawing {what}: {message}")]
    Plot {
        /// The picture.
        what: String,
        /// The drawing library's error.
        message: String,
    },
    /// A parameter is out of range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// The rejected value.
        value: String,
        /// What it must satisfy.
        reason: String,
    },
}

impl PartialEq for MetricsError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl From<qval_core::CoreError> for MetricsError {
    fn from(e: qval_core::CoreError) -> Self {
        MetricsError::Core(std::sync::Arc::new(e))
    }
}
