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


def published_rules(labels, preds):
    """The published evaluation: prefix truncation, drop NaN pairs, NaN below 50 pairs."""
    n = min(len(labels), len(preds))
    x, y = drop_nan(preds[:n], labels[:n])
    out = {}
    for key, f in [("pearson", stats.pearsonr), ("spearman", stats.spearmanr), ("kendall_tau", stats.kendalltau)]:
        if len(x) < 50:
            out[key] = {"correlation": None, "p_value": None, "num_points": len(x)}
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = f(np.array(x), np.array(y))
        out[key] = {"correlation": num(r.statistic), "p_value": num(r.pvalue), "num_points": len(x)}
    return out


def published_summary():
    """A summary in the published testbed's layout, with figures computed by scipy."""
    labels = [math.floor(v * 14.0) / 14.0 for v in make("cont", 120, 5)[0]]
    labels[7] = math.nan
    good = [a + b for a, b in zip(labels, make("cont", 130, 6)[1])]  # longer: truncated
    good[3] = math.nan
    weak = make("cont_weak", 120, 7)[1]
    few = make("cont", 40, 8)[0]  # under 50 pairs: NaN
    methods = {}
    for name, values in [("good", good), ("weak", weak), ("few", few)]:
        methods[name] = {"values": [num(v) for v in values], "correlations": published_rules(labels, values)}
    return {"experiment": {"env": "fixture", "note": "written by scripts/make_scipy_fixtures.py"},
            "estimations": {"mvmc": {"values": [num(v) for v in labels], "methods": methods}}}


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
    published = published_summary()
    path2 = os.path.join(os.path.dirname(__file__), "..", "crates", "qval-metrics", "tests", "fixtures", "published_summary.json")
    with open(path2, "w") as f:
        json.dump(published, f, indent=1)
    out = {"scipy": scipy.__version__, "numpy": np.__version__, "cases": cases, "binomtest": binom}
    path = os.path.join(os.path.dirname(__file__), "..", "crates", "qval-metrics", "tests", "fixtures", "scipy.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {len(cases)} cases and {len(binom)} binomial tests to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
