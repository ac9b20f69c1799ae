"""Times qval and scipy.stats on the same data, in one run, and prints the ratios.

    pip install scipy numpy
    python3 scripts/bench_vs_scipy.py            # n = 10^4, 10^6, 10^7
    python3 scripts/bench_vs_scipy.py 10000 100000

Both sides get identical arrays (written as raw f64 for the Rust example). Each figure is
the best of several runs; qval's also reports the values so they can be compared.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy import stats

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def best_of(f, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        r = f()
        best = min(best, time.perf_counter() - t)
    return best, r


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 1_000_000, 10_000_000]
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "bench_correlations"], cwd=ROOT, check=True)
    # Cargo's target folder (CARGO_TARGET_DIR or the workspace's target/).
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    exe = os.path.join(json.loads(meta)["target_directory"], "release", "examples", "bench_correlations")
    rng = np.random.default_rng(2026)
    print(f"{'n':>10} {'statistic':>9} {'scipy s':>10} {'qval s':>10} {'speed-up':>9}  agree")
    for n in sizes:
        x = rng.normal(size=n)
        # Correlated, with ties in y (rounded) to exercise the tie handling.
        y = np.round(x + rng.normal(size=n), 2)
        repeat = 5 if n <= 1_000_000 else 2
        with tempfile.TemporaryDirectory() as d:
            xp, yp = os.path.join(d, "x.f64"), os.path.join(d, "y.f64")
            x.astype("<f8").tofile(xp)
            y.astype("<f8").tofile(yp)
            out = subprocess.run([exe, xp, yp, "--repeat", str(repeat)], check=True, capture_output=True, text=True).stdout
        ours = {r["stat"]: r for r in map(json.loads, out.splitlines())}
        for name, f in [("spearman", stats.spearmanr), ("kendall", stats.kendalltau), ("pearson", stats.pearsonr)]:
            secs, res = best_of(lambda: f(x, y), repeat)
            q = ours[name]
            agree = abs(q["value"] - res.statistic) <= 1e-12
            print(f"{n:>10} {name:>9} {secs:>10.4f} {q['seconds']:>10.4f} {secs / q['seconds']:>8.1f}x  {'yes' if agree else 'NO'}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
