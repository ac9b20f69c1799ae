"""The qval worker: ``python -m qval_bridge.worker --adapter SPEC``.

SPEC is ``package.module:Class`` or ``path/to/file.py:Class``. Serves the JSON-lines protocol
described in :mod:`qval_bridge` on stdin/stdout until stdin closes. Anything the adapter
prints goes to stderr, so it cannot corrupt the protocol.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import importlib.util
import json
import os
import sys
import traceback

from qval_bridge import PROTOCOL, Adapter, MissingPackage


class ProtocolError(RuntimeError):
    pass


class LiveRng:
    """Draws from qval's generator over the protocol, recording every draw."""

    def __init__(self, conn, rid):
        self.conn = conn
        self.rid = rid
        self.draws = []

    def integers(self, n):
        n = int(n)
        if n < 1:
            raise ValueError("rng.integers(n) needs n >= 1")
        v = int(self.conn.ask({"id": self.rid, "rng": "int", "n": n}))
        self.draws.append({"i": v})
        return v

    def random(self):
        v = float(self.conn.ask({"id": self.rid, "rng": "float"}))
        self.draws.append({"f": v})
        return v


class ReplayRng:
    """Answers draws from a recorded list (restoring a replay state)."""

    def __init__(self, draws):
        self.draws = list(draws)
        self.pos = 0

    def _next(self, kind):
        if self.pos >= len(self.draws) or kind not in self.draws[self.pos]:
            raise ProtocolError("replay diverged: the adapter asked for other random draws than were recorded")
        v = self.draws[self.pos][kind]
        self.pos += 1
        return v

    def integers(self, n):
        return int(self._next("i"))

    def random(self):
        return float(self._next("f"))


class Conn:
    def __init__(self, inp, out):
        self.inp = inp
        self.out = out

    def send(self, obj):
        self.out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self.out.flush()

    def recv(self):
        line = self.inp.readline()
        if not line:
            return None
        return json.loads(line)

    def ask(self, obj):
        self.send(obj)
        reply = self.recv()
        if reply is None:
            raise SystemExit(0)
        if "value" not in reply:
            raise ProtocolError(f"expected a draw, got {reply!r}")
        return reply["value"]


def load_class(spec: str, base: type, what: str = "adapter", friendly: bool = False):
    """The class ``spec`` names (``module:Class`` or ``path.py:Class``), a subclass of ``base``.

    A ``path.py`` module's folder goes on ``sys.path`` (so it can import its neighbours). With
    ``friendly``, a module that cannot be found is a :class:`MissingPackage` naming a likely
    pip command when a dependency is missing, or a path problem when the module itself is not
    on the path; otherwise the import error stands as raised."""
    if ":" not in spec:
        raise ValueError(f"{what} `{spec}`: give module:Class or path.py:Class")
    where, name = spec.rsplit(":", 1)
    try:
        if where.endswith(".py"):
            folder = os.path.dirname(os.path.abspath(where))
            if folder not in sys.path:
                sys.path.insert(0, folder)
            mod_name = f"qval_{what}_" + os.path.splitext(os.path.basename(where))[0]
            s = importlib.util.spec_from_file_location(mod_name, where)
            if s is None or s.loader is None:
                raise ImportError(f"cannot load {where}")
            module = importlib.util.module_from_spec(s)
            sys.modules[mod_name] = module
            s.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ModuleNotFoundError as e:
        if not friendly:
            raise
        missing = e.name or ""
        if not where.endswith(".py") and (where == missing or where.startswith(missing + ".")):
            raise ModuleNotFoundError(
                f"cannot import `{where}`: no module `{missing}` on the path "
                f"({os.pathsep.join([p for p in sys.path if p][:4])}, ...); put its folder next to the experiment file "
                "or add it to PYTHONPATH"
            ) from e
        top = missing.split(".")[0]
        raise MissingPackage(top, f"pip install {top}") from e
    cls = getattr(module, name, None)
    if cls is None:
        raise AttributeError(f"module `{where}` has no `{name}`")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"{spec} is not a subclass of {base.__module__}.{base.__name__}")
    return cls


def load_adapter(spec: str):
    """The adapter class ``spec`` names."""
    return load_class(spec, Adapter)


