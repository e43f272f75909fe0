"""The table a chaos run ends with: scenario x verdicts, the key figures, the report's path.

The figures are :func:`harness.report.figures.figures` of each result: computed
from the recorded run, never typed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.check import CHECKS
from harness.report import ScenarioResult
from harness.report.figures import figures

PROPS = tuple(prop for prop, _, _ in CHECKS)
"""A column per property ``check_all`` judges."""
MARK = {"ok": "ok", "fail": "FAIL", "unknown": "?"}


@dataclass(frozen=True)
class Row:
    name: str
    result: ScenarioResult
    path: Path | None


def _fmt(x: Any, spec: str = "") -> str:
    if x is None:
        return "-"
    return format(x, spec) if spec else str(x)


def render(rows: Sequence[Row]) -> str:
    """The table, one line per scenario, then the legend."""
    head = (
        f"{'scenario':<23}"
        + "".join(f"{p:>5}" for p in PROPS)
        + f"  {'peak/limit':>10} {'conv/bound s':>13} {'kills':>5} {'info':>4} {'dup':>3}"
        f" {'53300':>5} {'time s':>7}  report"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        r = row.result
        by_prop = {v.prop: MARK[v.status] for v in r.verdicts}
        f = figures(r)
        verdicts = "".join(f"{by_prop.get(p, '-'):>5}" for p in PROPS)
        if r.unjudged is not None:
            verdicts = f"  {r.result.upper()}: {r.unjudged}"[: 5 * len(PROPS)].ljust(5 * len(PROPS))
        elif not any(v.prop in PROPS for v in r.verdicts):  # its own checks (smoke: S1-S3)
            own = " ".join(f"{v.prop}:{MARK[v.status]}" for v in r.verdicts)
            verdicts = f"  {own}"[: 5 * len(PROPS)].ljust(5 * len(PROPS))
        peak = f"{_fmt(f.get('peak_backends'))}/{_fmt(f.get('limit'))}" if "limit" in f else "-"
        conv = (
            f"{_fmt(f.get('convergence_s'), '.2f')}/{_fmt(f.get('bound_s'), '.2f')}"
            if f.get("bound_s") is not None
            else "-"
        )
        lines.append(
            f"{row.name:<23}{verdicts}  {peak:>10} {conv:>13} {_fmt(f.get('reaper_kills')):>5}"
            f" {_fmt(f.get('info_ops')):>4} {_fmt(f.get('duplicates')):>3}"
            f" {_fmt(f.get('refused_53300')):>5} {_fmt(f.get('duration_s'), '.1f'):>7}"
            f"  {row.path or '-'}"
        )
    lines.append(
        "ok holds, FAIL violated, ? could not be judged; peak: most service backends seen;"
        " conv: P2's convergence time"
    )
    return "\n".join(lines)
