"""A judged schedule: the verdicts on one run, its story in words, and the failure
Hypothesis shrinks.

:class:`Judged` holds the verdicts and the narrative; :class:`PropertyViolation`
is what a property test raises when a property *failed*, so Hypothesis shrinks
to a minimal schedule and prints it in words. A run whose verdicts include an
``unknown`` and no failure is not a violation: :class:`Unjudged` says so, and
it is never reported as the client's failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.chaos.steps import Step, described_runs, numbered
from harness.chaos.zoo import CORRECT, Bug
from harness.check import Run, Status, Verdict, render_verdict, worst


@dataclass
class Judged:
    """One schedule's run and the properties' verdicts on it."""

    schedule: tuple[Step, ...]
    bug: Bug | None
    verdicts: list[Verdict]
    run: Run
    history_path: Path
    notes: list[str]

    @property
    def status(self) -> Status:
        return worst(self.verdicts)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> list[str]:
        """The properties that failed (not those that could not be judged)."""
        return [v.prop for v in self.verdicts if v.failed]

    @property
    def unjudged(self) -> list[str]:
        return [v.prop for v in self.verdicts if v.unknown]

    def story(self) -> list[str]:
        """The schedule in words: which client, each step, the settle phase."""
        client = self.bug.client_class if self.bug else CORRECT
        lines = [f"client: {client}", "schedule:"]
        lines += [f"  {numbered(*run)}" for run in described_runs(self.schedule)]
        lines.append(
            "  then: faults healed, invocations keep arriving for the convergence"
            " bound, every frozen worker is thawed and invoked once"
        )
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"history: {self.history_path}")
        return lines

    def narrative(self) -> str:
        """The story and one line per property."""
        word = {"ok": "holds", "fail": "FAILS", "unknown": "NOT JUDGED"}
        verdicts = [f"{v.prop} {word[v.status]}: {v.summary}" for v in self.verdicts]
        return "\n".join([*self.story(), *verdicts])

    def explain_failures(self) -> str:
        return "\n\n".join(render_verdict(v) for v in self.verdicts if not v.ok)


class PropertyViolation(AssertionError):
    """A property failed on a schedule; the message says the schedule in words."""

    def __init__(self, judged: Judged) -> None:
        self.judged = judged
        super().__init__(
            f"properties {', '.join(judged.failed)} failed\n{judged.narrative()}\n\n"
            f"{judged.explain_failures()}"
        )


class Unjudged(Exception):
    """A schedule's run could not be judged (no property failed; one or more unknown).

    Not a verdict on the client: a property test that meets it should neither pass
    nor shrink towards it (Hypothesis treats it as an error of the test)."""

    def __init__(self, judged: Judged) -> None:
        self.judged = judged
        super().__init__(
            f"properties {', '.join(judged.unjudged)} could not be judged\n{judged.narrative()}"
        )


def raise_unless_ok(judged: Judged) -> Judged:
    """:class:`PropertyViolation` if a property failed, :class:`Unjudged` if one could
    not be judged; the judged run otherwise."""
    if judged.failed:
        raise PropertyViolation(judged)
    if judged.unjudged:
        raise Unjudged(judged)
    return judged
