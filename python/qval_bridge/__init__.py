"""qval_bridge: plug a Python environment into qval.

An environment reaches qval through an *adapter*: a subclass of :class:`Adapter` in a short
file. qval starts long-lived worker processes (``python -m qval_bridge.worker --adapter
SPEC``) and talks to them over stdin/stdout, one JSON object per line.

Writing an adapter
------------------
Subclass :class:`Adapter` and implement

* ``spec()``: ``{"name", "max_steps", "gamma", "reward_description", "notes"}``;
* ``tasks()``: a list of ``{"id", "instruction", "params"}``;
* ``reset(task, rng)``: put the environment in the task's initial state;
* ``step(action, rng) -> (reward, terminated)``: advance the environment held by the adapter;
* ``observe() -> str``: what an agent sees now;
* ``legal_actions() -> list | None``: the closed action set now (``None``: open);
* ``parse_action(text)`` / ``render_action(action)``: text <-> action (any JSON value).
  ``parse_action`` never fails: unparseable text is an action that wastes the turn.

and declare how qval restores a state (``purity``):

* ``"snapshot"``: implement ``snapshot() -> bytes`` and ``restore(data, task)`` (put the
  environment of ``task`` in the snapshotted state). qval keeps the
  bytes in its state (content-addressed by sha256, stored once per process);
* ``"replay"``: qval's state is the task, the action history and every random draw; qval
  restores it by ``reset`` then replaying the history (slower, for environments that cannot
  snapshot).

Optional: ``reference_action()`` (an oracle policy) and ``exact_value(gamma, horizon,
action)``; both must leave the environment's state as it was (the reference policy's expected discounted return with ``horizon`` steps left,
after forcing ``action`` if given), enabling qval's ``reference`` policy and ``exact`` labels.
``succeeded() -> bool | None``: whether the episode has reached its goal in the current state
(CliffWalking: the goal cell; TextWorld: won); qval counts a trajectory as succeeded by its
last state's answer. The default, ``None``, leaves it to qval's rule: the last step ended
the episode with a positive reward.
``profile() -> dict | None``: what the environment tells qval's methods about itself
(``qval_core::EnvProfile`` as JSON, every field optional): ``{"scoring": {...}}`` the
wording of the scoring family's prompts (``student_opening``, ``response_heading``,
``expert``: {...}, ...), ``goal_texts`` / ``image_goal_texts`` (``{"goal", "baseline",
"negatives"}``) for the embedding family, ``min_chars`` (``{"history", "current",
"next"}``) for prompt budgets. The default, ``None``, is the generic profile.

Randomness comes only from the ``rng`` argument (qval's seeded generator, reached over the
protocol): ``rng.integers(n)`` (uniform in ``[0, n)``) and ``rng.random()`` (uniform in
``[0, 1)``). That keeps ``step`` a pure function of (state, action, generator), which
qval's ``check_environment`` verifies.

A missing Python package: raise :class:`MissingPackage` (or call :func:`require`) so that
qval's error names the pip command.

The protocol
------------
qval writes a request ``{"id": N, "op": OP, ...}``; the worker answers with one final line
``{"id": N, "ok": true, "result": ...}`` or ``{"id": N, "ok": false, "error": {"kind",
"message", "traceback", "pip"?}}``. While serving a request it may ask for random draws:
``{"id": N, "rng": "int", "n": K}`` or ``{"id": N, "rng": "float"}``, answered by
``{"id": N, "value": X}``. Ops:

=========== ======================================= =============================================
op          request fields                          result
=========== ======================================= =============================================
hello       adapter, args (dict)                    protocol (1), spec fields, purity,
                                                    reference (bool), exact (bool), profile?
tasks                                               [task]
reset       task                                    {observation, legal, success?, snapshot?}
step        restore (or null), action               {observation, legal, success?, reward,
                                                    terminated, snapshot?}
parse       text                                    action
render      action                                  text
reference   restore (or null)                       action
exact       restore (or null), gamma, horizon,      value
            action (or null)
=========== ======================================= =============================================

``restore`` is ``{"task", "snapshot": base64}`` (snapshot purity) or ``{"task",
"reset_draws", "history": [{"action", "draws"}]}`` (replay purity); draws are ``{"i": k}`` or
``{"f": x}``. ``null`` means: the state the worker holds after its last reset or step.
"""

from __future__ import annotations

import importlib


PROTOCOL = 1


class MissingPackage(RuntimeError):
    """A Python package the adapter needs is not installed."""

    def __init__(self, module: str, pip: str):
        super().__init__(f"the Python module `{module}` is not installed")
        self.module = module
        self.pip = pip


def require(module: str, pip: str | None = None):
    """Imports ``module`` or raises :class:`MissingPackage` naming ``pip install PIP``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingPackage(module, f"pip install {pip or module}") from e


class Adapter:
    """Base class of a qval environment adapter. See the module docs."""

    #: "snapshot" or "replay".
    purity = "snapshot"

    def __init__(self, **args):
        self.args = args

    # Required.
    def spec(self) -> dict:
        raise NotImplementedError

    def tasks(self) -> list:
        raise NotImplementedError

    def reset(self, task: dict, rng) -> None:
        raise NotImplementedError

    def step(self, action, rng):
        raise NotImplementedError

    def observe(self) -> str:
        raise NotImplementedError

    def legal_actions(self):
        return None

    def parse_action(self, text: str):
        return text

    def render_action(self, action) -> str:
        return str(action)

    # Snapshot purity.
    def snapshot(self) -> bytes:
        raise NotImplementedError("purity = 'snapshot' needs snapshot() and restore()")

    def restore(self, data: bytes, task: dict) -> None:
        raise NotImplementedError("purity = 'snapshot' needs snapshot() and restore()")

    # Optional.
    def reference_action(self):
        raise NotImplementedError("this adapter has no reference policy")

    def exact_value(self, gamma: float, horizon: int, action=None) -> float:
        raise NotImplementedError("this adapter has no exact values")

    def succeeded(self):
        """Whether the episode has reached its goal now; ``None``: qval's default rule."""
        return None

    def profile(self):
        """What the environment tells qval's methods about itself; ``None``: the generic profile."""
        return None

    def has_reference(self) -> bool:
        return type(self).reference_action is not Adapter.reference_action

    def has_exact(self) -> bool:
        return type(self).exact_value is not Adapter.exact_value


def sample_index(probs, rng) -> int:
    """Draws an outcome index from ``probs`` with qval's generator: equal probabilities use
    one integer draw (``rng.integers(len)``), others one float draw against the cumulative
    sum."""
    n = len(probs)
    if n == 1:
        return 0
    if all(p == probs[0] for p in probs):
        return rng.integers(n)
    u = rng.random()
    acc = 0.0
    for i, p in enumerate(probs):
        acc += p
        if u < acc:
            return i
    return n - 1
