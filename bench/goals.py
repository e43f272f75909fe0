"""Headlines: one line per benchmark figure, with its goal, saying plainly when it is missed.

A benchmark module builds its headlines with :func:`headline` and returns them
under the ``"headlines"`` key of its figures; ``python -m bench`` prints every
headline after the module ran, and once more, all together, at the end:

    MET     lease.select1_p50_ratio = 1.031 (goal <= 1.05)
    MISSED  proxy.added_p50_us = 131.2 us (goal <= 107.0 us)
    INFO    fleet.cold_start_p50_ms = 17.5 ms (no goal)

A figure that could not be measured is ``UNMEASURED`` with the reason: a goal
is never reported met on a figure nobody obtained.
"""

from __future__ import annotations

import math
from typing import Any, Literal

Op = Literal["<=", ">=", "info"]


def headline(
    name: str,
    value: float | None,
    *,
    goal: float | None = None,
    op: Op = "<=",
    unit: str = "",
    note: str = "",
) -> dict[str, Any]:
    """One figure against its goal. ``op`` says which side of ``goal`` is good;
    ``value=None`` (with the reason in ``note``) means it was not measured."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        status = "UNMEASURED"
    elif goal is None or op == "info":
        status = "INFO"
    elif op == "<=":
        status = "MET" if value <= goal else "MISSED"
    else:
        status = "MET" if value >= goal else "MISSED"
    return {
        "name": name,
        "value": value,
        "goal": goal,
        "op": op,
        "unit": unit,
        "status": status,
        "note": note,
    }


def render(h: dict[str, Any]) -> str:
    """The headline as one line."""
    unit = f" {h['unit']}" if h.get("unit") else ""
    value = "—" if h["value"] is None else _fmt(h["value"])
    goal = (
        "no goal"
        if h["goal"] is None or h["op"] == "info"
        else f"goal {h['op']} {_fmt(h['goal'])}{unit}"
    )
    line = f"{h['status']:<10} {h['name']} = {value}{unit} ({goal})"
    if h.get("note"):
        line += f" — {h['note']}"
    return line


def _fmt(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.1f}"
