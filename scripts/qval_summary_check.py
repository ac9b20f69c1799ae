#!/usr/bin/env python3
"""Recompute every figure of an evaluation summary written in QVal's layout.

The published QVal testbed (bethgelab/qval, ``scripts/pipeline/evaluate.py``)
writes ``summary_<YYYYmmdd_HHMMSS>.json``. This script reads such a summary (or
one written by qval in the same layout), recomputes every figure from the
values stored in it, and compares the result with the stored figures.

Rules followed (as published):

* point / trajectory granularity: the label list (``ground_truth_values``) and
  the method's values (``predicted_values`` or ``predicted_trajectory_sums``)
  are cut to their common prefix, capped at
  ``experiment_info.num_evaluation_points`` (point granularity only); with
  ``experiment_info.exclude_zero_points`` every pair where either side equals
  0 is dropped first and counted in ``num_dropped_zero``; pairs where either
  side is NaN (null) are not usable; with fewer usable pairs than
  ``experiment_info.min_usable_correlation_points`` (default 50) the
  correlation and p-value are null and ``num_points`` is the usable count;
  otherwise scipy's ``pearsonr`` / ``spearmanr`` / ``kendalltau`` are called
  with their defaults on the usable pairs, and ``sign_agreement`` is the share
  of usable pairs with ``np.sign(gt) == np.sign(pred)`` with
  ``binomtest(successes, n, 0.5)`` (two-sided). NaN results are written null.
* sample groups (``per_sample`` + ``aggregate_correlations``): every per-sample
  entry is recomputed as above; per correlation method the aggregate is over
  the per-sample correlations that are not null: mean, sample std (n-1; 0.0
  with one value), min, max, median, ``num_samples`` (count used) and
  ``num_nan`` (count dropped); with no usable value every statistic is null
  and ``num_samples`` is 0.
* ranking granularity: the summary keeps only ``candidate_counts`` and the
  per-state values, so mean / sample std (n-1; 0.0 with one valid value) /
  ``num_valid`` / ``num_skipped`` / ``num_points`` are recomputed from
  ``per_point_correlations``. With ``--predictions DIR`` the per-state values
  themselves are recomputed from the ranking prediction files (flattened
  candidate values, ``config.candidate_counts``): per state, skip (null) when
  fewer than 2 candidates, any prediction is NaN, or all labels are equal;
  else Spearman between ``rankdata(-labels)`` (average ties) and the predicted
  ranks (``ranking_scores`` predictions are first turned into ranks with
  ``rankdata(-scores)``).

Output: a JSON object on stdout with ``recomputed`` (flat dotted keys such as
``estimations.<gt>.methods.<m>.correlations.<corr>.correlation``, NaN written
null), ``mismatches`` and ``notes``. Exit status 1 when a stored figure
differs: correlations and other real-valued statistics beyond 1e-9 absolute,
p-values beyond 1e-6 relative, counts exactly. Keys this script does not know
are ignored.

Needs only the standard library, numpy and scipy (``pip install scipy numpy``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ABS_TOL = 1e-9
P_REL_TOL = 1e-6
DEFAULT_MIN_USABLE = 50
SECTIONS = ("estimations", "gt_vs_gt_estimations")
_TIMESTAMP_RE = re.compile(r"_(\d{8}_\d{6})$")


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def to_float(value: Any) -> float:
    """JSON value -> float, null -> NaN."""
    if value is None:
        return float("nan")
    return float(value)


def clean(value: Any) -> Any:
    """NaN / inf -> None so the output is strict JSON."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (np.floating,)):
        return clean(float(value))
    if isinstance(value, (np.integer,)):
        return int(value)
    return value


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class Checker:
    def __init__(self) -> None:
        self.recomputed: dict[str, Any] = {}
        self.mismatches: list[dict[str, Any]] = []
        self.notes: list[str] = []

    # kind: "corr" (abs 1e-9), "p" (rel 1e-6), "int" (exact)
    def record(self, key: str, value: Any, stored: Any, kind: str, present: bool) -> None:
        value = clean(value)
        self.recomputed[key] = value
        if not present:
            self.mismatches.append(
                {"key": key, "stored": "<missing>", "recomputed": value}
            )
            return
        if not self._equal(value, stored, kind):
            self.mismatches.append({"key": key, "stored": stored, "recomputed": value})

    @staticmethod
    def _equal(value: Any, stored: Any, kind: str) -> bool:
        if is_missing(value) or is_missing(stored):
            return is_missing(value) and is_missing(stored)
        if kind == "int":
            return isinstance(stored, (int, float)) and int(stored) == stored and int(stored) == int(value)
        a, b = float(value), float(stored)
        if kind == "p":
            if a == b:
                return True
            scale = max(abs(a), abs(b))
            # p-values that underflow to (almost) zero compare equal.
            if scale < 1e-300:
                return True
            return abs(a - b) <= P_REL_TOL * scale
        return abs(a - b) <= ABS_TOL


