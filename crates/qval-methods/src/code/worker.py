# qval sandbox worker: loads one generated `signal_function` and calls it on points.
#
# Protocol (JSON lines): the host sends {"load": code, "params": [...], "allowed": [...],
# "call_limit": seconds, "output_cap": bytes, "nonce": n}, then {"args": [...], "nonce": n}
# per point, with a fresh random nonce each time; the worker answers {"ok": true} /
# {"value": x} / {"error": "...", "timeout": true when the time limit stopped it} carrying
# the nonce of the message it answers.
#
# Channels: replies go to the worker's original stdout, moved here to a fresh descriptor;
# descriptors 1 and 2 (the sample's own output, however it writes it: print, sys.stdout,
# os.write, the real posix module) go to an unlinked file in the private working folder,
# measured and emptied after every call. A sample runs in this process, so it can find the
# reply descriptor; it cannot know the nonce of a call not yet sent, so whatever it writes
# there is skipped by the host and can never become another point's answer.
import builtins, io, json, math, os, signal, sys

_reply_fd = os.dup(1)
_requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
_readline = _requests.readline
_null = os.open("/dev/null", os.O_RDONLY)
os.dup2(_null, 0)
_out_fd = os.open(".qval-output", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.unlink(".qval-output")
os.dup2(_out_fd, 1)
os.dup2(_out_fd, 2)


def failure(e):
    """The reply for an exception: its text, and whether the call's time limit raised it."""
    obj = {"error": f"{type(e).__name__}: {e}"[:500]}
    if isinstance(e, CallTimeout):
        obj["timeout"] = True
    return obj


def reply(nonce, obj):
    obj["nonce"] = nonce
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(_reply_fd, data):]


class CappedSink(io.TextIOBase):
    """Where the sample's prints go: counted, dropped."""

    def __init__(self):
        self.size = 0

    def write(self, s):
        self.size += len(s)
        return len(s)


_sink = CappedSink()


def output_size():
    """Bytes the sample wrote since the last reset: prints plus writes to descriptors 1 and 2."""
    try:
        raw = os.fstat(_out_fd).st_size
    except OSError:
        raw = 0
    return _sink.size + raw


def output_reset():
    _sink.size = 0
    try:
        os.ftruncate(_out_fd, 0)
        os.lseek(_out_fd, 0, os.SEEK_SET)
    except OSError:
        pass


def over_cap(cap):
    """The reason when the sample wrote more than `cap` bytes, else None (and resets)."""
    n = output_size()
    output_reset()
    if n > cap:
        return f"the sample wrote {n} bytes of output, more than the output cap of {cap} bytes"
    return None


class CallTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CallTimeout("the call exceeded its time limit")


BLOCKED = {"open", "exec", "eval", "compile", "input", "breakpoint", "globals", "locals", "vars", "dir", "help",
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
    fn, limit, cap = None, 1.0, 65536
    while True:
        line = _readline()
        if not line:
            return
        msg = json.loads(line)
        nonce = msg.get("nonce")
        if "load" in msg:
            limit = float(msg.get("call_limit", 1.0))
            cap = int(msg.get("output_cap", 65536))
            sys.stdout = sys.stderr = _sink
            output_reset()
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
                too_much = over_cap(cap)
                if too_much:
                    raise ValueError(too_much)
                fn = f
                reply(nonce, {"ok": True})
            except BaseException as e:  # noqa: B902 - report everything, including SystemExit
                output_reset()
                reply(nonce, failure(e))
            continue
        try:
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                v = fn(*msg["args"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            too_much = over_cap(cap)
            # The published contract also allows (value, {component: value}); the
            # components are search-time feedback only.
            if type(v) is tuple:
                if len(v) == 2 and type(v[1]) is dict:
                    v = v[0]
                else:
                    too_much = too_much or "signal_function tuple return must be (float, dict[str, float])"
            if too_much:
                reply(nonce, {"error": too_much})
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                reply(nonce, {"error": f"returned {type(v).__name__}, not a number"})
            elif not math.isfinite(float(v)):
                reply(nonce, {"error": f"returned a non-finite number ({v})"})
            else:
                reply(nonce, {"value": float(v)})
        except BaseException as e:  # noqa: B902
            output_reset()
            reply(nonce, failure(e))


main()
