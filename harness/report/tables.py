"""The rows of the report's tables — operations, backends, the reaper's ledger — as plain data.

Every time is in seconds since the run's zero (:attr:`harness.check.Run.t0`),
the clock of the chart and of the evidence sentences; a wall-clock time (a
``state_change``, a ``backend_start``) is carried onto that clock through the
harness's own wall/monotonic pair recorded beside it. No raw clock value
leaves this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.check import Run, is_routine_freeze
from harness.history import ForeignEvent
from harness.report.lanes import fault_label


@dataclass(frozen=True, slots=True)
class OpRow:
    op: str
    worker: str | None
    f: str
    outcome: str
    invoked: float
    took: float | None
    """Seconds from invoke to completion (None: never completed)."""
    backends: str
    error: str


@dataclass(frozen=True, slots=True)
class BackendRow:
    pid: int
    application_name: str
    names: int
    """How many distinct application names the pid carried (a lease renewal changes it)."""
    kind: str
    """``service`` (with its worker), ``foreign (<kind>)`` or ``other``."""
    first_seen: float
    last_seen: float
    started: float | None
    states: str


@dataclass(frozen=True, slots=True)
class LedgerRow:
    time: float
    reaper: str | None
    result: str
    pid: int
    victim: str
    state: str | None
    state_since: float | None
    application_name: str | None


@dataclass(frozen=True, slots=True)
class FaultRow:
    time: float
    worker: str | None
    f: str
    label: str
    detail: str


def fault_rows(run: Run) -> list[FaultRow]:
    """Every fault the nemesis applied, and every heal; not the routine parking and
    waking of workers between invocations (Lambda's normal life)."""
    out = []
    for e in run.timeline.faults:
        routine = is_routine_freeze(e) or (e.f == "thaw" and e.value.get("cause") == "invoke")
        if routine or (e.f == "freeze" and e.value.get("cause") == "reclaim"):
            continue
        detail = ", ".join(f"{k}={v}" for k, v in e.value.items() if k != "cause")
        out.append(FaultRow(e.time - run.t0, e.worker, e.f, fault_label(e), detail))
    return out


def op_rows(run: Run) -> list[OpRow]:
    t0, out = run.t0, []
    for op in sorted(run.timeline.ops, key=lambda o: o.start):
        err = op.error
        error = "" if err is None else f"{err.cls} {err.sqlstate or ''}: {err.message}".strip()
        took = op.completion.time - op.start if op.completion else None
        out.append(
            OpRow(
                op.id,
                op.worker,
                op.invoke.f,
                op.outcome,
                op.start - t0,
                took,
                ", ".join(str(p) for p in sorted(op.backend_pids)),
                " ".join(error.split()),
            )
        )
    return out


def _compress(states: list[str]) -> str:
    out: list[str] = []
    for s in states:
        if not out or out[-1] != s:
            out.append(s)
    if len(out) > 12:
        out = [*out[:6], f"… ({len(out) - 11} more) …", *out[-5:]]
    return " → ".join(out)


def backend_rows(run: Run) -> list[BackendRow]:
    """One row per backend pid seen in the samples, in order of first appearance."""
    t0, tl = run.t0, run.timeline
    seen: dict[int, list[tuple[float, float, str, str | None, float | None]]] = {}
    for s in run.sorted_samples:
        offset = s.wall - s.time  # wall seconds at monotonic 0, by the harness's clock
        for r in s.rows:
            started = None if r.backend_start is None else r.backend_start - offset
            seen.setdefault(r.pid, []).append(
                (s.time, offset, r.state or "-", r.application_name, started)
            )
    foreign = {
        e.backend_pid: e.kind
        for e in tl.events
        if isinstance(e, ForeignEvent) and e.f == "register"
    }
    out = []
    for pid, rows in seen.items():
        names = [n for *_, n, _ in rows if n]
        last_t = rows[-1][0]
        if pid in foreign:
            kind = f"foreign ({foreign[pid]})"
        elif run.is_service_row(names[-1] if names else None, pid):
            owner = tl.owner(pid, last_t)
            kind = f"service, worker {owner.worker}" if owner else "service"
        else:
            kind = "other"
        started = rows[0][4]
        out.append(
            BackendRow(
                pid,
                names[-1] if names else "",
                len(set(names)),
                kind,
                rows[0][0] - t0,
                last_t - t0,
                None if started is None else started - t0,
                _compress([r[2] for r in rows]),
            )
        )
    return out


def ledger_rows(run: Run) -> list[LedgerRow]:
    """Every reaper ledger entry (killed, skipped, denied), with its victim's owner."""
    t0, tl, out = run.t0, run.timeline, []
    for e in run.ledger:
        owner = tl.owner(e.pid, e.time)
        since = None
        if e.state_change is not None:
            since = e.state_change - (e.wall - e.time) - t0
            if not math.isfinite(since):
                since = None
        victim = f"worker {owner.worker}" if owner is not None else "no worker's"
        if e.pid in run.foreign_pids:
            victim = "a foreign backend"
        out.append(
            LedgerRow(
                e.time - t0, e.worker, e.result, e.pid, victim, e.state, since, e.application_name
            )
        )
    return out


__all__ = [
    "BackendRow",
    "FaultRow",
    "LedgerRow",
    "OpRow",
    "backend_rows",
    "fault_rows",
    "ledger_rows",
    "op_rows",
]
