"""What a scenario concluded, and the exit status it maps to.

Exit status of a scenario (and of ``make chaos``): 0 every property holds, 1 a
property failed, 2 the run could not be judged (setup failure, bad input, a
property that could not be judged, a harness fault), 130 / 143 interrupted by
SIGINT / SIGTERM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.check import Run, Verdict, worst
from harness.report.figures import figures

EXIT_OK, EXIT_FAILED, EXIT_UNJUDGED = 0, 1, 2


@dataclass
class ScenarioResult:
    """What a scenario concluded: verdicts, or why it could not judge."""

    scenario: str
    verdicts: list[Verdict] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unjudged: str | None = None
    """The reason, when the run could not be judged at all."""
    run: Run | None = None
    """The recorded run the report draws (``history.jsonl`` and ``activity.jsonl`` hold it)."""

    @property
    def result(self) -> str:
        """``pass``, ``fail`` or ``unjudged``."""
        if self.unjudged is not None:
            return "unjudged"
        return {"ok": "pass", "fail": "fail", "unknown": "unjudged"}[worst(self.verdicts)]

    @property
    def ok(self) -> bool:
        """Every property was judged and holds."""
        return self.result == "pass"

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_OK, "fail": EXIT_FAILED, "unjudged": EXIT_UNJUDGED}[self.result]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "result": self.result,
            "exit_code": self.exit_code,
            "unjudged": self.unjudged,
            "verdicts": [v.to_json() for v in self.verdicts],
            "counts": self.counts,
            "timings": self.timings,
            "figures": figures(self),
            "notes": self.notes,
        }
