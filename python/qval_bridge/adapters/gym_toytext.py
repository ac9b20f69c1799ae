"""gymnasium's Taxi-v3 and CliffWalking-v1 through the qval bridge, with text observations
written for LLM methods and exact values from their transition tables (``env.unwrapped.P``).

Both are deterministic (Taxi without rain, CliffWalking not slippery). The reference policy
is greedy on the optimal values (value iteration with the environment's discount, ties to
the lowest action number); ``exact_value`` evaluates that policy exactly over the remaining
steps. Tasks are start states drawn by gymnasium's ``reset(seed=i)``.

Arguments: ``tasks`` (number of start states, default 8), ``max_steps`` (Taxi 50,
CliffWalking 40), ``gamma`` (0.95). Purity: snapshot (the state number and whether the episode
ended).
"""

from __future__ import annotations

import json

from qval_bridge import Adapter, require


class _ToyText(Adapter):
    purity = "snapshot"
    ENV_ID = ""
    NAME = ""
    ACTIONS: list = []
    MAKE: dict = {}
    DEFAULT_STEPS = 50

    def __init__(self, tasks=8, max_steps=None, gamma=0.95):
        super().__init__()
        gym = require("gymnasium", "gymnasium")
        self.np = require("numpy", "numpy")
        self.env = gym.make(self.ENV_ID, **self.MAKE).unwrapped
        self.n_tasks = int(tasks)
        self.max_steps = int(max_steps or self.DEFAULT_STEPS)
        self.gamma = float(gamma)
        self.done = False
        self._tables = None
        self._policy = None
        self._values = {}

    def spec(self):
        return {
            "name": self.NAME,
            "max_steps": self.max_steps,
            "gamma": self.gamma,
            "reward_description": self.REWARDS,
            "notes": f"{self.INSTRUCTION} Actions: {', '.join(self.ACTIONS)}. The episode ends at the goal or after {self.max_steps} steps.",
        }

    def tasks(self):
        out = []
        for i in range(self.n_tasks):
            s, _ = self.env.reset(seed=i)
            out.append({"id": f"{self.NAME}-{i}", "instruction": self.INSTRUCTION, "params": {"start": int(s)}})
        return out

    def reset(self, task, rng):
        self.env.reset(seed=0)
        self.env.s = int(task["params"]["start"])
        self.done = False

    def step(self, action, rng):
        if self.done:
            return 0.0, True
        if action not in self.ACTIONS:
            return self.INVALID_REWARD, False
        a = self.ACTIONS.index(action)
        outcomes = self.env.P[int(self.env.s)][a]
        if len(outcomes) != 1:
            raise RuntimeError("this adapter expects deterministic transitions")
        _, reward, terminated, _, _ = self.env.step(a)
        self.done = bool(terminated)
        return float(reward), bool(terminated)

    def legal_actions(self):
        return list(self.ACTIONS)

    def parse_action(self, text):
        t = text.strip().strip(".!\"'`*").lower()
        if t in self.ACTIONS:
            return t
        if t.isdigit() and int(t) < len(self.ACTIONS):
            return self.ACTIONS[int(t)]
        return {"invalid": text}

    def render_action(self, action):
        return action if isinstance(action, str) else str(action.get("invalid", action))

    def snapshot(self):
        return json.dumps([int(self.env.s), self.done]).encode()

    def restore(self, data, task):
        s, self.done = json.loads(data)
        self.env.s = s

    # -- exact values from the transition table ------------------------------------------------
    def _build(self):
        if self._tables is not None:
            return self._tables
        np = self.np
        P = self.env.P
        n, m = len(P), len(self.ACTIONS)
        nxt = np.zeros((n, m), dtype=np.int64)
        rew = np.zeros((n, m))
        term = np.zeros((n, m), dtype=bool)
        for s in range(n):
            for a in range(m):
                (_, s2, r, t) = P[s][a][0]
                nxt[s, a], rew[s, a], term[s, a] = s2, r, t
        self._tables = (nxt, rew, term)
        return self._tables

    def _reference(self):
        if self._policy is None:
            np = self.np
            nxt, rew, term = self._build()
            v = np.zeros(nxt.shape[0])
            for _ in range(100_000):
                q = rew + np.where(term, 0.0, self.gamma * v[nxt])
                nv = q.max(axis=1)
                if np.max(np.abs(nv - v)) <= 1e-12:
                    v = nv
                    break
                v = nv
            q = rew + np.where(term, 0.0, self.gamma * v[nxt])
            self._policy = q.argmax(axis=1)
        return self._policy

    def reference_action(self):
        return self.ACTIONS[int(self._reference()[int(self.env.s)])]

    def _v(self, gamma, h):
        key = (gamma, h)
        if key not in self._values:
            np = self.np
            nxt, rew, term = self._build()
            pi = self._reference()
            idx = np.arange(nxt.shape[0])
            v = np.zeros(nxt.shape[0])
            for _ in range(h):
                q = rew + np.where(term, 0.0, gamma * v[nxt])
                v = q[idx, pi]
            self._values[key] = v
        return self._values[key]

    def exact_value(self, gamma, horizon, action=None):
        if horizon <= 0 or self.done:
            return 0.0
        s = int(self.env.s)
        if action is None:
            return float(self._v(gamma, horizon)[s])
        if action not in self.ACTIONS:
            return self.INVALID_REWARD + gamma * (float(self._v(gamma, horizon - 1)[s]) if horizon > 1 else 0.0)
        nxt, rew, term = self._build()
        a = self.ACTIONS.index(action)
        cont = 0.0 if term[s, a] or horizon == 1 else gamma * float(self._v(gamma, horizon - 1)[nxt[s, a]])
        return float(rew[s, a]) + cont


