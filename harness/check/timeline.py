"""Derived views of a history, computed in one place for every checker.

Reads only events from :mod:`harness.history`. Everything is by ``time``
(CLOCK_MONOTONIC), not by file order: the fleet writes events as reports
arrive, which may be slightly out of time order.

Promises (the definitions the properties rely on):

- A worker is *frozen* over the closed interval from a freeze-type fault
  (``freeze``, ``freeze_mid_*``) to the next ``thaw`` or ``reclaim`` of it (or
  its death, or forever if nothing ends it).
- A worker *dies* at its first ``reclaim`` fault, ``exit`` or ``crash`` event.
- An operation is *in progress* at ``t`` when ``invoke.time <= t < end``, where
  ``end`` is its completion's time, or — with no completion — its worker's
  death, or +inf.
- The *owner* of a backend pid at ``t`` is the worker of the latest backend
  mapping of that pid at or before ``t``; a worker's *current backend* at ``t``
  is the pid of its own latest mapping at or before ``t``.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.history import (
    FREEZE_FAULTS,
    UNFREEZE_FAULTS,
    BackendEvent,
    ErrorInfo,
    Event,
    FaultEvent,
    OpEvent,
    WorkerEvent,
)

INF = math.inf


@dataclass(frozen=True, slots=True)
class Interval:
    """A closed time interval [start, end] with the events that opened and closed it."""

    start: float
    end: float
    opened_by: FaultEvent
    closed_by: Event | None

    def contains(self, t: float) -> bool:
        return self.start <= t <= self.end

    def overlaps(self, a: float, b: float) -> bool:
        """[a, b] shares more than an end point with the interval (a point: lies in it)."""
        if a == b:
            return self.contains(a)
        return self.start < b and a < self.end

    def to_json(self) -> dict[str, Any]:
        return {
            "worker": self.opened_by.worker,
            "from": self.start,
            "to": None if math.isinf(self.end) else self.end,
            "by": self.opened_by.f,
            "until": getattr(self.closed_by, "f", None),
        }


@dataclass(frozen=True, slots=True)
class Op:
    """An invoke with its completion (if any)."""

    invoke: OpEvent
    completion: OpEvent | None
    end: float
    """Completion time; without one, the worker's death, else +inf."""

    @property
    def id(self) -> str:
        return self.invoke.op

    @property
    def worker(self) -> str | None:
        return self.invoke.worker

    @property
    def start(self) -> float:
        return self.invoke.time

    @property
    def outcome(self) -> str:
        """``ok``, ``fail``, ``info``, or ``open`` (no completion: unknown, like ``info``)."""
        return self.completion.type if self.completion else "open"

    @property
    def error(self) -> ErrorInfo | None:
        return self.completion.error if self.completion else None

    @property
    def sqlstate(self) -> str | None:
        return self.completion.sqlstate if self.completion else None

    @property
    def backend_pids(self) -> frozenset[int]:
        pids = {self.invoke.backend_pid}
        if self.completion:
            pids.add(self.completion.backend_pid)
        return frozenset(p for p in pids if p is not None)

    def in_progress(self, t: float) -> bool:
        return self.start <= t < self.end

    def to_json(self) -> dict[str, Any]:
        err = self.error
        return {
            "op": self.id,
            "worker": self.worker,
            "process": self.invoke.process,
            "f": self.invoke.f,
            "outcome": self.outcome,
            "invoked": self.start,
            "completed": self.completion.time if self.completion else None,
            "backend_pids": sorted(self.backend_pids),
            "lease_valid": self.invoke.lease_valid,
            "error": None if err is None else {"sqlstate": err.sqlstate, "class": err.cls},
        }


