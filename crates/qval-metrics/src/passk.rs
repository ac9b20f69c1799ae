//! pass@k of a reference policy: is it competent enough to serve as the reference?
//!
//! The unbiased estimator 1 - C(n - c, k) / C(n, k) per task (n attempts, c successes; 1 when
//! c = n, 0 when c = 0, none when k > n), macro-averaged over the tasks that have a value,
//! with the mean, the sample standard deviation, the minimum and the maximum. The layout of
//! [`PassAtK`] follows the published testbed's (`compute_pass_at_k` in bethgelab/qval:
//! `per_task` rows and an `aggregate`), with `task_key` as a string.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One attempt at a task: an episode or a rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Which task (or point) it belongs to: attempts are grouped by it.
    pub task_key: String,
    /// The task's name.
    pub task_name: String,
    /// Whether its undiscounted return reached the threshold; `None`: it failed to run
    /// (dropped).
    pub success: Option<bool>,
    /// Its undiscounted return.
    pub total_reward: f64,
    /// Its transitions.
    pub num_steps: usize,
}

/// The estimator for `n` attempts with `c` successes: `None` when `k` is 0 or above `n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n {
        return None;
    }
    if c >= n {
        return Some(1.0);
    }
    if c == 0 {
        return Some(0.0);
    }
    // C(n - c, k) / C(n, k) = prod_{i=0}^{k-1} (n - c - i) / (n - i), 0 once n - c - i hits 0.
    let mut ratio = 1.0;
    for i in 0..k {
        if n - c <= i {
            ratio = 0.0;
            break;
        }
        ratio *= (n - c - i) as f64 / (n - i) as f64;
    }
    Some(1.0 - ratio)
}

/// One task's row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    /// The group's key.
    pub task_key: String,
    /// The task's name.
    pub task_name: String,
    /// Attempts asked for.
    pub requested_n: usize,
    /// Attempts that ran.
    pub n: usize,
    /// Attempts that failed to run.
    pub dropped: usize,
    /// Successful attempts (c).
    pub successes: usize,
    /// successes / n (`None` when n = 0).
    pub success_rate: Option<f64>,
    /// The mean undiscounted return of the attempts that ran.
    pub mean_reward: Option<f64>,
    /// pass@k for each k (`None` when k > n).
    pub pass_at_k: BTreeMap<String, Option<f64>>,
}

/// The macro average of one k over the tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KAggregate {
    /// Mean over tasks.
    pub mean: Option<f64>,
    /// Sample standard deviation (denominator max(m - 1, 1)).
    pub std: Option<f64>,
    /// Smallest task value.
    pub min: Option<f64>,
    /// Largest task value.
    pub max: Option<f64>,
    /// Tasks with a value.
    pub num_tasks: usize,
}

/// Over all tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// All successes over all attempts that ran.
    pub success_rate: Option<f64>,
    /// Successes.
    pub total_successes: usize,
    /// Attempts that ran.
    pub total_samples: usize,
    /// Attempts asked for.
    pub requested_samples: usize,
    /// Attempts that failed to run.
    pub dropped_samples: usize,
    /// dropped / requested.
    pub drop_rate: Option<f64>,
    /// Each k's macro average.
    pub pass_at_k: BTreeMap<String, KAggregate>,
}

/// pass@k of a set of attempts: the aggregate and one row per task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PassAtK {
    /// Over all tasks.
    pub aggregate: Aggregate,
    /// One row per task, by key.
    pub per_task: Vec<TaskRow>,
}

impl PassAtK {
    /// The macro-averaged pass@k for `k`, if any task has one.
    pub fn mean(&self, k: usize) -> Option<f64> {
        self.aggregate.pass_at_k.get(&k.to_string()).and_then(|a| a.mean)
    }
}

