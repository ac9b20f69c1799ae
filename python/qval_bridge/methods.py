"""Methods written in Python: subclass :class:`Method` and name it in an experiment file.

.. code-block:: toml

    [[methods]]
    type = "python"
    module = "my_scorers:Brevity"     # module:Class or path/to/file.py:Class
    params = { weight = 2.0 }         # keyword arguments of the constructor

qval starts long-lived workers (``python -m qval_bridge.method_worker --method SPEC``), sends
them batches of evaluation points in qval's point format (the dicts of ``points.jsonl``:
``id``, ``task`` {``id``, ``instruction``, ``params``}, ``history`` [{``observation``,
``action``, ``reward``}], ``state``, ``observation`` {``text``, ``image``?}, ``action``,
``action_text``, ``reward``, ``next_state``, ``next_observation``, ``terminated``,
``candidate_of``?) plus ``seed``: a per-point seed derived from the experiment's, so a
random method gives the same scores whatever the batching. ``context`` is what every method
is told about the setting (``signal``: ``q``, ``v``, ``advantage``, ``potential`` or
``shaped-reward``; ``env_name``, ``reward_description``, ``notes``, ``gamma``, ``max_steps``,
...).

A score is a number; ``None`` or NaN means "cannot score this point" (qval records NaN with
the reason). An exception fails only the points that raise it: qval's worker scores the
points of a failing batch one by one, and each failing point gets NaN with the traceback.
"""

from __future__ import annotations

import math


class Method:
    """Base class of a qval method written in Python.

    Override :meth:`score` (one point) or :meth:`score_batch` (many at once: one forward
    pass of a model). A ranking method sets ``ranks = True`` and overrides :meth:`rank`,
    which gets the candidates of one state together (the experiment entry says
    ``ranking = true``).
    """

    #: Whether :meth:`rank` scores a state's candidates as a group.
    ranks = False

    def __init__(self, seed: int = 0, **params):
        #: The experiment's seed (or the entry's ``seed``).
        self.seed = seed
        #: The entry's ``params``.
        self.params = params

    def score(self, point: dict, context: dict) -> float | None:
        """The score of one point."""
        raise NotImplementedError("override score() or score_batch()")

    def score_batch(self, points: list, context: dict) -> list:
        """The scores of several points, in order. Default: :meth:`score` on each."""
        return [self.score(p, context) for p in points]

    def rank(self, candidates: list, context: dict) -> list:
        """The scores of one state's candidates, higher is better. Default: :meth:`score_batch`."""
        return self.score_batch(candidates, context)


def as_score(v):
    """A score as the protocol sends it: a float, or None with the reason."""
    if v is None:
        return None, "returned None"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None, f"returned {type(v).__name__} {v!r:.80}, not a number"
    if math.isnan(x) or math.isinf(x):
        return None, f"returned {x}"
    return x, None
