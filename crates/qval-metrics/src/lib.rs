//! # qval-metrics
//!
//! Rank correlation between method scores and reference labels, under the published
//! evaluation rules: pairs where either side is NaN are dropped, ties get average ranks, and
//! below a minimum number of usable pairs (default 50) the figure is NaN with the reason.
//!
//! ```
//! use qval_metrics::{spearman, CorrelationConfig};
//!
//! let labels = [0.9, 0.5, f64::NAN, 0.7, 0.1];
//! let scores = [3.0, 1.0, 2.0, 2.0, 0.0];
//! let cfg = CorrelationConfig::builder().min_pairs(3).build().unwrap();
//! let rho = spearman(&scores, &labels, &cfg).unwrap();
//! assert_eq!(rho.n, 4);
//! assert!((rho.value - 1.0).abs() < 1e-12);
//! ```
#![deny(missing_docs)]

pub mod align;
pub mod bootstrap;
pub mod correlation;
pub mod error;
pub mod group;
pub mod rank;
pub mod ranking;
pub mod special;

pub use align::{Aligned, align};
pub use bootstrap::{BootstrapConfig, BootstrapConfigBuilder, Interval, Statistic, bootstrap};
pub use correlation::{
    Correlation, CorrelationConfig, CorrelationConfigBuilder, LengthPolicy, PairwiseAccuracy, SignAgreement, kendall,
    pairwise_accuracy, pearson, sign_agreement, spearman,
};
pub use error::MetricsError;
pub use group::{GroupSummary, group_summary};
pub use rank::average_ranks;
pub use ranking::{PerStateRanking, StateCandidates, per_state_ranking};
