#!/usr/bin/env python3
"""Regenerates the published FrozenLake maps through gymnasium and prints them as JSON.

    python3 scripts/gen_published_maps.py > crates/qval-envs/data/published_frozenlake_maps.json

The published datasets use 8 random 8x8 maps drawn with map seed 42: map i is gymnasium's
``generate_random_map(size=8, p=0.8, seed=42 + i)``. The test
crates/qval-envs/tests/python_bridge.rs runs this script and compares with the committed file.
Needs gymnasium (pip install gymnasium).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from qval_bridge.adapters.gym_frozenlake import published_maps  # noqa: E402

N, SIZE, P, SEED = 8, 8, 0.8, 42


def main():
    import gymnasium

    doc = {
        "description": "The published FrozenLake maps: map i = gymnasium.envs.toy_text.frozen_lake."
        f"generate_random_map(size={SIZE}, p={P}, seed={SEED} + i), i = 0..{N - 1}",
        "command": "python3 scripts/gen_published_maps.py > crates/qval-envs/data/published_frozenlake_maps.json",
        "gymnasium": gymnasium.__version__,
        "maps": published_maps(N, SIZE, P, SEED),
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
