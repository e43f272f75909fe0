"""What a scenario concluded, and the exit status it maps to.

Exit status of a scenario (and of ``make chaos``): 0 every property holds, 1 a
property failed, 2 the run could not be judged (setup failure, bad input, a
property that could not be judged, a harness fault), 130 / 143 interrupted by
SIGINT / SIGTERM.

A result is written to ``summary.json`` (:meth:`ScenarioResult.to_json`) and read
back from it (:meth:`ScenarioResult.from_json`), so a stored run can be rendered
again without the run; its :attr:`~ScenarioResult.why` says in one line why the
run ended as it did, judged or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.check import Run, Verdict, worst
from harness.check.situations import situations
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
    identity: dict[str, Any] = field(default_factory=dict)
    """Where and with what the run ran (UTC date, git commit, Python, PostgreSQL, the
    Toxiproxy server and client): see :func:`harness.report.identity.run_identity`."""
    stored_situations: dict[str, int] = field(default_factory=dict)
    """The situation counts read back from ``summary.json`` (a result without its run)."""
    clock_start: float | None = None
    """Monotonic time where the run's progress clock started (the CLI sets it). The
    report's zero is the run's own (:attr:`harness.check.Run.t0`, which is this same
    instant when the scenario passed it to the run's config); this is the fallback
    for a result without a recorded run."""

    @property
    def result(self) -> str:
        """``pass``, ``fail`` or ``unjudged``."""
        if self.unjudged is not None:
            return "unjudged"
        if not self.verdicts:
            return "unjudged"
        return {"ok": "pass", "fail": "fail", "unknown": "unjudged"}[worst(self.verdicts)]

    @property
    def situations(self) -> dict[str, int]:
        """How often the run reached each situation (:mod:`harness.check.situations`);
        empty for a result with no recorded fleet."""
        if self.run is not None:
            return situations(self.run)
        return dict(self.stored_situations)

    @property
    def ok(self) -> bool:
        """Every property was judged and holds."""
        return self.result == "pass"

    @property
    def judged(self) -> bool:
        """Every property got a verdict, or one failed: ``reports/latest`` may point here."""
        return self.result in ("pass", "fail")

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_OK, "fail": EXIT_FAILED, "unjudged": EXIT_UNJUDGED}[self.result]

    @property
    def why(self) -> str:
        """One line saying why the run ended as it did (judged or not)."""
        if self.unjudged is not None:
            line = f"not judged: {self.unjudged}"
        elif not self.verdicts:
            line = "not judged: the scenario returned no verdict"
        else:
            failed = [v for v in self.verdicts if v.failed]
            unknown = [v for v in self.verdicts if v.unknown]
            props = ", ".join(v.prop for v in self.verdicts)
            if failed:
                others = f" (also {', '.join(v.prop for v in failed[1:])})" if failed[1:] else ""
                line = f"{failed[0].prop} {failed[0].title} failed{others}: {failed[0].summary}"
            elif unknown:
                line = f"not judged: {unknown[0].prop} {unknown[0].summary}"
            else:
                line = f"every property holds ({props})"
        return " ".join(line.split())

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "result": self.result,
            "exit_code": self.exit_code,
            "why": self.why,
            "unjudged": self.unjudged,
            "verdicts": [v.to_json() for v in self.verdicts],
            "counts": self.counts,
            "timings": self.timings,
            "figures": figures(self),
            "situations": self.situations,
            "notes": self.notes,
            "identity": self.identity,
            "clock_start": self.clock_start,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ScenarioResult:
        """A result read back from ``summary.json`` (without its run: see ``load_run``)."""
        clock = raw.get("clock_start")
        return cls(
            str(raw["scenario"]),
            [Verdict.from_json(v) for v in raw.get("verdicts") or []],
            counts=dict(raw.get("counts") or {}),
            timings=dict(raw.get("timings") or {}),
            notes=[str(n) for n in raw.get("notes") or []],
            unjudged=None if raw.get("unjudged") is None else str(raw["unjudged"]),
            identity=dict(raw.get("identity") or {}),
            stored_situations={str(k): int(v) for k, v in (raw.get("situations") or {}).items()},
            clock_start=None if clock is None else float(clock),
        )
