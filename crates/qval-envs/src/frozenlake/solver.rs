//! Exact values on a FrozenLake map: value iteration (infinite and finite horizon), the
//! reference policy, and exact evaluation of any stationary policy.
//!
//! These are what Monte-Carlo labels are tested against. Holes and goals are terminal:
//! their values are 0, and entering a goal pays 1.

use super::map::{Grid, Tile};

/// Action values `q[cell][action]` and state values `v[cell]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Values {
    /// Q(s, a), actions numbered 0 left, 1 down, 2 right, 3 up.
    pub q: Vec<[f64; 4]>,
    /// V(s) = max_a Q(s, a) (or Q(s, pi(s)) for a policy's values).
    pub v: Vec<f64>,
}

fn backup(grid: &Grid, slippery: bool, gamma: f64, v: &[f64], cell: usize, a: usize) -> f64 {
    grid.transitions(cell, a, slippery)
        .into_iter()
        .map(|(p, next)| {
            let tile = grid.tile(next);
            let r = if tile == Tile::Goal { 1.0 } else { 0.0 };
            let cont = if tile.is_terminal() { 0.0 } else { gamma * v[next] };
            p * (r + cont)
        })
        .sum()
}

fn max4(q: &[f64; 4]) -> f64 {
    q.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Q* and V* with `horizon` steps left: `Some(h)` is exact finite-horizon dynamic
/// programming (h backups from zero), `None` iterates to the infinite-horizon fixed point
/// (until no value changes by more than 1e-15, at most 1,000,000 sweeps).
pub fn optimal_values(grid: &Grid, slippery: bool, gamma: f64, horizon: Option<usize>) -> Values {
    let n = grid.len();
    let mut v = vec![0.0; n];
    let mut q = vec![[0.0; 4]; n];
    let limit = horizon.unwrap_or(1_000_000);
    for _ in 0..limit {
        let mut delta: f64 = 0.0;
        let mut next_v = vec![0.0; n];
        for cell in 0..n {
            if grid.tile(cell).is_terminal() {
                q[cell] = [0.0; 4];
                continue;
            }
            q[cell] = std::array::from_fn(|a| backup(grid, slippery, gamma, &v, cell, a));
            next_v[cell] = max4(&q[cell]);
            delta = delta.max((next_v[cell] - v[cell]).abs());
        }
        v = next_v;
        if horizon.is_none() && delta <= 1e-15 {
            break;
        }
    }
    if horizon == Some(0) {
        q = vec![[0.0; 4]; n];
    }
    Values { q, v }
}

/// Exact values of the stationary policy `policy` (an action per cell) with `horizon`
/// steps left: Q^pi_h(s, a) = sum_s' p (r + gamma V^pi_{h-1}(s')), V^pi_h(s) = Q^pi_h(s, pi(s)).
pub fn policy_values(grid: &Grid, slippery: bool, gamma: f64, policy: &[usize], horizon: usize) -> Values {
    let n = grid.len();
    let mut v = vec![0.0; n];
    let mut q = vec![[0.0; 4]; n];
    for _ in 0..horizon {
        let mut next_v = vec![0.0; n];
        for cell in 0..n {
            if grid.tile(cell).is_terminal() {
                continue;
            }
            q[cell] = std::array::from_fn(|a| backup(grid, slippery, gamma, &v, cell, a));
            next_v[cell] = q[cell][policy[cell]];
        }
        v = next_v;
    }
    Values { q, v }
}

/// The published reference policy: value iteration on the map, keep the optimal actions
/// (within 1e-12 of the best), prefer the fewest steps to the goal, then the order right,
/// down, left, up.
///
/// "Fewest steps" is measured as the shortest deterministic path from the intended next cell;
/// on non-slippery maps that is exactly the fewest expected steps.
pub fn reference_policy(grid: &Grid, slippery: bool, gamma: f64) -> Vec<usize> {
    const ORDER: [usize; 4] = [2, 1, 0, 3];
    let values = optimal_values(grid, slippery, gamma, None);
    let dist = grid.distances_to_goal();
    (0..grid.len())
        .map(|cell| {
            let q = &values.q[cell];
            let best = max4(q);
            let tol = 1e-12 * best.abs().max(1.0);
            ORDER
                .iter()
                .copied()
                .filter(|&a| q[a] >= best - tol)
                .min_by_key(|&a| {
                    let next = grid.move_from(cell, a);
                    // A move into the wall wastes a step.
                    let d = dist[next].unwrap_or(usize::MAX / 2);
                    if next == cell { d.saturating_add(1) } else { d }
                })
                .unwrap_or(2)
        })
        .collect()
}
