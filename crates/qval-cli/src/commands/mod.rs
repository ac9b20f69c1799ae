//! The commands that read what runs made: `qval evaluate` ([`evaluate`]) and `qval report`
//! ([`report`]).

pub mod evaluate;
pub mod report;

pub use evaluate::{EvaluateArgs, RunMetadata};
pub use report::ReportArgs;

/// Whether `name` can name a file or folder inside a run folder as it is: letters, digits,
/// `-`, `_` and `.`, not empty and not starting with `.` (so never `..` nor a path).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
