//! The commands that read what runs made: `qval evaluate` ([`evaluate`]) and `qval report`
//! ([`report`]).

pub mod evaluate;
pub mod report;
pub mod rollouts;

pub use evaluate::EvaluateArgs;
pub use report::ReportArgs;
pub use rollouts::RolloutsArgs;