def check_dict_entry(
    chk: Checker, prefix: str, stored: Any, recomputed: dict[str, Any], kinds: dict[str, str]
) -> None:
    stored = stored if isinstance(stored, dict) else {}
    for field, value in recomputed.items():
        chk.record(
            f"{prefix}.{field}", value, stored.get(field), kinds[field], field in stored
        )


# --------------------------------------------------------------------------
# pointwise correlations
# --------------------------------------------------------------------------

CORR_KINDS = {"correlation": "corr", "p_value": "p", "num_points": "int"}


def correlation_figures(
    gt: list[float], pred: list[float], method: str, min_usable: int
) -> dict[str, Any] | None:
    """One correlation entry as the published writer computes it (None = omitted)."""
    pairs = [(g, p) for g, p in zip(gt, pred) if not (math.isnan(g) or math.isnan(p))]
    usable = len(pairs)
    if usable < min_usable:
        return {"correlation": None, "p_value": None, "num_points": usable}
    if usable < 2:
        # compute_correlation raises ValueError; the writer omits the key.
        return None
    g = np.array([a for a, _ in pairs], dtype=float)
    p = np.array([b for _, b in pairs], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "pearson":
            res = stats.pearsonr(g, p)
            corr, pval = float(res[0]), float(res[1])
        elif method == "spearman":
            res = stats.spearmanr(g, p)
            corr, pval = float(res[0]), float(res[1])
        elif method == "kendall_tau":
            res = stats.kendalltau(g, p)
            corr, pval = float(res[0]), float(res[1])
        elif method == "sign_agreement":
            successes = int(np.sum(np.sign(g) == np.sign(p)))
            corr = successes / usable
            pval = float(stats.binomtest(successes, usable, p=0.5).pvalue)
        else:
            raise ValueError(f"unknown correlation method {method!r}")
    return {"correlation": corr, "p_value": pval, "num_points": usable}


def filter_zero_pairs(gt: list[float], pred: list[float]) -> tuple[list[float], list[float], int]:
    out_g: list[float] = []
    out_p: list[float] = []
    dropped = 0
    for g, p in zip(gt, pred):
        if g == 0 or p == 0:
            dropped += 1
            continue
        out_g.append(g)
        out_p.append(p)
    return out_g, out_p, dropped


class SummaryContext:
    def __init__(self, summary: dict[str, Any]) -> None:
        info = summary.get("experiment_info") or {}
        self.num_points = info.get("num_evaluation_points")
        self.correlation_methods = info.get("correlation_methods")
        self.exclude_zero = bool(info.get("exclude_zero_points", False))
        self.min_usable = info.get("min_usable_correlation_points", DEFAULT_MIN_USABLE)
        if self.min_usable is None:
            self.min_usable = DEFAULT_MIN_USABLE


def recompute_pointwise_entry(
    chk: Checker,
    ctx: SummaryContext,
    prefix: str,
    gt_values: list[float],
    entry: dict[str, Any],
    granularity: str,
) -> dict[str, Any] | None:
    """Recompute one method entry; return the recomputed correlations dict."""
    values_key = (
        "predicted_trajectory_sums" if granularity == "trajectory" else "predicted_values"
    )
    if values_key not in entry:
        chk.notes.append(f"{prefix}: no {values_key}; entry skipped")
        return None
    pred = [to_float(v) for v in entry[values_key]]
    n = min(len(gt_values), len(pred))
    if granularity == "point" and isinstance(ctx.num_points, int) and n > ctx.num_points:
        n = ctx.num_points
    gt = gt_values[:n]
    pred = pred[:n]
    if ctx.exclude_zero:
        gt, pred, dropped = filter_zero_pairs(gt, pred)
    else:
        dropped = 0
    if "num_dropped_zero" in entry or granularity in ("point", "trajectory"):
        chk.record(
            f"{prefix}.num_dropped_zero",
            dropped,
            entry.get("num_dropped_zero"),
            "int",
            "num_dropped_zero" in entry,
        )
    stored_corrs = entry.get("correlations") or {}
    methods = ctx.correlation_methods or list(stored_corrs)
    recomputed: dict[str, Any] = {}
    for method in methods:
        key = f"{prefix}.correlations.{method}"
        try:
            figures = correlation_figures(gt, pred, method, ctx.min_usable)
        except ValueError as exc:
            chk.notes.append(f"{key}: {exc}")
            continue
        if figures is None:
            if method in stored_corrs:
                chk.mismatches.append(
                    {"key": key, "stored": stored_corrs[method], "recomputed": "<omitted>"}
                )
            continue
        recomputed[method] = figures
        check_dict_entry(chk, key, stored_corrs.get(method), figures, CORR_KINDS)
        if method not in stored_corrs:
            chk.notes.append(f"{key}: not stored")
    for method in stored_corrs:
        if method not in recomputed and method not in methods:
            chk.notes.append(f"{prefix}.correlations.{method}: stored but not in correlation_methods")
    return recomputed


AGG_KINDS = {
    "mean": "corr",
    "std": "corr",
    "min": "corr",
    "max": "corr",
    "median": "corr",
    "num_samples": "int",
    "num_nan": "int",
}


def aggregate_samples(per_sample_corrs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    valid: dict[str, list[float]] = {}
    dropped: dict[str, int] = {}
    for corrs in per_sample_corrs:
        for method, data in corrs.items():
            value = data.get("correlation")
            if is_missing(value):
                dropped[method] = dropped.get(method, 0) + 1
                valid.setdefault(method, [])
                continue
            valid.setdefault(method, []).append(float(value))
    out: dict[str, dict[str, Any]] = {}
    for method, values in valid.items():
        n = len(values)
        if n == 0:
            out[method] = {
                "mean": None,
                "std": None,
                "min": None,
                "max": None,
                "median": None,
                "num_samples": 0,
                "num_nan": dropped.get(method, 0),
            }
            continue
        out[method] = {
            "mean": statistics.mean(values),
            "std": statistics.stdev(values) if n > 1 else 0.0,
            "min": min(values),
            "max": max(values),
            "median": statistics.median(values),
            "num_samples": n,
            "num_nan": dropped.get(method, 0),
        }
    return out


def recompute_group(
    chk: Checker,
    ctx: SummaryContext,
    prefix: str,
    gt_values: list[float],
    entry: dict[str, Any],
    granularity: str,
) -> None:
    per_sample = entry.get("per_sample") or []
    per_sample_corrs: list[dict[str, Any]] = []
    for i, sample in enumerate(per_sample):
        if not isinstance(sample, dict):
            continue
        corrs = recompute_pointwise_entry(
            chk, ctx, f"{prefix}.per_sample.{i}", gt_values, sample, granularity
        )
        per_sample_corrs.append(corrs or {})
    aggregate = aggregate_samples(per_sample_corrs)
    stored = entry.get("aggregate_correlations") or {}
    for method, figures in aggregate.items():
        check_dict_entry(
            chk, f"{prefix}.aggregate_correlations.{method}", stored.get(method), figures, AGG_KINDS
        )
    stored_n = entry.get("num_samples")
    chk.recomputed[f"{prefix}.per_sample_count"] = len(per_sample)
    if stored_n is not None and stored_n != len(per_sample):
        chk.notes.append(
            f"{prefix}.num_samples={stored_n} (from the predictions' config) but "
            f"{len(per_sample)} per-sample entries are stored"
        )


# --------------------------------------------------------------------------
# ranking
# --------------------------------------------------------------------------

RANK_KINDS = {
    "mean": "corr",
    "std": "corr",
    "num_valid": "int",
    "num_skipped": "int",
    "num_points": "int",
}


def ranking_aggregate_from_valid(valid: list[float], num_points: int) -> dict[str, Any]:
    """Aggregate exactly as the publisher does.

    ``valid`` holds every per-state value that was not skipped, NaN included:
    a state whose predictions are all equal is not skipped, spearmanr returns
    NaN there, and that NaN is counted in ``num_valid`` and makes the mean and
    std NaN (written null).
    """
    n = len(valid)
    if n == 0:
        return {
            "mean": None,
            "std": None,
            "num_valid": 0,
            "num_skipped": num_points,
            "num_points": num_points,
        }
    mean = sum(valid) / n
    if n > 1:
        std = (sum((c - mean) ** 2 for c in valid) / (n - 1)) ** 0.5
    else:
        std = 0.0
    return {
        "mean": mean,
        "std": std,
        "num_valid": n,
        "num_skipped": num_points - n,
        "num_points": num_points,
    }


def ranking_aggregate(per_point: list[Any], stored: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """Aggregate from stored per-state values (null = skipped or NaN).

    A null can be a skipped state or a NaN value counted as valid (see
    ``ranking_aggregate_from_valid``); the summary does not say which. When the
    stored ``num_valid`` exceeds the non-null count, that many nulls are taken
    as NaN values (which makes mean and std null) and a note is returned.
    """
    values = [float(v) for v in per_point if not is_missing(v)]
    note = None
    extra_nan = 0
    if isinstance(stored, dict):
        stored_valid = stored.get("num_valid")
        nulls = len(per_point) - len(values)
        if isinstance(stored_valid, int) and len(values) < stored_valid <= len(values) + nulls:
            extra_nan = stored_valid - len(values)
            note = (
                f"{extra_nan} null per-state value(s) counted as valid NaN "
                "(constant predictions in a state); mean/std are then null"
            )
    return ranking_aggregate_from_valid(values + [float("nan")] * extra_nan, len(per_point)), note


def scores_to_ranks(values: list[float], counts: list[int]) -> list[float]:
    out: list[float] = []
    offset = 0
    for width in counts:
        chunk = values[offset : offset + width]
        offset += width
        if any(math.isnan(v) for v in chunk):
            out.extend([float("nan")] * width)
            continue
        out.extend(float(r) for r in stats.rankdata(-np.array(chunk, dtype=float), method="average"))
    return out


def ranking_per_point(
    gt: list[float], ev: list[float], counts: list[int]
) -> tuple[list[float], list[float]]:
    """Per-state Spearman values and the list of non-skipped values (NaN kept)."""
    per_point: list[float] = []
    valid: list[float] = []
    offset = 0
    for k in counts:
        g = gt[offset : offset + k]
        e = ev[offset : offset + k]
        offset += k
        if k < 2 or any(math.isnan(v) for v in e):
            per_point.append(float("nan"))
            continue
        g_arr = np.array(g, dtype=float)
        if np.all(g_arr == g_arr[0]):
            per_point.append(float("nan"))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            corr, _ = stats.spearmanr(stats.rankdata(-g_arr, method="average"), np.array(e, dtype=float))
        per_point.append(float(corr))
        valid.append(float(corr))
    return per_point, valid


def recompute_ranking(
    chk: Checker,
    prefix: str,
    gt_name: str,
    method_name: str,
    entry: dict[str, Any],
    predictions: dict[str, dict[str, Any]],
) -> None:
    stored_pp = entry.get("per_point_correlations")
    per_point = stored_pp if isinstance(stored_pp, list) else None
    valid: list[float] | None = None
    stored = (entry.get("correlations") or {}).get("ranking_spearman")
    gt_pred = predictions.get(gt_name)
    ev_pred = predictions.get(method_name)
    if gt_pred is not None and ev_pred is not None:
        gt_counts = [int(c) for c in (gt_pred.get("config") or {}).get("candidate_counts") or []]
        ev_counts = [int(c) for c in (ev_pred.get("config") or {}).get("candidate_counts") or []]
        if gt_counts and ev_counts:
            common = min(len(gt_counts), len(ev_counts))
            if gt_counts[:common] != ev_counts[:common]:
                chk.notes.append(f"{prefix}: candidate_counts of the prediction files disagree")
            else:
                counts = ev_counts[:common]
                flat = sum(counts)
                gt_vals = [to_float(v) for v in gt_pred["values"][:flat]]
                ev_vals = [to_float(v) for v in ev_pred["values"][:flat]]
                if (ev_pred.get("config") or {}).get("prediction_format") == "ranking_scores":
                    ev_vals = scores_to_ranks(ev_vals, counts)
                per_point, valid = ranking_per_point(gt_vals, ev_vals, counts)
                stored_list = stored_pp if isinstance(stored_pp, list) else []
                for i, value in enumerate(per_point):
                    chk.record(
                        f"{prefix}.per_point_correlations.{i}",
                        value,
                        stored_list[i] if i < len(stored_list) else None,
                        "corr",
                        i < len(stored_list),
                    )
                if len(stored_list) > len(per_point):
                    chk.mismatches.append(
                        {
                            "key": f"{prefix}.per_point_correlations",
                            "stored": f"{len(stored_list)} values",
                            "recomputed": f"{len(per_point)} values",
                        }
                    )
        else:
            chk.notes.append(f"{prefix}: prediction files lack config.candidate_counts")
    if per_point is None:
        chk.notes.append(f"{prefix}: no per_point_correlations; entry skipped")
        return
    if valid is not None:
        figures = ranking_aggregate_from_valid(valid, len(per_point))
    else:
        figures, note = ranking_aggregate(per_point, stored)
        if note:
            chk.notes.append(f"{prefix}: {note}")
    check_dict_entry(chk, f"{prefix}.correlations.ranking_spearman", stored, figures, RANK_KINDS)


# --------------------------------------------------------------------------
# prediction files (optional, for ranking per-state values)
# --------------------------------------------------------------------------


def load_predictions(dirs: list[str]) -> dict[str, dict[str, Any]]:
    """Load prediction JSONs; of timestamped siblings the newest (by name) wins."""
    families: dict[tuple[str, str], list[tuple[Any, str, Path]]] = {}
    for d in dirs:
        for path in sorted(Path(d).rglob("*.json")):
            stem = path.stem
            match = _TIMESTAMP_RE.search(stem)
            stamp: Any = None
            if match:
                try:
                    stamp = datetime.strptime(match.group(1), "%Y%m%d_%H%M%S")
                    stem = stem[: match.start()]
                except ValueError:
                    stamp = None
            key = (str(path.parent), stem)
            order = (1, stamp, path.name) if stamp is not None else (0, datetime.min, path.name)
            families.setdefault(key, []).append((order, path.name, path))
    out: dict[str, dict[str, Any]] = {}
    for members in families.values():
        members.sort(key=lambda m: m[0])
        newest = members[-1][2]
        try:
            data = json.loads(newest.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("method_name"), str):
            out[data["method_name"]] = data
    return out


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------


def check_summary(summary: dict[str, Any], predictions: dict[str, dict[str, Any]]) -> Checker:
    chk = Checker()
    ctx = SummaryContext(summary)
    for section in SECTIONS:
        block = summary.get(section)
        if not isinstance(block, dict):
            continue
        for gt_name, est in block.items():
            if not isinstance(est, dict):
                continue
            granularity = est.get("granularity", "point")
            methods = est.get("methods") or {}
            base = f"{section}.{gt_name}.methods"
            if granularity in ("point", "trajectory"):
                gt_values = [to_float(v) for v in est.get("ground_truth_values") or []]
                for name, entry in methods.items():
                    if not isinstance(entry, dict):
                        continue
                    prefix = f"{base}.{name}"
                    if "per_sample" in entry:
                        recompute_group(chk, ctx, prefix, gt_values, entry, granularity)
                    else:
                        recompute_pointwise_entry(chk, ctx, prefix, gt_values, entry, granularity)
            elif granularity == "ranking":
                for name, entry in methods.items():
                    if isinstance(entry, dict):
                        recompute_ranking(chk, f"{base}.{name}", gt_name, name, entry, predictions)
            else:
                chk.notes.append(f"{section}.{gt_name}: unknown granularity {granularity!r}; skipped")
    return chk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("summary", help="summary JSON in QVal's layout")
    parser.add_argument(
        "--predictions",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of prediction JSONs (searched recursively; repeatable); "
        "used to recompute ranking per-state values",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only the mismatches and notes"
    )
    args = parser.parse_args(argv)
    summary = json.loads(Path(args.summary).read_text())
    predictions = load_predictions(args.predictions) if args.predictions else {}
    chk = check_summary(summary, predictions)
    report: dict[str, Any] = {
        "summary": args.summary,
        "num_recomputed": len(chk.recomputed),
        "num_mismatches": len(chk.mismatches),
        "mismatches": chk.mismatches,
        "notes": chk.notes,
    }
    if not args.quiet:
        report["recomputed"] = chk.recomputed
    json.dump(report, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
    return 1 if chk.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
