"""Validation of a history: every way it breaks the invoke/complete discipline.

A run is judged only from a history that passes :func:`validate`; one that
does not cannot be judged (its verdicts are ``unknown``, exit status 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.history.events import Event, OpEvent


@dataclass(frozen=True, slots=True)
class Problem:
    """One way a history breaks the invoke/complete discipline."""

    kind: str
    message: str
    op: str | None = None
    process: int | None = None
    indexes: tuple[int, ...] = field(default=())
    """Positions of the offending events in the history."""


def validate(events: Iterable[Event]) -> list[Problem]:
    """Every discipline break in ``events`` (file order), in the order found.

    Kinds: ``duplicate_invoke`` (an op id invoked twice), ``completion_without_invoke``,
    ``double_completion``, ``completion_mismatch`` (process, worker or f differ
    from the invoke), ``completion_before_invoke`` (earlier ``time``),
    ``concurrent_ops`` (a process invoked while its previous op was open),
    ``process_after_info`` (a process invoked again after an op of it ended
    ``info``), ``process_shared`` (one process id used by two workers).
    Operations still open at the end are not problems: they count as ``info``.
    """
    problems: list[Problem] = []
    invokes: dict[str, tuple[int, OpEvent]] = {}
    completed: dict[str, int] = {}
    open_on: dict[int, str] = {}
    info_ended: dict[int, str] = {}
    owner: dict[int, str | None] = {}

    for i, ev in enumerate(events):
        if not isinstance(ev, OpEvent):
            continue
        if ev.type == "invoke":
            if ev.op in invokes:
                problems.append(
                    Problem(
                        "duplicate_invoke",
                        f"op {ev.op} invoked twice",
                        ev.op,
                        ev.process,
                        (invokes[ev.op][0], i),
                    )
                )
                continue
            if ev.process in owner and owner[ev.process] != ev.worker:
                problems.append(
                    Problem(
                        "process_shared",
                        f"process {ev.process} used by {owner[ev.process]!r} and {ev.worker!r}",
                        ev.op,
                        ev.process,
                        (i,),
                    )
                )
            owner.setdefault(ev.process, ev.worker)
            if ev.process in open_on:
                problems.append(
                    Problem(
                        "concurrent_ops",
                        f"process {ev.process} invoked {ev.op} while {open_on[ev.process]}"
                        " was still open",
                        ev.op,
                        ev.process,
                        (i,),
                    )
                )
            if ev.process in info_ended:
                problems.append(
                    Problem(
                        "process_after_info",
                        f"process {ev.process} invoked {ev.op} after {info_ended[ev.process]}"
                        " ended info; it should continue under a new process id",
                        ev.op,
                        ev.process,
                        (i,),
                    )
                )
            invokes[ev.op] = (i, ev)
            open_on[ev.process] = ev.op
            continue
        # a completion
        if ev.op not in invokes:
            problems.append(
                Problem(
                    "completion_without_invoke",
                    f"{ev.type} of op {ev.op} was never invoked",
                    ev.op,
                    ev.process,
                    (i,),
                )
            )
            continue
        if ev.op in completed:
            problems.append(
                Problem(
                    "double_completion",
                    f"op {ev.op} completed twice (second: {ev.type})",
                    ev.op,
                    ev.process,
                    (completed[ev.op], i),
                )
            )
            continue
        j, inv = invokes[ev.op]
        completed[ev.op] = i
        if (inv.process, inv.worker, inv.f) != (ev.process, ev.worker, ev.f):
            problems.append(
                Problem(
                    "completion_mismatch",
                    f"op {ev.op}: invoke (process {inv.process}, {inv.worker!r}, {inv.f}) vs"
                    f" {ev.type} (process {ev.process}, {ev.worker!r}, {ev.f})",
                    ev.op,
                    ev.process,
                    (j, i),
                )
            )
        if ev.time < inv.time:
            problems.append(
                Problem(
                    "completion_before_invoke",
                    f"op {ev.op} completed at {ev.time} before its invoke at {inv.time}",
                    ev.op,
                    ev.process,
                    (j, i),
                )
            )
        if open_on.get(inv.process) == ev.op:
            del open_on[inv.process]
        if ev.type == "info":
            info_ended[inv.process] = ev.op
    return problems
