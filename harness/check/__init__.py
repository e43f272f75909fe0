"""harness.check: the properties, as pure functions of a recorded run.

Jepsen's checker: it only reads what was recorded and starts nothing.

- ``timeline``  derived views of a history (frozen intervals, ops, backend owners)
- ``run``       :class:`Run` and :class:`RunConfig`, and the facts every property
                reads the same way (the convergence bound, the service's backends)
- ``verdict``   ``ok`` / ``fail`` / ``unknown``, with evidence in sentences
- ``passes``    the reaper's passes (lock, decision, kills, release), reassembled
- ``zombies``   the zombie backends of a run, each with since when
- ``p1`` … ``p7``  one module per property (P6 the reaper's rules, P7 the lease protocol)

:func:`check_all` validates the history first: a history that breaks the
invoke/complete discipline cannot be judged, and every verdict is ``unknown``.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.check.p1 import P1_TITLE, check_p1
from harness.check.p2 import P2_TITLE, check_p2
from harness.check.p3 import P3_TITLE, check_p3
from harness.check.p4 import P4_TITLE, check_p4, healed_at
from harness.check.p5 import P5_TITLE, check_p5
from harness.check.p6 import P6_TITLE, check_p6
from harness.check.p7 import P7_TITLE, check_p7
from harness.check.run import (
    Run,
    RunConfig,
    convergence_bound,
    is_routine_freeze,
    lease_expiry_ms,
)
from harness.check.timeline import Interval, Op, Timeline
from harness.check.verdict import Status, Verdict, render_verdict, verdict, worst

CHECKS: tuple[tuple[str, str, Callable[[Run], Verdict]], ...] = (
    ("P1", P1_TITLE, check_p1),
    ("P2", P2_TITLE, check_p2),
    ("P3", P3_TITLE, check_p3),
    ("P4", P4_TITLE, check_p4),
    ("P5", P5_TITLE, check_p5),
    ("P6", P6_TITLE, check_p6),
    ("P7", P7_TITLE, check_p7),
)


def check_all(run: Run) -> list[Verdict]:
    """The verdicts, P1 to P7 — all ``unknown`` if the harness misbehaved during the run
    or the history fails validation: neither is the client's failure."""
    if run.harness_faults:
        shown = "; ".join(run.harness_faults[:3])
        why = f"the harness misbehaved during the run ({shown})"
        return [
            Verdict(prop, title, "unknown", f"NOT JUDGED: {why}", [], {"unjudged": [why]})
            for prop, title, _ in CHECKS
        ]
    problems = run.history_problems
    if problems:
        shown = "; ".join(f"{p.kind}: {p.message}" for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        why = f"the history fails validation ({len(problems)} problem(s): {shown}{more})"
        return [
            Verdict(prop, title, "unknown", f"NOT JUDGED: {why}", [], {"unjudged": [why]})
            for prop, title, _ in CHECKS
        ]
    return [check(run) for _, _, check in CHECKS]


__all__ = [
    "CHECKS",
    "Interval",
    "Op",
    "Run",
    "RunConfig",
    "Status",
    "Timeline",
    "Verdict",
    "check_all",
    "check_p1",
    "check_p2",
    "check_p3",
    "check_p4",
    "check_p5",
    "check_p6",
    "check_p7",
    "convergence_bound",
    "healed_at",
    "is_routine_freeze",
    "lease_expiry_ms",
    "render_verdict",
    "verdict",
    "worst",
]
