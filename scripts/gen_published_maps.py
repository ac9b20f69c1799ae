#!/usr/bin/env python3
"""Regenerates the published FrozenLake maps through gymnasium and prints them as JSON.

    python3 scripts/gen_published_maps.py > crates/qval-envs/data/published_frozenlake_maps.json

The published datasets use 8 random 8x8 maps drawn with map seed 42 (``num_maps: 8,
map_seed: 42`` in the published environment configs), and task t plays map t % 8. The code of
the published environment package that draws them is not public. The rule below is inferred,
and it is the only one of the candidates tried that reproduces the published ground truth:
the 8 map seeds are ``numpy.random.RandomState(42).randint(0, 2**31 - 1, size=8)`` and map i is
gymnasium's ``generate_random_map(size=8, p=0.8, seed=seeds[i])``. With these maps the 239
published ranking points (the four actions' Q values in
``GT_200pt_8x8_scripted/gt/ranking_gt_qv_mc_max_*.json``), in collection order and at most 5 per
trajectory, are all cells of the maps their trajectories' tasks play; with
``generate_random_map(seed=42 + i)`` only 147 fit (see crates/qval-envs/tests/published_maps.rs).

crates/qval-envs/tests/python_bridge.rs runs this script and compares with the committed file.
Needs gymnasium and numpy (pip install gymnasium==1.2.0).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from qval_bridge.adapters.gym_frozenlake import published_maps  # noqa: E402

N, SIZE, P, SEED, TASKS = 8, 8, 0.8, 42, 50


def main():
    import random

    import gymnasium

    task_order = list(range(TASKS))
    random.Random(SEED).shuffle(task_order)
    doc = {
        "description": f"The published FrozenLake maps: seeds = numpy.random.RandomState({SEED})."
        f"randint(0, 2**31 - 1, size={N}); map i = gymnasium.envs.toy_text.frozen_lake."
        f"generate_random_map(size={SIZE}, p={P}, seed=seeds[i]); task t plays map t % {N}",
        "command": "python3 scripts/gen_published_maps.py > crates/qval-envs/data/published_frozenlake_maps.json",
        "gymnasium": gymnasium.__version__,
        "maps": published_maps(N, SIZE, P, SEED),
        # The published collection played task indices 0..49 in this order (QVal's
        # resolve_task_indices: random.Random(42).shuffle), task t on map t % 8.
        "task_order": task_order,
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