class TaxiAdapter(_ToyText):
    """Taxi-v3: pick the passenger up and drop them at the destination."""

    ENV_ID = "Taxi-v3"
    NAME = "gym-taxi"
    ACTIONS = ["south", "north", "east", "west", "pickup", "dropoff"]
    DEFAULT_STEPS = 50
    INVALID_REWARD = -1.0
    INSTRUCTION = (
        "You drive a taxi on a 5x5 grid with four stands R, G, Y, B. Drive to the passenger, pick them up, "
        "drive to the destination and drop them off. Walls `|` block east-west moves."
    )
    REWARDS = "-1 per step, +20 for dropping the passenger at the destination, -10 for an illegal pickup or dropoff."
    STANDS = ["R", "G", "Y", "B"]

    def succeeded(self):
        # Taxi-v3 ends only with the passenger dropped off at the destination.
        return self.done

    def observe(self):
        row, col, pas, dest = self.env.decode(int(self.env.s))
        locs = self.env.locs
        grid = [bytearray(r) for r in self.env.desc.copy()]
        lines = []
        for r, raw in enumerate(grid):
            line = raw.decode()
            if r == row + 1:
                c = 2 * col + 1
                line = line[:c] + ("T" if pas != 4 else "@") + line[c + 1 :]
            lines.append(line)
        d = f"{self.STANDS[dest]} (row {locs[dest][0]}, column {locs[dest][1]})"
        if pas == 4:
            where = "in the taxi"
        else:
            where = f"waiting at {self.STANDS[pas]} (row {locs[pas][0]}, column {locs[pas][1]})"
        state = "Delivered." if self.done else f"Taxi at row {row}, column {col}. Passenger {where}. Destination {d}."
        return "\n".join(lines) + "\n" + state + " (T: taxi, @: taxi with the passenger)"


class CliffWalkingAdapter(_ToyText):
    """CliffWalking-v1: walk from the bottom-left to the bottom-right along a cliff."""

    ENV_ID = "CliffWalking-v1"
    NAME = "gym-cliffwalking"
    ACTIONS = ["up", "right", "down", "left"]
    DEFAULT_STEPS = 40
    INVALID_REWARD = -1.0
    INSTRUCTION = (
        "Walk on a 4x12 grid from the start S (bottom left) to the goal G (bottom right). The cells C between "
        "them are a cliff: stepping in sends you back to S."
    )
    REWARDS = "-1 per step, -100 for stepping into the cliff (back to the start); the episode ends at the goal."
    GOAL = 47  # row 3, column 11

    def succeeded(self):
        # Every step costs -1, the goal too: success is standing on the goal cell.
        return int(self.env.s) == self.GOAL

    def tasks(self):
        # CliffWalking always starts at the same cell.
        return [{"id": f"{self.NAME}-0", "instruction": self.INSTRUCTION, "params": {"start": 36}}]

    def observe(self):
        pos = int(self.env.s)
        rows = []
        for r in range(4):
            cells = []
            for c in range(12):
                i = r * 12 + c
                if i == pos:
                    cells.append("@")
                elif r == 3 and c == 0:
                    cells.append("S")
                elif r == 3 and c == 11:
                    cells.append("G")
                elif r == 3:
                    cells.append("C")
                else:
                    cells.append(".")
            rows.append(" ".join(cells))
        tail = "Reached the goal." if self.done else f"You (@) are at row {pos // 12}, column {pos % 12}."
        return "\n".join(rows) + "\n" + tail
