"""The worker of Python methods: ``python -m qval_bridge.method_worker --method SPEC``.

Serves the protocol of :mod:`qval_bridge` (one JSON object per line) with these ops:

=========== ======================================= =============================================
op          request fields                          result
=========== ======================================= =============================================
hello       args (dict: ``seed`` and the entry's    protocol (1), name, ranks (bool)
            ``params``)
score       points, context                         [{"value": x} or {"error", "traceback"?}]
rank        groups (lists of points), context       one such list per group
=========== ======================================= =============================================

A ``score`` batch whose ``score_batch`` raises is scored again point by point, so an exception
fails only the points that raise it. A ``rank`` group that raises fails as a whole (its
candidates are scored together).
"""

from __future__ import annotations

import argparse
import traceback

from qval_bridge import PROTOCOL
from qval_bridge.methods import Method, as_score
from qval_bridge.worker import ProtocolError, load_class, protocol_conn, serve


def outcomes(values, n):
    """The protocol's per-point results of ``n`` scores (a list, a tuple, a numpy array or a
    tensor: anything with ``tolist()`` or a length)."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    try:
        values = list(values)
    except TypeError:
        raise ProtocolError(f"returned {type(values).__name__}, not a sequence of {n} scores") from None
    if len(values) != n:
        raise ProtocolError(f"returned {len(values)} scores for {n} points")
    out = []
    for v in values:
        x, why = as_score(v)
        out.append({"value": x} if why is None else {"error": why})
    return out


def failed(e):
    """A point's result when scoring it raised ``e``: the message and Python's traceback."""
    return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


class MethodWorker:
    """Serves the ops of a method class."""

    def __init__(self, spec):
        self.spec = spec
        self.method = None

    def score(self, points, context):
        try:
            return outcomes(self.method.score_batch(points, context), len(points))
        except Exception as e:  # noqa: BLE001 - isolate the points that raise
            if len(points) == 1:
                return [failed(e)]
        out = []
        for p in points:
            try:
                out.extend(outcomes(self.method.score_batch([p], context), 1))
            except Exception as e:  # noqa: BLE001
                out.append(failed(e))
        return out

    def rank(self, group, context):
        try:
            return outcomes(self.method.rank(group, context), len(group))
        except Exception as e:  # noqa: BLE001 - a group is scored together
            return [failed(e)] * len(group)

    def handle(self, req):
        op = req.get("op")
        if op == "hello":
            cls = load_class(self.spec, Method, "method", friendly=True)
            self.method = cls(**(req.get("args") or {}))
            return {"protocol": PROTOCOL, "name": cls.__name__, "ranks": bool(cls.ranks)}
        if self.method is None:
            raise ProtocolError("the first request must be hello")
        context = req.get("context") or {}
        if op == "score":
            return self.score(req["points"], context)
        if op == "rank":
            return [self.rank(g, context) for g in req["groups"]]
        raise ProtocolError(f"unknown op {op!r}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m qval_bridge.method_worker")
    p.add_argument("--method", required=True, help="module:Class or path.py:Class")
    args = p.parse_args(argv)
    conn = protocol_conn()
    serve(conn, MethodWorker(args.method).handle)


if __name__ == "__main__":
    main()
