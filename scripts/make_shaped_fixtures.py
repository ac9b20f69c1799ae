"""Writes crates/qval-metrics/tests/fixtures/qval_constructed/: two summaries in the published
testbed's layout with potential and shaped-reward entries, figures by scipy.

    pip install scipy numpy && python3 scripts/make_shaped_fixtures.py

No published summary of this kind exists (bethgelab/qval ships none with a `potential` or
`shaped_reward` estimation), so these are constructed: the dataset is drawn here, and the
entries follow `scripts/pipeline/evaluate.py` of the published testbed:
- a `shaped_reward` estimation has `granularity: "trajectory"`, the trajectories' returns as
  `ground_truth_values` and, per method, `predicted_trajectory_sums` (the method's values
  summed per trajectory over its sampled points; a trajectory with none sums to 0.0);
- a `potential` estimation is point-level against V labels; when the run's `signal_type` is
  `shaped_reward`, the predictions are turned into potentials first (per trajectory, ordered
  by step, the running sum of the earlier sampled points' values, the first 0.0), while the
  summary keeps the raw values in `predicted_values` (so that file cannot be recomputed from
  the summary alone; qval says so).
"""
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
from make_scipy_fixtures import num, published_rules  # noqa: E402


def sum_per_trajectory(preds, points, n):
    sums = [0.0] * n
    for p, (traj, _step) in zip(preds, points):
        sums[traj] += p
    return sums


def potential_values(preds, points):
    groups = {}
    for i, (p, (traj, step)) in enumerate(zip(preds, points)):
        groups.setdefault(traj, []).append((step, i, p))
    out = [0.0] * len(preds)
    for entries in groups.values():
        entries.sort(key=lambda e: e[0])
        total = 0.0
        for _step, i, p in entries:
            out[i] = total
            total += p
    return out


def dataset(rng):
    """60 trajectories (two with no sampled point), their returns, sampled (trajectory, step)
    points in trajectory order with steps shuffled within each, and V labels."""
    n_traj = 60
    returns = [round(rng.uniform(-1.0, 1.0) * 0.95 ** rng.randint(0, 12), 6) for _ in range(n_traj)]
    points = []
    for t in range(n_traj):
        if t in (17, 41):
            continue
        steps = rng.sample(range(12), rng.randint(1, 4))
        points.extend((t, s) for s in steps)
    v = [math.floor(rng.uniform(0.0, 1.0) * 10.0) / 10.0 for _ in points]
    v[5] = math.nan
    return n_traj, returns, points, v


def methods(rng, points, v, returns):
    good = [(0.0 if math.isnan(x) else x) * 0.3 + rng.gauss(0.0, 0.1) for x in v]
    shaped = [returns[t] / 2.0 + rng.gauss(0.0, 0.2) for t, _ in points]
    shaped[9] = math.nan
    weak = [rng.gauss(0.0, 1.0) for _ in points]
    return {"good_shaping": good, "return_shaping": shaped, "noise": weak}


def summary(signal_type, n_traj, returns, points, v, preds):
    info = {
        "dataset_source": "constructed by scripts/make_shaped_fixtures.py",
        "predictions_dir": None,
        "env_name": "constructed",
        "signal_type": signal_type,
        "num_evaluation_points": len(points),
        "num_trajectories": n_traj,
        "gt_methods": ["potential_mc_max", "shaped_returns"],
        "eval_methods": list(preds),
        "comparisons": [{"gt": g, "eval": e} for g in ["potential_mc_max", "shaped_returns"] for e in preds],
        "gt_vs_gt_comparisons": [],
        "correlation_methods": ["pearson", "spearman", "kendall_tau"],
        "exclude_zero_points": False,
        "min_usable_correlation_points": 50,
        "timestamp": "2026-12-07T12:00:00+00:00",
    }
    potential = {}
    shaped = {}
    for name, values in preds.items():
        compared = potential_values(values, points) if signal_type == "shaped_reward" else values
        potential[name] = {
            "correlations": published_rules(v, compared),
            "predicted_values": [num(x) for x in values],
            "num_dropped_zero": 0,
        }
        sums = sum_per_trajectory(values, points, n_traj)
        shaped[name] = {
            "correlations": published_rules(returns, sums),
            "predicted_trajectory_sums": [num(x) for x in sums],
            "num_dropped_zero": 0,
        }
    return {
        "experiment_info": info,
        "dataset_config": {"note": "constructed: no published summary has these entries"},
        "dataset_metadata": {"env_name": "constructed"},
        "estimations": {
            "potential_mc_max": {
                "assumption": "potential",
                "granularity": "point",
                "ground_truth_values": [num(x) for x in v],
                "methods": potential,
            },
            "shaped_returns": {
                "assumption": "shaped_reward",
                "granularity": "trajectory",
                "ground_truth_values": returns,
                "methods": shaped,
            },
        },
        "gt_vs_gt_estimations": {},
    }


def main():
    rng = random.Random(27)
    n_traj, returns, points, v = dataset(rng)
    preds = methods(rng, points, v, returns)
    folder = os.path.join(os.path.dirname(__file__), "..", "crates", "qval-metrics", "tests", "fixtures", "qval_constructed")
    os.makedirs(folder, exist_ok=True)
    for signal_type in ["potential", "shaped_reward"]:
        path = os.path.join(folder, f"constructed_{signal_type}_summary.json")
        with open(path, "w") as f:
            json.dump(summary(signal_type, n_traj, returns, points, v, preds), f, indent=4)
        print(f"wrote {os.path.normpath(path)}")
    # The points, for tests of the potential transform against this script's.
    path = os.path.join(folder, "constructed_points.json")
    with open(path, "w") as f:
        json.dump({"points": points, "predictions": {k: [num(x) for x in p] for k, p in preds.items()},
                   "potentials": {k: [num(x) for x in potential_values(p, points)] for k, p in preds.items()},
                   "trajectory_sums": {k: [num(x) for x in sum_per_trajectory(p, points, n_traj)]
                                       for k, p in preds.items()}}, f, indent=1)
    print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
