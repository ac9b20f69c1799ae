"""The FrozenLake distance heuristic written in Python (numpy only): minus the shortest-path
distance to the goal around the holes, of the next state for Q and of the state for V. It
ranks points exactly as qval's built-in `heuristic` does, so both give the same rho."""

from collections import deque

import numpy as np

from qval_bridge.methods import Method


def distances_to_goal(rows):
    grid = np.array([list(r) for r in rows])
    h, w = grid.shape
    dist = np.full(h * w, -1, dtype=np.int64)
    goal = int(np.flatnonzero(grid.ravel() == "G")[0])
    dist[goal] = 0
    queue = deque([goal])
    while queue:
        cell = queue.popleft()
        r, c = divmod(cell, w)
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            n = nr * w + nc
            if 0 <= nr < h and 0 <= nc < w and grid[nr, nc] != "H" and dist[n] < 0:
                dist[n] = dist[cell] + 1
                queue.append(n)
    return dist


class Distance(Method):
    def __init__(self, seed=0, **params):
        super().__init__(seed, **params)
        self.cache = {}

    def value(self, state):
        key = tuple(state["map"])
        if key not in self.cache:
            self.cache[key] = distances_to_goal(state["map"])
        d = self.cache[key][state["pos"]]
        return -float(d) if d >= 0 else -float(len(key) * len(key[0])) - 1.0

    def score(self, point, context):
        # Q scores where the action led; V (and potentials) the state itself.
        return self.value(point["next_state"] if context["signal"] in ("q", "advantage") else point["state"])

    def score_batch(self, points, context):
        # One array for the batch, as a model's forward pass returns it.
        return np.array([self.score(p, context) for p in points])
