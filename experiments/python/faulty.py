"""A faulty Python method for qval's tests: it raises on the points named in `raise_on`,
hangs on those in `hang_on`, and otherwise scores the length of the next observation's text
(after `delay` seconds, naming each point it scores in the file `$FAULTY_LOG` if set)."""

import os
import time

from qval_bridge.methods import Method


class Faulty(Method):
    def score(self, point, context):
        if point["id"] in self.params.get("raise_on", []):
            raise ValueError(f"cannot score {point['id']}")
        if point["id"] in self.params.get("hang_on", []):
            time.sleep(3600)
        time.sleep(self.params.get("delay", 0.0))
        log = os.environ.get("FAULTY_LOG")
        if log:
            with open(log, "a") as f:
                f.write(point["id"] + "\n")
        return float(len(point["next_observation"]["text"]))
