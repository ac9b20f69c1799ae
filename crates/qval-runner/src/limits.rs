//! Upper bounds on the counts of an experiment file, each with its reason.
//!
//! Stages keep their items in memory (trajectories, points, a point's rollout returns), so a
//! mistyped count (`rollouts = 4000000000`) would abort on one huge allocation or grow until
//! the machine runs out of memory. [`check`] refuses a count above its bound when the file is
//! read, before any work starts; the error names the bound and why it is there, at the file's
//! line and column.
//!
//! | count | bound | why |
//! |---|---|---|
//! | `dataset.trajectories` | 1,000,000 | every trajectory is kept in memory until the collection ends |
//! | `dataset.concurrency`, `labels.concurrency` | 4,096 | each item run at once is a task holding its state, a sandbox or an open request |
//! | `dataset.sampling.per_trajectory` | 10,000, and trajectories x per_trajectory <= 10,000,000 | points are drawn among a trajectory's steps (step budgets are at most 10,000); every point is kept in memory |
//! | `dataset.sampling.discard_first`, `discard_last`, `methods.max_history_turns` | 10,000 | the largest step budget |
//! | `dataset.candidates.k` | at least 2, at most 64 | ranking compares a state's candidates, all in one prompt |
//! | `labels.rollouts` | 100,000 | a point's k returns are kept in memory and in its label |
//! | `methods.points`, `evaluate.min_points` | 10,000,000 | the most points a dataset holds |
//! | `evaluate.bootstrap` | 100,000 | every resample recomputes every correlation and is kept for the quantiles |

use crate::spec::at;
use crate::spec::{Experiment, Seg, SpecProblem};
use qval_core::{CollectConfig, MvmcConfig};

/// The largest step budget, and so the most steps a trajectory has.
pub const MAX_STEPS: usize = 10_000;
/// The most points a dataset holds (trajectories x points per trajectory).
pub const MAX_POINTS: usize = 10_000_000;
/// The most items (episodes, points) run at once.
pub const MAX_CONCURRENCY: usize = 4_096;
/// The most ranking candidates per state.
pub const MAX_CANDIDATES: usize = 64;
/// The most bootstrap resamples.
pub const MAX_BOOTSTRAP: usize = 100_000;

const STEPS_WHY: &str = "the largest step budget: no trajectory is longer";
const CONCURRENCY_WHY: &str = "each item run at once is a task holding its state, a sandbox or an open request";
const POINTS_WHY: &str = "the most points a dataset holds: every point is kept in memory";

/// `value` at `path` if it is at most `max`; else the problem naming the bound and `why`.
///
/// # Errors
/// The problem, at `path`.
pub fn at_most(path: Vec<Seg>, value: usize, max: usize, why: &str) -> Result<(), SpecProblem> {
    if value > max {
        return Err(SpecProblem::at(
            path,
            format!("{value} is above the limit {max} ({why})"),
        ));
    }
    Ok(())
}

/// Checks every count of `e` against its bound (and `dataset.candidates.k` against its lower
/// bound, 2); the other lower bounds are checked with the rest of the plan.
///
/// # Errors
/// The first count out of bounds, at its path.
pub fn check(e: &Experiment) -> Result<(), SpecProblem> {
    let d = &e.dataset;
    at_most(
        at!["dataset", "trajectories"],
        d.trajectories,
        CollectConfig::MAX_TRAJECTORIES,
        "every trajectory is kept in memory until the collection ends",
    )?;
    at_most(
        at!["dataset", "concurrency"],
        d.concurrency,
        MAX_CONCURRENCY,
        CONCURRENCY_WHY,
    )?;
    let s = &d.sampling;
    at_most(
        at!["dataset", "sampling", "per_trajectory"],
        s.per_trajectory,
        MAX_STEPS,
        "points are drawn among a trajectory's steps, and the largest step budget is 10000",
    )?;
    if d.trajectories.saturating_mul(s.per_trajectory) > MAX_POINTS {
        return Err(SpecProblem::at(
            at!["dataset", "sampling", "per_trajectory"],
            format!(
                "{} trajectories x {} points is above the limit {MAX_POINTS} points ({POINTS_WHY})",
                d.trajectories, s.per_trajectory
            ),
        ));
    }
    at_most(
        at!["dataset", "sampling", "discard_first"],
        s.discard_first,
        MAX_STEPS,
        STEPS_WHY,
    )?;
    at_most(
        at!["dataset", "sampling", "discard_last"],
        s.discard_last,
        MAX_STEPS,
        STEPS_WHY,
    )?;
    let k = d.candidates.k;
    if k < 2 {
        return Err(SpecProblem::at(
            at!["dataset", "candidates", "k"],
            format!("{k}: give at least 2 (ranking compares a state's candidates: one alone cannot be ranked)"),
        ));
    }
    at_most(
        at!["dataset", "candidates", "k"],
        k,
        MAX_CANDIDATES,
        "a state's candidates are ranked in one prompt, and each is labelled",
    )?;
    for (i, l) in e.labels.iter().enumerate() {
        at_most(
            at!["labels", i, "rollouts"],
            l.rollouts,
            MvmcConfig::MAX_ROLLOUTS,
            "a point's k rollout returns are kept in memory and in its label",
        )?;
        at_most(
            at!["labels", i, "concurrency"],
            l.concurrency,
            MAX_CONCURRENCY,
            CONCURRENCY_WHY,
        )?;
    }
    for (i, m) in e.methods.iter().enumerate() {
        if let Some(n) = m.points {
            at_most(at!["methods", i, "points"], n, MAX_POINTS, POINTS_WHY)?;
        }
        if let Some(n) = m.max_history_turns {
            at_most(at!["methods", i, "max_history_turns"], n, MAX_STEPS, STEPS_WHY)?;
        }
    }
    at_most(
        at!["evaluate", "min_points"],
        e.evaluate.min_points,
        MAX_POINTS,
        POINTS_WHY,
    )?;
    at_most(
        at!["evaluate", "bootstrap"],
        e.evaluate.bootstrap,
        MAX_BOOTSTRAP,
        "every resample recomputes every correlation and is kept in memory for the interval",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_within_bounds() {
        let e: Experiment = toml::from_str("name = \"x\"\n[environment]\ntype = \"frozenlake\"\n").unwrap();
        assert_eq!(check(&e), Ok(()));
    }

    #[test]
    fn a_count_above_its_bound_names_the_bound_and_why() {
        let e: Experiment =
            toml::from_str("name = \"x\"\n[environment]\ntype = \"frozenlake\"\n[[labels]]\nrollouts = 4000000000\n")
                .unwrap();
        let p = check(&e).unwrap_err();
        assert_eq!(p.path, at!["labels", 0, "rollouts"]);
        assert!(
            p.message
                .starts_with("4000000000 is above the limit 100000 (a point's k rollout returns"),
            "{}",
            p.message
        );
    }
}