def error_reply(rid, e):
    """The protocol's reply to a request that raised ``e``."""
    err = {"kind": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
    if isinstance(e, MissingPackage):
        err.update(kind="missing_package", pip=e.pip)
    return {"id": rid, "ok": False, "error": err}


def serve(conn, handle):
    """Answers requests with ``handle(req)`` until stdin closes or ``shutdown`` comes."""
    while True:
        req = conn.recv()
        if req is None or req.get("op") == "shutdown":
            return
        rid = req.get("id")
        try:
            conn.send({"id": rid, "ok": True, "result": handle(req)})
        except Exception as e:  # noqa: BLE001 - every user error goes back to qval
            conn.send(error_reply(rid, e))


def _exit_with_parent():
    """Ends this worker when qval is gone (killed without closing our stdin while a long
    request runs): a daemon thread watching the parent process."""
    import threading
    import time

    parent = os.getppid()

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def protocol_conn():
    """The protocol's connection: the original stdin and stdout, which the user's code
    cannot reach (its stdin reads /dev/null, its prints go to stderr); the worker ends when
    qval does."""
    proto_out = os.fdopen(os.dup(1), "w", buffering=1)
    proto_in = os.fdopen(os.dup(0), "r")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull)
    _exit_with_parent()
    return Conn(proto_in, proto_out)


class Worker:
    def __init__(self, conn, adapter_spec):
        self.conn = conn
        self.adapter_spec = adapter_spec
        self.adapter = None

    def view(self, with_snapshot=True):
        out = {"observation": self.adapter.observe(), "legal": self.adapter.legal_actions()}
        success = self.adapter.succeeded()
        if success is not None:
            out["success"] = bool(success)
        if with_snapshot and self.adapter.purity == "snapshot":
            out["snapshot"] = base64.b64encode(self.adapter.snapshot()).decode()
        return out

    def restore(self, r):
        if r is None:
            return
        a = self.adapter
        if a.purity == "snapshot":
            a.restore(base64.b64decode(r["snapshot"]), r["task"])
        else:
            a.reset(r["task"], ReplayRng(r.get("reset_draws", [])))
            for h in r.get("history", []):
                a.step(h["action"], ReplayRng(h.get("draws", [])))

    def handle(self, req):
        op = req.get("op")
        rid = req.get("id")
        if op == "hello":
            cls = load_adapter(self.adapter_spec)
            self.adapter = cls(**(req.get("args") or {}))
            spec = dict(self.adapter.spec())
            if self.adapter.purity not in ("snapshot", "replay"):
                raise ValueError(f"purity must be 'snapshot' or 'replay', not {self.adapter.purity!r}")
            spec.update(
                protocol=PROTOCOL,
                purity=self.adapter.purity,
                reference=self.adapter.has_reference(),
                exact=self.adapter.has_exact(),
            )
            profile = self.adapter.profile()
            if profile is not None:
                spec["profile"] = profile
            return spec
        if self.adapter is None:
            raise ProtocolError("the first request must be hello")
        a = self.adapter
        if op == "tasks":
            return a.tasks()
        if op == "reset":
            rng = LiveRng(self.conn, rid)
            a.reset(req["task"], rng)
            return self.view()
        if op == "step":
            self.restore(req.get("restore"))
            rng = LiveRng(self.conn, rid)
            reward, terminated = a.step(req["action"], rng)
            out = self.view()
            out.update(reward=float(reward), terminated=bool(terminated))
            return out
        if op == "parse":
            return a.parse_action(req["text"])
        if op == "render":
            return a.render_action(req["action"])
        if op == "reference":
            self.restore(req.get("restore"))
            return a.reference_action()
        if op == "exact":
            self.restore(req.get("restore"))
            return float(a.exact_value(float(req["gamma"]), int(req["horizon"]), req.get("action")))
        raise ProtocolError(f"unknown op {op!r}")

def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m qval_bridge.worker")
    p.add_argument("--adapter", required=True, help="module:Class or path.py:Class")
    args = p.parse_args(argv)
    conn = protocol_conn()
    serve(conn, Worker(conn, args.adapter).handle)


if __name__ == "__main__":
    main()
