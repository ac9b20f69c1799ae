//! The published testbed's transforms of shaped-reward predictions (bethgelab/qval
//! `src/qval/transforms.py`): potentials from per-step shaping terms, and sums per
//! trajectory. Both follow the published code to the bit (the same order of additions).

use std::collections::HashMap;

use crate::report::PredictionSet;
use crate::summary::Granularity;
use qval_core::{Prediction, Signal, Trajectory};

/// Where a point sits: its trajectory (an index into the dataset's trajectories) and step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrajectoryStep {
    /// The trajectory's index.
    pub trajectory: usize,
    /// The step's index within it.
    pub step: usize,
}

/// The potential of each point from shaping terms F: within each trajectory, points ordered
/// by step (points of one step keep their order), each point's potential is the sum of F over
/// the sampled points before it, the first 0.0. This is the published code's rule: the
/// running sum is over the sampled points, not every transition, so the first sampled point
/// of a trajectory is 0.0 whatever its step. A NaN F makes every later potential of its
/// trajectory NaN. The result is in the input order.
pub fn potentials(shaping: &[f64], points: &[TrajectoryStep]) -> Vec<f64> {
    let n = shaping.len().min(points.len());
    let mut order: Vec<usize> = (0..n).collect();
    // A stable sort by (trajectory, step) groups trajectories and keeps ties in input order,
    // as the published per-trajectory stable sort by step does.
    order.sort_by_key(|&i| (points[i].trajectory, points[i].step));
    let mut out = vec![0.0; n];
    let mut current = None;
    let mut total = 0.0;
    for i in order {
        if current != Some(points[i].trajectory) {
            current = Some(points[i].trajectory);
            total = 0.0;
        }
        out[i] = total;
        total += shaping[i];
    }
    out
}

/// The predictions summed per trajectory over its sampled points, for `trajectories`
/// trajectories (one with no sampled point sums to 0.0; a NaN makes its trajectory's sum NaN).
/// Points whose trajectory index is out of range are left out.
pub fn sum_per_trajectory(predictions: &[f64], points: &[TrajectoryStep], trajectories: usize) -> Vec<f64> {
    let mut sums = vec![0.0; trajectories];
    for (p, at) in predictions.iter().zip(points) {
        if let Some(s) = sums.get_mut(at.trajectory) {
            *s += p;
        }
    }
    sums
}

/// Where each point of a run sits, by point id, and how many trajectories the run has: what
/// the evaluation of shaped rewards needs beyond the predictions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointLayout {
    at: HashMap<String, TrajectoryStep>,
    trajectories: usize,
}

impl PointLayout {
    /// The layout of points given as `(id, trajectory index, step index)`, among
    /// `trajectories` trajectories.
    pub fn new<'a>(points: impl IntoIterator<Item = (&'a str, usize, usize)>, trajectories: usize) -> Self {
        PointLayout {
            at: points
                .into_iter()
                .map(|(id, trajectory, step)| (id.to_string(), TrajectoryStep { trajectory, step }))
                .collect(),
            trajectories,
        }
    }

    /// The trajectories of the run.
    pub fn trajectories(&self) -> usize {
        self.trajectories
    }

    /// A shaped-reward method's predictions as the sets the evaluation compares: its
    /// potentials (signal potential, by point; see [`potentials`]) and its sums per trajectory
    /// (signal shaped-reward, trajectory granularity, by trajectory id; see
    /// [`sum_per_trajectory`]). Points of other runs are left out; a point without a
    /// prediction counts as NaN.
    pub fn shaped_sets(&self, m: &PredictionSet) -> [PredictionSet; 2] {
        let mine: Vec<(&Prediction, TrajectoryStep)> = m
            .predictions
            .iter()
            .filter_map(|p| self.at.get(&p.point_id).map(|&at| (p, at)))
            .collect();
        let values: Vec<f64> = mine.iter().map(|(p, _)| p.value).collect();
        let at: Vec<TrajectoryStep> = mine.iter().map(|(_, at)| *at).collect();
        let potential = PredictionSet {
            signal: Signal::Potential,
            predictions: mine
                .iter()
                .zip(potentials(&values, &at))
                .map(|((p, _), v)| Prediction {
                    value: v,
                    ..(*p).clone()
                })
                .collect(),
            ..m.clone()
        };
        let mut sums = sum_per_trajectory(&values, &at, self.trajectories);
        // The points of the run without a prediction make their trajectories' sums NaN.
        let predicted: std::collections::HashSet<&str> = m.predictions.iter().map(|p| p.point_id.as_str()).collect();
        for (id, a) in &self.at {
            if !predicted.contains(id.as_str())
                && let Some(s) = sums.get_mut(a.trajectory)
            {
                *s = f64::NAN;
            }
        }
        let shaped = PredictionSet {
            granularity: Some(Granularity::Trajectory),
            predictions: sums
                .into_iter()
                .enumerate()
                .map(|(i, value)| Prediction {
                    point_id: Trajectory::label_id(i),
                    value,
                    error: None,
                    transient: false,
                })
                .collect(),
            ..m.clone()
        };
        [potential, shaped]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(trajectory: usize, step: usize) -> TrajectoryStep {
        TrajectoryStep { trajectory, step }
    }

    #[test]
    fn potentials_are_running_sums_over_the_earlier_sampled_points() {
        // Trajectory 0 sampled at steps 4, 1, 7 (out of order); trajectory 1 at 2 and 3.
        let points = [at(0, 4), at(1, 3), at(0, 1), at(0, 7), at(1, 2)];
        let f = [1.0, 10.0, 2.0, 4.0, 20.0];
        // Trajectory 0 in step order: steps 1 (F 2), 4 (F 1), 7 (F 4) -> 0, 2, 3.
        // Trajectory 1: steps 2 (F 20), 3 (F 10) -> 0, 20.
        assert_eq!(potentials(&f, &points), vec![2.0, 20.0, 0.0, 3.0, 0.0]);
    }

    #[test]
    fn a_nan_reaches_every_later_potential_of_its_trajectory_only() {
        let points = [at(0, 0), at(0, 1), at(0, 2), at(1, 0), at(1, 1)];
        let f = [f64::NAN, 1.0, 1.0, 5.0, 1.0];
        let p = potentials(&f, &points);
        assert_eq!(p[0], 0.0);
        assert!(p[1].is_nan() && p[2].is_nan());
        assert_eq!((p[3], p[4]), (0.0, 5.0));
    }

    #[test]
    fn sums_per_trajectory_keep_empty_ones_at_zero() {
        let points = [at(2, 0), at(0, 1), at(2, 5)];
        let s = sum_per_trajectory(&[1.5, -1.0, 2.0], &points, 4);
        assert_eq!(s, vec![-1.0, 0.0, 3.5, 0.0]);
        let s = sum_per_trajectory(&[f64::NAN, 1.0, 2.0], &points, 3);
        assert!(s[2].is_nan() && s[0] == 1.0);
    }
}
