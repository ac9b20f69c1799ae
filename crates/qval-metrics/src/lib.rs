//! # qval-metrics
//!
//! Rank correlation between method scores and reference labels, under the published
//! evaluation rules: pairs where either side is NaN are dropped, ties get average ranks, and
//! below a minimum number of usable pairs (default 50) the figure is NaN with the reason.
//!
//! - [`pearson`], [`spearman`], [`kendall`] (tau-b, O(n log n)): the figure, its two-sided
//!   p-value computed as `scipy.stats` does by default, and n; checked against scipy on
//!   committed fixtures (1e-12 on the statistic, 1e-9 relative on p);
//! - [`pairwise_accuracy`] and [`sign_agreement`] (with a binomial test);
//! - [`per_state_ranking`] for ranking methods; [`group_summary`] for sampled methods;
//! - [`bootstrap`] percentile intervals, seeded and parallel, identical for any thread count;
//! - [`paired_spearman`]: method A against method B on the same points (paired bootstrap and
//!   Zou's closed form), [`tiers`] of methods that cannot be told apart;
//! - [`two_level_spearman`]: intervals that include the Monte-Carlo label noise, and how many
//!   rollouts would make it negligible;
//! - [`evaluate`] / [`evaluate_run`] (stage 5) and [`recompute_published`] ([`recompute`]): a [`Summary`] in
//!   the published testbed's layout ([`summary`]), a Markdown table and plots ([`plots`]);
//! - [`export_run`]: a run as the published testbed's prediction files ([`export`]);
//! - [`write_cross_run_report`]: one report across several runs (Markdown, CSV, a heat map,
//!   a self-contained sortable HTML page) ([`crossrun`]).
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

pub mod acting;
pub mod align;
pub mod bootstrap;
pub mod correlation;
pub mod crossrun;
pub mod error;
pub mod export;
pub mod group;
pub mod labelnoise;
pub mod paired;
pub mod passk;
pub mod plots;
pub mod qvalfiles;
pub mod rank;
pub mod ranking;
pub mod recompute;
pub mod report;
pub mod special;
pub mod summary;
pub mod transforms;

mod output;
mod run_info;

pub use align::{Aligned, align};
pub use bootstrap::{BootstrapConfig, BootstrapConfigBuilder, Interval, Statistic, bootstrap};
pub use correlation::{
    Correlation, CorrelationConfig, CorrelationConfigBuilder, LengthPolicy, PairwiseAccuracy, SignAgreement, kendall,
    pairwise_accuracy, pearson, sign_agreement, spearman,
};
pub use crossrun::{CrossRunCell, CrossRunRow, CrossRunTable, cross_run_html, write_cross_run_report};
pub use error::MetricsError;
pub use export::{Exported, export_run};
pub use group::{GroupSummary, group_summary};
pub use labelnoise::{LabelNoise, RolloutWidth, two_level_spearman};
pub use paired::{PairedComparison, paired_spearman, tiers, zou_interval};
pub use qvalfiles::{
    newest_files, read_prediction_file, read_prediction_folder, read_user_predictions, unmatched_ids,
    write_prediction_file,
};
pub use rank::average_ranks;
pub use ranking::{PerStateRanking, RankingTies, StateCandidates, per_state_ranking};
pub use recompute::{Difference, NotRecomputed, Recomputed, recompute_published};
pub use report::stage::{evaluate, evaluate_in, evaluate_run};
pub use report::{
    CORRELATION_METHODS, EvaluateConfig, LabelSet, PredictionSet, candidate_groups, comparable, parse_signal,
    point_entry, ranking_entry, read_run, sample_group,
};
pub use run_info::RunInfo;
pub use summary::{
    Aggregate, Comparison, Correlations, Estimation, EstimationExtras, ExperimentInfo, Figure, Granularity,
    GtComparison, MethodEntry, MethodEstimation, MethodExtras, PairedEntry, RankingFigure, SampleGroup, Summary,
    SummaryExtras, assumption_of, to_published_json,
};
