# qval sandbox worker: loads one generated `signal_function` and calls it on points.
# Protocol (JSON lines): the host sends {"load": code, "params": [...], "allowed": [...],
# "call_limit": seconds, "output_cap": bytes}, then {"args": [...]} per point; the worker
# answers {"ok": true} / {"value": x} / {"error": "..."} on its original stdout.
import builtins, io, json, math, signal, sys

_out = sys.stdout
_readline = sys.stdin.readline


def reply(obj):
    _out.write(json.dumps(obj) + "\n")
    _out.flush()


class CappedSink(io.TextIOBase):
    """Where the sample's prints go: kept up to a cap, the rest dropped."""

    def __init__(self, cap):
        self.cap, self.size = cap, 0

    def write(self, s):
        self.size += len(s)
        return len(s)


class CallTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CallTimeout("the call exceeded its time limit")


BLOCKED = {"open", "exec", "eval", "compile", "input", "breakpoint", "globals", "vars", "help",
           "memoryview", "__loader__", "__spec__", "exit", "quit", "copyright", "credits", "license"}


def restricted_builtins(allowed):
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        root = name.split(".")[0]
        if level != 0 or root not in allowed:
            raise ImportError(f"import of '{name}' is not allowed (allowed: {', '.join(sorted(allowed))})")
        return real_import(name, globals, locals, fromlist, level)

    safe = {k: v for k, v in vars(builtins).items() if k not in BLOCKED}
    safe["__import__"] = guarded_import
    return safe


def main():
    signal.signal(signal.SIGALRM, _alarm)
    fn, limit = None, 1.0
    while True:
        line = _readline()
        if not line:
            return
        msg = json.loads(line)
        if "load" in msg:
            limit = float(msg.get("call_limit", 1.0))
            sys.stdout = sys.stderr = CappedSink(int(msg.get("output_cap", 65536)))
            env = {"__builtins__": restricted_builtins(set(msg["allowed"])), "__name__": "sample"}
            try:
                code = compile(msg["load"], "<sample>", "exec")
                signal.setitimer(signal.ITIMER_REAL, limit)
                try:
                    exec(code, env)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                f = env.get("signal_function")
                if not callable(f):
                    raise ValueError("the code defines no function `signal_function`")
                names = list(f.__code__.co_varnames[: f.__code__.co_argcount])
                if names != msg["params"]:
                    raise ValueError(f"signal_function takes ({', '.join(names)}), expected ({', '.join(msg['params'])})")
                fn = f
                reply({"ok": True})
            except BaseException as e:  # noqa: B902 - report everything, including SystemExit
                reply({"error": f"{type(e).__name__}: {e}"[:500]})
            continue
        try:
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                v = fn(*msg["args"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                reply({"error": f"returned {type(v).__name__}, not a number"})
            elif not math.isfinite(float(v)):
                reply({"error": f"returned a non-finite number ({v})"})
            else:
                reply({"value": float(v)})
        except BaseException as e:  # noqa: B902
            reply({"error": f"{type(e).__name__}: {e}"[:500]})


main()
