"""gymnasium's FrozenLake-v1 through the qval bridge, with the semantics of qval's native
FrozenLake (crates/qval-envs/src/frozenlake): the same tasks, observations, action texts and
JSON actions, the same wasted turn on unparseable text, and the same reference policy and
exact values, so the two can be compared transition by transition.

Transitions are gymnasium's own ``FrozenLakeEnv.step`` on the task's map; on slippery ice
its three outcomes are equally likely, and the outcome index is drawn with one
``rng.integers(3)`` (qval's generator), exactly the draw the native environment makes.

Arguments (``args`` in the experiment file):

=============== ============================================================ ==========
argument        meaning                                                      default
=============== ============================================================ ==========
maps            ``"published"`` (the 8 published 8x8 maps, committed in       published
                crates/qval-envs/data), ``"preset-4x4"``/``"preset-8x8"``,
                or a list of maps, each a list of rows of S F H G
slippery        slippery ice                                                 false
max_steps       the step budget                                              30
gamma           the discount                                                 0.95
=============== ============================================================ ==========

Purity: snapshot (the agent's cell and the last turn's error).
"""

from __future__ import annotations

import json
import os
from collections import deque

from qval_bridge import Adapter, require

MOVES = ["left", "down", "right", "up"]
INSTRUCTION = (
    "Navigate the frozen lake from the start S to the goal G without falling into a hole. "
    "Tiles: S start (safe), F frozen (safe), H hole (falling in ends the episode), G goal; @ marks your position. "
    "Actions: left, down, right, up. Moving off the edge leaves you in place."
)
DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "crates", "qval-envs", "data")
PUBLISHED = os.path.join(DATA, "published_frozenlake_maps.json")
# The published task and reward descriptions of FrozenLake 8x8 (text observations), given to
# methods on the published maps, as the native environment does.
PUBLISHED_TASK = (
    "The agent navigates a frozen lake grid (8x8) from start (S) to goal (G) without falling into holes (H). "
    "Each trajectory uses a different randomly generated 8x8 map. The agent sees an ASCII grid with its position marked as '@'. "
    "Actions: left, down, right, up. Moving off the grid keeps the agent in place. "
    "The episode ends when the agent reaches the goal, falls into a hole, or the step limit is reached."
)
PUBLISHED_REWARD = "Sparse outcome-based reward: 1.0 for reaching the goal (G), 0.0 otherwise."
# How the scoring family's prompts (sdpo, sdpo-gt, delta-belief) name FrozenLake's grid, moves
# and expert evidence: the native environment's wording (qval_envs::frozenlake::scoring_wording,
# checked equal in crates/qval-envs/tests/python_bridge.rs), given to qval by profile().
SCORING_WORDING = {
    "student_opening": (
        "Choose the next FrozenLake move for the following decision point. Use the current grid, the "
        "agent position marked '@', the goal (G), holes (H), and the available moves: left, down, "
        "right, up."
    ),
    "student_closing": (
        "Respond with exactly one valid FrozenLake move from: left, down, right, up. Prefer moves "
        "that keep the agent on safe frozen tiles, make progress toward the goal, avoid holes, and "
        "avoid wasting the limited step budget. The assistant continuation being scored is that move "
        "itself."
    ),
    "teacher_opening": (
        "Choose again from the same FrozenLake grid position after seeing the immediate environment "
        "response produced by one candidate move."
    ),
    "teacher_closing": (
        "Use this one-turn response only as evidence about the candidate move's quality in the "
        "current FrozenLake state: whether it kept the agent on safe ice, avoided holes, moved closer "
        "to the goal along a viable path, avoided off-grid no-ops or backtracking, preserved future "
        "safe moves, and used the remaining step budget efficiently. If the response shows the agent "
        "reached the goal, heavily reward the move; if it shows the agent fell into a hole or entered "
        "a dead-end region, heavily penalize it. Do not reward a move merely because the response "
        "makes the move easy to reconstruct. The assistant continuation being scored is the original "
        "candidate move itself, so do not rewrite or replace it here."
    ),
    "expert_opening": (
        "Choose again from the same FrozenLake grid position after seeing the immediate environment "
        "response produced by one candidate move, the next expert move from the resulting grid state, "
        "and a structured outcome summary from the stored expert rollout."
    ),
    "expert_closing": (
        "Use the immediate grid response, next expert move, and structured rollout summary to judge "
        "the original candidate move from the current FrozenLake grid state. Prefer moves that keep "
        "the agent on safe ice, avoid holes and off-grid no-ops, reduce expert distance to the goal, "
        "preserve future safe moves, and use the remaining step budget efficiently. Treat a short "
        "successful stored expert rollout as strong positive evidence; treat no observed success as "
        "weaker evidence, not proof that the state is unsolvable. Do not reward a move merely because "
        "the response or next expert move makes it easy to reconstruct. The assistant continuation "
        "being scored is the original candidate move itself, so do not rewrite or replace it."
    ),
    "response_heading": "**Immediate FrozenLake Response After The Candidate Move:**",
    "expert_heading": "**Expert Rollout Evidence After The Candidate Move:**",
    "sdpo_guidance": (
        "For FrozenLake, this SDPO signal is per-turn: the teacher may use only the immediate grid "
        "response after the candidate move. Treat that response as evidence about sparse "
        "goal-reaching progress, hole avoidance, shortest safe path progress, off-grid no-ops, "
        "backtracking, terminal success or failure, and the remaining step budget from the resulting "
        "grid state."
    ),
    "gt_guidance": (
        "For FrozenLake, this SDPO variant is an oracle-teacher ablation: the teacher may use the "
        "immediate grid response after the candidate move, the next expert move from the resulting "
        "grid state, and a structured stored rollout summary. Treat that evidence as information "
        "about goal-reaching progress, hole avoidance, off-grid no-ops, backtracking, remaining safe "
        "path distance to the goal, and terminal success or failure."
    ),
    "expert": {
        "state": "FrozenLake grid state",
        "unit": "expert move",
        "candidate": "candidate move",
        "next": "Best next expert move after candidate result",
        "reached": "Stored expert rollout reached goal",
        "steps": "Expert moves from candidate result to success",
        "observed": "Expert moves from candidate result observed",
        "remaining_success": "expert move(s) to goal",
        "remaining_missing": "goal was not observed in the stored expert rollout",
        "reward": "Final observed environment reward",
    },
}


