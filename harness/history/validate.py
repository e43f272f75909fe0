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
    check = _Discipline()
    for i, ev in enumerate(events):
        if isinstance(ev, OpEvent):
            if ev.type == "invoke":
                check.invoke(i, ev)
            else:
                check.complete(i, ev)
    return check.problems


class _Discipline:
    """The state :func:`validate` keeps while it reads a history in file order."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.invokes: dict[str, tuple[int, OpEvent]] = {}
        self.completed: dict[str, int] = {}
        self.open_on: dict[int, str] = {}
        self.info_ended: dict[int, str] = {}
        self.owner: dict[int, str | None] = {}

    def _add(self, kind: str, message: str, ev: OpEvent, *indexes: int) -> None:
        self.problems.append(Problem(kind, message, ev.op, ev.process, tuple(indexes)))

    def invoke(self, i: int, ev: OpEvent) -> None:
        p = ev.process
        if ev.op in self.invokes:
            self._add(
                "duplicate_invoke", f"op {ev.op} invoked twice", ev, self.invokes[ev.op][0], i
            )
            return
        if p in self.owner and self.owner[p] != ev.worker:
            self._add(
                "process_shared", f"process {p} used by {self.owner[p]!r} and {ev.worker!r}", ev, i
            )
        self.owner.setdefault(p, ev.worker)
        if p in self.open_on:
            self._add(
                "concurrent_ops",
                f"process {p} invoked {ev.op} while {self.open_on[p]} was still open",
                ev,
                i,
            )
        if p in self.info_ended:
            self._add(
                "process_after_info",
                f"process {p} invoked {ev.op} after {self.info_ended[p]} ended info;"
                " it should continue under a new process id",
                ev,
                i,
            )
        self.invokes[ev.op] = (i, ev)
        self.open_on[p] = ev.op

    def complete(self, i: int, ev: OpEvent) -> None:
        if ev.op not in self.invokes:
            self._add(
                "completion_without_invoke", f"{ev.type} of op {ev.op} was never invoked", ev, i
            )
            return
        if ev.op in self.completed:
            self._add(
                "double_completion",
                f"op {ev.op} completed twice (second: {ev.type})",
                ev,
                self.completed[ev.op],
                i,
            )
            return
        j, inv = self.invokes[ev.op]
        self.completed[ev.op] = i
        if (inv.process, inv.worker, inv.f) != (ev.process, ev.worker, ev.f):
            self._add(
                "completion_mismatch",
                f"op {ev.op}: invoke (process {inv.process}, {inv.worker!r}, {inv.f}) vs"
                f" {ev.type} (process {ev.process}, {ev.worker!r}, {ev.f})",
                ev,
                j,
                i,
            )
        if ev.time < inv.time:
            self._add(
                "completion_before_invoke",
                f"op {ev.op} completed at {ev.time} before its invoke at {inv.time}",
                ev,
                j,
                i,
            )
        if self.open_on.get(inv.process) == ev.op:
            del self.open_on[inv.process]
        if ev.type == "info":
            self.info_ended[inv.process] = ev.op