class Timeline:
    """Ops, frozen intervals, deaths and backend ownership of one history."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events: list[Event] = sorted(events, key=lambda e: e.time)
        self.faults: list[FaultEvent] = [e for e in self.events if isinstance(e, FaultEvent)]
        self.deaths: dict[str, float] = self._deaths()
        self.frozen: dict[str, list[Interval]] = self._frozen()
        self.ops: list[Op] = self._ops()
        self._by_worker: dict[str | None, list[Op]] = defaultdict(list)
        for op in self.ops:
            self._by_worker[op.worker].append(op)
        self._by_pid: dict[int, list[BackendEvent]] = defaultdict(list)
        self._backends_of: dict[str, list[BackendEvent]] = defaultdict(list)
        for e in self.events:
            if isinstance(e, BackendEvent):
                self._by_pid[e.backend_pid].append(e)
                self._backends_of[e.worker].append(e)

    @property
    def start(self) -> float:
        return self.events[0].time if self.events else 0.0

    @property
    def end(self) -> float:
        return self.events[-1].time if self.events else 0.0

    # -- construction

    def _deaths(self) -> dict[str, float]:
        deaths: dict[str, float] = {}
        for e in self.events:
            dead = (isinstance(e, FaultEvent) and e.f == "reclaim") or (
                isinstance(e, WorkerEvent) and e.f in ("exit", "crash")
            )
            if dead and e.worker is not None:
                deaths.setdefault(e.worker, e.time)
        return deaths

    def _frozen(self) -> dict[str, list[Interval]]:
        out: dict[str, list[Interval]] = defaultdict(list)
        opened: dict[str, FaultEvent] = {}
        for e in self.events:
            w = e.worker
            if w is None:
                continue
            ends = (isinstance(e, FaultEvent) and e.f in UNFREEZE_FAULTS) or (
                isinstance(e, WorkerEvent) and e.f in ("exit", "crash")
            )
            if isinstance(e, FaultEvent) and e.f in FREEZE_FAULTS:
                opened.setdefault(w, e)  # a second freeze while frozen extends nothing
            elif ends and w in opened:
                start = opened.pop(w)
                out[w].append(Interval(start.time, e.time, start, e))
        for w, start in opened.items():
            out[w].append(Interval(start.time, INF, start, None))
        return dict(out)

    def _ops(self) -> list[Op]:
        invokes: dict[str, OpEvent] = {}
        completions: dict[str, OpEvent] = {}
        for e in self.events:
            if not isinstance(e, OpEvent):
                continue
            if e.type == "invoke":
                invokes.setdefault(e.op, e)
            else:
                completions.setdefault(e.op, e)  # a second completion is a validation problem
        ops = []
        for op_id, inv in invokes.items():
            comp = completions.get(op_id)
            if comp is not None:
                end = comp.time
            else:
                end = self.deaths.get(inv.worker, INF) if inv.worker is not None else INF
            ops.append(Op(inv, comp, max(end, inv.time)))
        return ops

    # -- queries

    def frozen_at(self, worker: str | None, t: float) -> Interval | None:
        """The frozen interval of ``worker`` containing ``t``, if any."""
        if worker is None:
            return None
        return next((iv for iv in self.frozen.get(worker, ()) if iv.contains(t)), None)

    def frozen_during(self, worker: str | None, a: float, b: float) -> list[Interval]:
        """Frozen intervals of ``worker`` overlapping [a, b]; touching at an end is not overlap."""
        if worker is None:
            return []
        return [iv for iv in self.frozen.get(worker, ()) if iv.overlaps(a, b)]

    def ops_of(self, worker: str | None) -> Sequence[Op]:
        return self._by_worker.get(worker, ())

    def in_progress(self, worker: str | None, t: float) -> list[Op]:
        """Operations of ``worker`` in progress at ``t``."""
        return [op for op in self.ops_of(worker) if op.in_progress(t)]

    def owner(self, pid: int, t: float) -> BackendEvent | None:
        """The latest backend mapping of ``pid`` at or before ``t``."""
        return _latest(self._by_pid.get(pid, ()), t)

    def current_backend(self, worker: str, t: float) -> BackendEvent | None:
        """``worker``'s latest backend mapping at or before ``t``."""
        return _latest(self._backends_of.get(worker, ()), t)

    def first_mapping(self, worker: str, pid: int) -> BackendEvent | None:
        return next((b for b in self._backends_of.get(worker, ()) if b.backend_pid == pid), None)

    def faults_of(self, kinds: Iterable[str]) -> list[FaultEvent]:
        ks = frozenset(kinds)
        return [f for f in self.faults if f.f in ks]

    def skews_between(self, worker: str | None, a: float, b: float) -> list[float]:
        """Every clock skew (seconds) ``worker``'s lease clock may have had in [a, b]:
        the one in effect at ``a`` by the history (0 before any ``clock_skew``) and each
        one recorded in (a, b]. A skew is recorded before it is sent and applied when
        the worker next reads its pipe, so at a given instant any of them may hold."""
        if worker is None:
            return [0.0]
        before, during = 0.0, []
        for f in self.faults:
            if f.f != "clock_skew" or f.worker != worker:
                continue
            seconds = float(f.value.get("seconds", 0.0))
            if f.time <= a:
                before = seconds
            elif f.time <= b:
                during.append(seconds)
        return [before, *during]


def _latest(events: Sequence[BackendEvent], t: float) -> BackendEvent | None:
    i = bisect.bisect_right([e.time for e in events], t)
    return events[i - 1] if i else None
