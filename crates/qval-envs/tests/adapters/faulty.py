"""Small adapters for the bridge tests: a well-behaved walk (snapshot and replay purity) and
faulty ones (raises, hangs, exits, impure, flaky)."""

import os
import time

from qval_bridge import Adapter


class Walk(Adapter):
    """A walk on 0..6: `right` moves 1 or 2 cells (one rng.integers(2) draw), `left` moves 1
    back; reward 1 on reaching 6."""

    purity = "snapshot"

    def __init__(self, **args):
        super().__init__(**args)
        self.pos = 0

    def spec(self):
        return {"name": "walk", "max_steps": 12, "gamma": 0.9, "reward_description": "1 at 6", "notes": ""}

    def tasks(self):
        return [{"id": "walk-0", "instruction": "reach 6", "params": {}}]

    def reset(self, task, rng):
        self.pos = 0

    def step(self, action, rng):
        if self.pos >= 6:
            return 0.0, True
        if action == "right":
            self.pos = min(6, self.pos + 1 + rng.integers(2))
        elif action == "left":
            self.pos = max(0, self.pos - 1)
        return (1.0, True) if self.pos == 6 else (0.0, False)

    def observe(self):
        return f"at {self.pos}"

    def legal_actions(self):
        return ["left", "right"]

    def parse_action(self, text):
        return text.strip()

    def render_action(self, action):
        return str(action)

    def snapshot(self):
        return str(self.pos).encode()

    def restore(self, data, task):
        self.pos = int(data)

    def reference_action(self):
        return "right"


class ReplayWalk(Walk):
    """The same walk, restored by replay."""

    purity = "replay"


class Raises(Walk):
    def step(self, action, rng):
        raise ValueError("the adapter broke on purpose")


class Hangs(Walk):
    def step(self, action, rng):
        time.sleep(3600)


class Exits(Walk):
    def step(self, action, rng):
        print("about to exit", flush=True)
        os._exit(3)


class Impure(Walk):
    """Its reward depends on how many steps the process has made: not a function of the state."""

    calls = 0

    def step(self, action, rng):
        Impure.calls += 1
        super().step(action, rng)
        return float(Impure.calls), False


class Flaky(Walk):
    """Exits on its first step in a process if the marker file does not exist yet (creating
    it): the retry on a fresh worker succeeds."""

    def step(self, action, rng):
        marker = self.args.get("marker")
        if marker and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(7)
        return super().step(action, rng)


class NeedsMissing(Walk):
    def __init__(self, **args):
        from qval_bridge import require

        require("qval_no_such_module_xyz", "qval-no-such-package==1.0")
        super().__init__(**args)


class BreaksOnLeft(Walk):
    """The walk, but `left` raises from cell 2 and hangs from cell 4 (the reference never goes
    left, so only points whose own action is `left` there are hit)."""

    def step(self, action, rng):
        if action == "left" and self.pos == 2:
            raise RuntimeError("left from 2 broke on purpose")
        if action == "left" and self.pos == 4:
            time.sleep(3600)
        return super().step(action, rng)


class BadReference(Walk):
    """The walk, but its reference policy raises."""

    def reference_action(self):
        raise KeyError("no reference here")


class Profiled(Walk):
    """The walk with its own profile: a heading of the scoring family and goal texts."""

    def profile(self):
        return {
            "scoring": {"response_heading": "**What The Walk Did:**"},
            "goal_texts": {"baseline": "a line of cells", "negatives": ["at the start"]},
        }


class BadProfile(Walk):
    """The walk, but its profile misspells a field."""

    def profile(self):
        return {"scoring": {"student_openin": "x"}}
