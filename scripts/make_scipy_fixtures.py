"""Writes crates/qval-metrics/tests/fixtures/scipy.json: what scipy.stats says for pearsonr,
spearmanr, kendalltau (defaults, two-sided) and binomtest on deterministic inputs.

    pip install scipy numpy && python3 scripts/make_scipy_fixtures.py

NaN pairs are dropped before calling scipy (the published evaluation rule). Constant inputs
give NaN, as scipy returns (with a warning).
"""
import json
import math
import os
import sys
import warnings

import numpy as np
import scipy
from scipy import stats

sys.path.insert(0, os.path.dirname(__file__))
from gen_inputs import KINDS, drop_nan, make  # noqa: E402

SIZES = [3, 4, 5, 7, 10, 20, 33, 34, 50, 100, 1000, 10000, 100000]


def num(v):
    v = float(v)
    return None if math.isnan(v) else v


def main():
    cases = []
    for n in SIZES:
        for k, kind in enumerate(KINDS):
            if n > 10000 and kind in ("cont_neg", "const", "binary"):
                continue
            seed = n * 31 + k
            x, y = drop_nan(*make(kind, n, seed))
            if len(x) < 3:
                continue
            xa, ya = np.array(x), np.array(y)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = stats.pearsonr(xa, ya)
                s = stats.spearmanr(xa, ya)
                t = stats.kendalltau(xa, ya)
            cases.append({
                "kind": kind, "n": n, "seed": seed, "usable": len(x),
                "pearson": [num(p.statistic), num(p.pvalue)],
                "spearman": [num(s.statistic), num(s.pvalue)],
                "kendall": [num(t.statistic), num(t.pvalue)],
            })
    binom = []
    for n in [1, 2, 5, 10, 51, 100, 1000, 12345]:
        for k in sorted({0, 1, n // 3, n // 2, (n + 1) // 2, n - 1, n}):
            if 0 <= k <= n:
                binom.append({"k": k, "n": n, "p": stats.binomtest(k, n, 0.5).pvalue})
    out = {"scipy": scipy.__version__, "numpy": np.__version__, "cases": cases, "binomtest": binom}
    path = os.path.join(os.path.dirname(__file__), "..", "crates", "qval-metrics", "tests", "fixtures", "scipy.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {len(cases)} cases and {len(binom)} binomial tests to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