/// pass@k of `attempts` for each of `k_values`, tasks in key order.
pub fn compute(attempts: &[Attempt], k_values: &[usize]) -> PassAtK {
    let mut groups: BTreeMap<&str, Vec<&Attempt>> = BTreeMap::new();
    for a in attempts {
        groups.entry(&a.task_key).or_default().push(a);
    }
    let per_task: Vec<TaskRow> = groups
        .into_iter()
        .map(|(key, group)| {
            let ran: Vec<&&Attempt> = group.iter().filter(|a| a.success.is_some()).collect();
            let (n, c) = (ran.len(), ran.iter().filter(|a| a.success == Some(true)).count());
            TaskRow {
                task_key: key.to_string(),
                task_name: group[0].task_name.clone(),
                requested_n: group.len(),
                n,
                dropped: group.len() - n,
                successes: c,
                success_rate: (n > 0).then(|| c as f64 / n as f64),
                mean_reward: (n > 0).then(|| ran.iter().map(|a| a.total_reward).sum::<f64>() / n as f64),
                pass_at_k: k_values.iter().map(|&k| (k.to_string(), pass_at_k(n, c, k))).collect(),
            }
        })
        .collect();
    let total: usize = per_task.iter().map(|t| t.n).sum();
    let requested: usize = per_task.iter().map(|t| t.requested_n).sum();
    let successes: usize = per_task.iter().map(|t| t.successes).sum();
    let aggregate = Aggregate {
        success_rate: (total > 0).then(|| successes as f64 / total as f64),
        total_successes: successes,
        total_samples: total,
        requested_samples: requested,
        dropped_samples: requested - total,
        drop_rate: (requested > 0).then(|| (requested - total) as f64 / requested as f64),
        pass_at_k: k_values
            .iter()
            .map(|&k| {
                let values: Vec<f64> = per_task.iter().filter_map(|t| t.pass_at_k[&k.to_string()]).collect();
                (k.to_string(), k_aggregate(&values))
            })
            .collect(),
    };
    PassAtK { aggregate, per_task }
}

/// The mean, sample standard deviation (0.0 for one task), min and max of the tasks'
/// pass@k: the summary of [`group_summary`](crate::group::group_summary), as for sample groups.
fn k_aggregate(values: &[f64]) -> KAggregate {
    let g = crate::group::group_summary(values);
    let some = |x: f64| (g.n > 0).then_some(x);
    KAggregate {
        mean: some(g.mean),
        std: some(g.std),
        min: some(g.min),
        max: some(g.max),
        num_tasks: g.n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binom(n: u64, k: u64) -> f64 {
        if k > n {
            return 0.0;
        }
        (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
    }

    #[test]
    fn the_estimator_is_the_closed_form_on_every_count() {
        for n in 1..=20usize {
            for c in 0..=n {
                for k in 1..=n {
                    let want = 1.0 - binom((n - c) as u64, k as u64) / binom(n as u64, k as u64);
                    let got = pass_at_k(n, c, k).unwrap();
                    assert!((got - want).abs() < 1e-12, "n={n} c={c} k={k}: {got} vs {want}");
                }
                assert_eq!(pass_at_k(n, c, n + 1), None);
            }
        }
        assert_eq!(pass_at_k(5, 5, 3), Some(1.0));
        assert_eq!(pass_at_k(5, 0, 3), Some(0.0));
        assert_eq!(pass_at_k(4, 1, 1), Some(0.25));
    }

    #[test]
    fn tasks_are_macro_averaged_with_the_sample_deviation() {
        let mut attempts = Vec::new();
        // Task a: 2 of 4; task b: 4 of 4; task c: one attempt, dropped one.
        for (key, outcomes) in [
            ("a", vec![Some(true), Some(false), Some(true), Some(false)]),
            ("b", vec![Some(true); 4]),
            ("c", vec![Some(false), None]),
        ] {
            for s in outcomes {
                attempts.push(Attempt {
                    task_key: key.into(),
                    task_name: format!("task {key}"),
                    success: s,
                    total_reward: if s == Some(true) { 1.0 } else { 0.0 },
                    num_steps: 3,
                });
            }
        }
        let p = compute(&attempts, &[1, 2]);
        assert_eq!(p.per_task[2].dropped, 1);
        assert_eq!(p.per_task[2].pass_at_k["2"], None);
        let one = &p.aggregate.pass_at_k["1"];
        assert_eq!(one.num_tasks, 3);
        let mean = (0.5 + 1.0 + 0.0) / 3.0;
        assert!((one.mean.unwrap() - mean).abs() < 1e-15);
        let sd = (((0.5f64 - mean).powi(2) + (1.0 - mean).powi(2) + mean.powi(2)) / 2.0).sqrt();
        assert!((one.std.unwrap() - sd).abs() < 1e-15);
        // pass@2 of task a: 1 - C(2,2)/C(4,2) = 5/6; task c has none.
        let two = &p.aggregate.pass_at_k["2"];
        assert_eq!(two.num_tasks, 2);
        assert!((two.mean.unwrap() - (5.0 / 6.0 + 1.0) / 2.0).abs() < 1e-15);
        assert_eq!((p.aggregate.total_samples, p.aggregate.dropped_samples), (9, 1));
    }
}
