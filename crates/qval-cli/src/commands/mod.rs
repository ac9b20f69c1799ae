//! The commands that read what runs made: `qval evaluate` ([`evaluate`]) and `qval report`
//! ([`report`]).

pub mod evaluate;
pub mod report;

pub use evaluate::EvaluateArgs;
pub use report::ReportArgs;
