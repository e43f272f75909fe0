"""A Hypothesis state machine over a live fleet, with the properties as invariants.

Each rule applies one generated :mod:`harness.chaos.steps` step to a fleet of
real worker processes; after every step the safety properties that can be
judged mid-run (P1 no active connection killed, P3 no duplicate writes so far,
P5 foreign backends untouched) must hold; at teardown the run settles and all
five are judged. Hypothesis shrinks a failure to the shortest sequence of
steps, and each step is noted in words, so the report reads as a story.

The machine needs a :class:`~harness.chaos.env.ChaosEnv` (real PostgreSQL and
proxy servers, shared across examples); :func:`machine_for` makes a machine
class bound to one, optionally with a bug-zoo client.
"""

from __future__ import annotations

import contextlib
import sys
from typing import ClassVar

from hypothesis import note
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from harness.chaos.env import ChaosEnv, LiveRun
from harness.chaos.judge import Judged, PropertyViolation, raise_unless_ok
from harness.chaos.steps import Step
from harness.chaos.strategies import KINDS, steps
from harness.chaos.zoo import Bug
from harness.check import Verdict, check_p1, check_p3, check_p5


class FleetMachine(RuleBasedStateMachine):
    """Steps on a live fleet; P1, P3 and P5 after each; all five at the end."""

    env: ClassVar[ChaosEnv]
    bug: ClassVar[Bug | None] = None

    def __init__(self) -> None:
        super().__init__()
        self._stack = contextlib.ExitStack()
        self.live: LiveRun = self._stack.enter_context(self.env.begin(self.bug))

    @rule(step=steps(KINDS))
    def happen(self, step: Step) -> None:
        note(f"step {len(self.live.steps) + 1}: {step.describe()}")
        self.live.apply(step)

    @invariant()
    def safety_so_far(self) -> None:
        run = self.live.snapshot()
        verdicts: list[Verdict] = [check_p1(run), check_p3(run), check_p5(run)]
        # mid-run, only a failure counts: a property not judgeable yet (too few
        # samples so far) is judged again at the end
        if any(v.failed for v in verdicts):
            raise PropertyViolation(
                Judged(
                    tuple(self.live.steps),
                    self.bug,
                    verdicts,
                    run,
                    self.live.history_path,
                    self.live.notes,
                )
            )

    def teardown(self) -> None:
        try:
            judged = self.live.finish()
            note(judged.narrative())
            raise_unless_ok(judged)
        finally:
            self._stack.__exit__(*sys.exc_info())


def machine_for(env: ChaosEnv, bug: Bug | None = None) -> type[FleetMachine]:
    """A machine class bound to ``env`` (and to ``bug``'s client, if given)."""
    return type("FleetMachine", (FleetMachine,), {"env": env, "bug": bug})