def published_maps(n: int = 8, size: int = 8, p: float = 0.8, seed: int = 42) -> list[list[str]]:
    """The published FrozenLake maps: ``n`` map seeds drawn by
    ``numpy.random.RandomState(seed).randint(0, 2**31 - 1, size=n)``, and map ``i`` is
    gymnasium's ``generate_random_map(size, p, seed=seeds[i])``; task ``t`` plays map ``t % n``.

    The drawing code of the published environment package is not public; this rule is the one
    that reproduces every published ground-truth ranking value (see
    scripts/gen_published_maps.py and crates/qval-envs/tests/published_maps.rs)."""
    require("gymnasium", "gymnasium")
    import numpy as np
    from gymnasium.envs.toy_text.frozen_lake import generate_random_map

    seeds = np.random.RandomState(seed).randint(0, 2**31 - 1, size=n)
    return [list(generate_random_map(size=size, p=p, seed=int(s))) for s in seeds]


class _Draw:
    """A stand-in for gymnasium's ``np_random`` that makes ``categorical_sample`` return a
    chosen index of equally likely outcomes."""

    def __init__(self, index: int, n: int):
        self.value = (index + 0.5) / n

    def random(self):
        return self.value


class FrozenLakeAdapter(Adapter):
    purity = "snapshot"

    def __init__(self, maps="published", slippery=False, max_steps=30, gamma=0.95):
        super().__init__()
        self.gym = require("gymnasium", "gymnasium")
        self.published = maps == "published"
        if maps == "published":
            with open(PUBLISHED) as f:
                maps = json.load(f)["maps"]
        elif maps in ("preset-4x4", "preset-8x8"):
            from gymnasium.envs.toy_text.frozen_lake import MAPS

            maps = [MAPS[maps.split("-")[1]]]
        if not isinstance(maps, list) or not maps:
            raise ValueError("`maps`: give \"published\", \"preset-4x4\", \"preset-8x8\" or a list of maps")
        self.maps = [[str(r) for r in m] for m in maps]
        self.slippery = bool(slippery)
        self.max_steps = int(max_steps)
        self.gamma = float(gamma)
        self.envs = {}
        self.env = None
        self.error = None
        self.solved = {}

    # -- the environment ------------------------------------------------------------------
    def spec(self):
        r, c = len(self.maps[0]), len(self.maps[0][0])
        same = all(len(m) == r and len(m[0]) == c for m in self.maps)
        slip = "-slippery" if self.slippery else ""
        name = f"gym-frozenlake-{r}x{c}{slip}" if same else f"gym-frozenlake{slip}"
        moves = (
            "The ice is slippery: a move goes in the intended direction or one of the two perpendicular ones, each with probability 1/3."
            if self.slippery
            else "Moves are deterministic."
        )
        if self.published and not self.slippery:
            reward, notes = PUBLISHED_REWARD, PUBLISHED_TASK
        else:
            reward = "Reward 1.0 for reaching the goal G; 0 for every other step, including falling into a hole."
            notes = f"{INSTRUCTION} {moves} The episode ends at the goal, in a hole, or after {self.max_steps} steps."
        return {
            "name": name,
            "max_steps": self.max_steps,
            "gamma": self.gamma,
            "reward_description": reward,
            "notes": notes,
        }

    def profile(self):
        # The scoring family's wording; no goal texts (the native environment's embedding
        # texts are not offered through the bridge).
        return {"scoring": SCORING_WORDING}

    def tasks(self):
        spec = self.spec()
        # On the published maps the task is the published description, as the notes are.
        instruction = INSTRUCTION if INSTRUCTION in spec["notes"] else spec["notes"]
        name = spec["name"]
        return [{"id": f"{name}-map{i}", "instruction": instruction, "params": {"map": m}} for i, m in enumerate(self.maps)]

    def _env_for(self, rows):
        key = tuple(rows)
        env = self.envs.get(key)
        if env is None:
            env = self.gym.make("FrozenLake-v1", desc=list(rows), is_slippery=self.slippery).unwrapped
            env.reset(seed=0)
            self.envs[key] = env
        return env

    def reset(self, task, rng):
        self.env = self._env_for(task["params"]["map"])
        self.env.reset(seed=0)
        self.error = None

    def step(self, action, rng):
        env = self.env
        s = int(env.s)
        a = MOVES.index(action) if isinstance(action, str) and action in MOVES else None
        row, col = divmod(s, env.ncol)
        if env.desc[row][col] in b"GH":
            self.error = None
            return 0.0, True
        if a is None:
            text = action.get("invalid", "") if isinstance(action, dict) else str(action)
            self.error = (
                f"could not parse the action {json.dumps(text, ensure_ascii=False)}; "
                "answer one of: left, down, right, up. The turn was wasted."
            )
            return 0.0, False
        self.error = None
        outcomes = env.P[s][a]
        if len(outcomes) > 1:
            env.np_random = _Draw(rng.integers(len(outcomes)), len(outcomes))
        _, reward, terminated, _, _ = env.step(a)
        return float(reward), bool(terminated)

    def observe(self):
        env = self.env
        pos = int(env.s)
        lines = []
        if self.error:
            lines.append("Error: " + self.error)
        for r in range(env.nrow):
            lines.append(
                " ".join("@" if r * env.ncol + c == pos else env.desc[r][c].decode() for c in range(env.ncol))
            )
        return "\n".join(lines)

    def legal_actions(self):
        return list(MOVES)

    def parse_action(self, text):
        t = text.strip()
        i, j = 0, len(t)
        while i < j and not t[i].isalnum():
            i += 1
        while j > i and not t[j - 1].isalnum():
            j -= 1
        t = t[i:j].lower()
        table = {"left": 0, "0": 0, "down": 1, "1": 1, "right": 2, "2": 2, "up": 3, "3": 3}
        if t in table:
            return MOVES[table[t]]
        return {"invalid": text}

    def render_action(self, action):
        if isinstance(action, str) and action in MOVES:
            return action
        if isinstance(action, dict) and "invalid" in action:
            return str(action["invalid"])
        return str(action)

    def snapshot(self):
        return json.dumps([int(self.env.s), self.error]).encode()

    def restore(self, data, task):
        self.env = self._env_for(task["params"]["map"])
        s, self.error = json.loads(data)
        self.env.s = s

    # -- the reference policy and exact values (as qval's native solver) ---------------------
    def _solve(self):
        env = self.env
        key = tuple("".join(x.decode() for x in r) for r in env.desc)
        if key in self.solved:
            return self.solved[key]
        n = env.nrow * env.ncol
        tile = lambda c: env.desc[c // env.ncol][c % env.ncol].decode()  # noqa: E731
        terminal = [tile(c) in "GH" for c in range(n)]

        def move(cell, d):
            r, c = divmod(cell, env.ncol)
            if d == 0:
                c = max(c - 1, 0)
            elif d == 1:
                r = min(r + 1, env.nrow - 1)
            elif d == 2:
                c = min(c + 1, env.ncol - 1)
            else:
                r = max(r - 1, 0)
            return r * env.ncol + c

        def backup(v, cell, a, gamma):
            return sum(p * (r + (0.0 if t else gamma * v[s2])) for p, s2, r, t in env.P[cell][a])

        # Optimal values to the fixed point, with the environment's discount.
        v = [0.0] * n
        for _ in range(1_000_000):
            nv = [0.0] * n
            delta = 0.0
            q = [[0.0] * 4 for _ in range(n)]
            for cell in range(n):
                if terminal[cell]:
                    continue
                q[cell] = [backup(v, cell, a, self.gamma) for a in range(4)]
                nv[cell] = max(q[cell])
                delta = max(delta, abs(nv[cell] - v[cell]))
            v = nv
            if delta <= 1e-15:
                break
        # Deterministic distances to the goal.
        dist = [None] * n
        queue = deque(c for c in range(n) if tile(c) == "G")
        for c in queue:
            dist[c] = 0
        while queue:
            cell = queue.popleft()
            for p in range(n):
                if dist[p] is None and not terminal[p] and any(move(p, d) == cell for d in range(4)):
                    dist[p] = dist[cell] + 1
                    queue.append(p)
        policy = []
        for cell in range(n):
            best = max(q[cell])
            tol = 1e-12 * max(abs(best), 1.0)
            choice, choice_key = 2, None
            for a in (2, 1, 0, 3):
                if q[cell][a] < best - tol:
                    continue
                nxt = move(cell, a)
                d = dist[nxt] if dist[nxt] is not None else (1 << 62)
                k = d + 1 if nxt == cell else d
                if choice_key is None or k < choice_key:
                    choice, choice_key = a, k
            policy.append(choice)
        self.solved[key] = (policy, terminal, backup)
        return self.solved[key]

    def reference_action(self):
        policy, _, _ = self._solve()
        return MOVES[policy[int(self.env.s)]]

    def _values(self, gamma, h):
        policy, terminal, backup = self._solve()
        n = len(policy)
        v = [0.0] * n
        q = [[0.0] * 4 for _ in range(n)]
        for _ in range(h):
            nv = [0.0] * n
            for cell in range(n):
                if terminal[cell]:
                    continue
                q[cell] = [backup(v, cell, a, gamma) for a in range(4)]
                nv[cell] = q[cell][policy[cell]]
            v = nv
        return v, q

    def exact_value(self, gamma, horizon, action=None):
        _, terminal, _ = self._solve()
        pos = int(self.env.s)
        if horizon <= 0 or terminal[pos]:
            return 0.0
        if action is None:
            return self._values(gamma, horizon)[0][pos]
        if isinstance(action, str) and action in MOVES:
            return self._values(gamma, horizon)[1][pos][MOVES.index(action)]
        return gamma * (self._values(gamma, horizon - 1)[0][pos] if horizon > 1 else 0.0)
