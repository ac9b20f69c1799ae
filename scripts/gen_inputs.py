"""Deterministic test inputs shared with Rust (crates/qval-metrics/tests/common/inputs.rs).

Every value is produced by SplitMix64 and IEEE-exact float operations (+, *, floor), so
Python and Rust build bit-identical arrays from (kind, n, seed) and the fixture files only
need to store the expected statistics.
"""
import math

MASK = (1 << 64) - 1
SCALE = 2.0 ** -53


def uniforms(seed, n):
    s = seed & MASK
    out = [0.0] * n
    for i in range(n):
        s = (s + 0x9E3779B97F4A7C15) & MASK
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        out[i] = (z >> 11) * SCALE
    return out


KINDS = ["cont", "cont_weak", "cont_neg", "ties", "ties_x", "nan", "const", "perfect", "binary"]


def make(kind, n, seed):
    """Returns (x, y), possibly with NaN, for one of KINDS."""
    u1 = uniforms(seed * 8 + 1, n)
    u2 = uniforms(seed * 8 + 2, n)
    if kind == "cont":
        return u1, [a * 0.8 + b for a, b in zip(u1, u2)]
    if kind == "cont_weak":
        return u1, [a * 0.05 + b for a, b in zip(u1, u2)]
    if kind == "cont_neg":
        return u1, [b - a * 0.5 for a, b in zip(u1, u2)]
    if kind == "ties":
        return [math.floor(a * 5.0) for a in u1], [math.floor((a + b) * 3.0) for a, b in zip(u1, u2)]
    if kind == "ties_x":
        return [math.floor(a * 50.0) for a in u1], [a + b for a, b in zip(u1, u2)]
    if kind == "nan":
        u3 = uniforms(seed * 8 + 3, n)
        u4 = uniforms(seed * 8 + 4, n)
        x = [a if c >= 0.2 else math.nan for a, c in zip(u1, u3)]
        y = [a * 0.3 + b if d >= 0.1 else math.nan for a, b, d in zip(u1, u2, u4)]
        return x, y
    if kind == "const":
        return [1.5] * n, u2
    if kind == "perfect":
        return u1, [a * 2.0 + 1.0 for a in u1]
    if kind == "binary":
        return [math.floor(a * 2.0) for a in u1], [math.floor((a + b) * 1.5) for a, b in zip(u1, u2)]
    raise ValueError(kind)


def drop_nan(x, y):
    pairs = [(a, b) for a, b in zip(x, y) if not (math.isnan(a) or math.isnan(b))]
    return [a for a, _ in pairs], [b for _, b in pairs]
