//! The error type of `qval-metrics`.

/// What can go wrong computing a statistic.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
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
