"""Every termination the server performed, attributed: the view P1 and P5 judge.

A driver that kills connections itself (the bundled reaper, serverless-postgres'
``clean()``), a server that ends them (``idle_session_timeout``), an operator
(the harness's ``terminate_backend`` fault): the server's log records each one
(:class:`~harness.history.TerminationEvent`, written into the history when the
run ends). This module joins that record with the reaper's ledger
(:class:`~harness.history.ReapEvent`), where there is one, into one
:class:`Termination` per ended backend, so the properties judge every driver
the same way: by what the server did, with the ledger as a cross-check.

Promises:

- every server-logged termination at or after the history's start is one
  :class:`Termination`; one the ledger also holds (same pid, within
  :data:`MATCH_S`) carries that ledger entry (and the row the reaper acted on);
- a ledger kill the log does not show is still a :class:`Termination`
  (``source='ledger'``): with no server log (an external server), the ledger is
  all there is, as before;
- ``by_harness``: the harness's own faults (a ``terminate_backend`` of that pid)
  ended it; those are never the driver's doing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from harness.check.timeline import Timeline
from harness.history import FaultEvent, ReapEvent, TerminationEvent

MATCH_S = 1.0
"""A ledger kill and the server's record of it are the same termination within this."""
Source = Literal["server_log+ledger", "server_log", "ledger"]


@dataclass(frozen=True)
class Termination:
    """One backend the server ended, and who ended it."""

    pid: int
    time: float
    wall: float
    cause: str
    """``terminate_backend``, ``idle_session_timeout``, ``idle_in_transaction_timeout``."""
    source: Source
    application_name: str | None
    """The victim's (the ledger row's when there is one)."""
    by: str
    """Who, in words: ``reaper of w3``, ``the server (idle_session_timeout)``, ``backend
    1234 (app=thawproof-svc) of w2``, ``the harness (terminate_backend fault)``, ``unknown``."""
    by_harness: bool
    killer_pid: int | None = None
    killer_worker: str | None = None
    ledger: ReapEvent | None = None
    server: TerminationEvent | None = None

    def as_kill(self) -> ReapEvent:
        """The termination in the ledger's shape, so the ledger's clauses judge it: the
        ledger entry itself where there is one, else what the server recorded (the
        victim's state then unknown: the samples say it)."""
        if self.ledger is not None:
            return self.ledger
        return ReapEvent(
            worker=self.killer_worker or self.by,
            pid=self.pid,
            result="killed",
            application_name=self.application_name,
            state=None,
            state_change=None,
            lease_expiry_ms=None,
            time=self.time,
            wall=self.wall,
        )


def _harness_kill(tl: Timeline, pid: int, t: float) -> FaultEvent | None:
    for f in tl.faults_of({"terminate_backend"}):
        if f.value.get("backend_pid") == pid and f.time - 0.05 <= t <= f.time + 10.0:
            return f
    return None


def _killer(tl: Timeline, ev: TerminationEvent) -> tuple[str, str | None]:
    """Who killed, in words, and the worker whose backend the killer was."""
    if ev.cause != "terminate_backend":
        return f"the server ({ev.cause})", None
    if ev.killer_pid is None:
        return "unknown (no logged kill statement)", None
    owner = tl.owner(ev.killer_pid, ev.time)
    worker = owner.worker if owner is not None else None
    app = ev.killer_application_name or "?"
    who = f"backend {ev.killer_pid} (app={app})"
    return (f"{who} of {worker}" if worker else who), worker


def build(
    events_timeline: Timeline, ledger: Sequence[ReapEvent], server: Sequence[TerminationEvent]
) -> list[Termination]:
    """The unified view (see the module's promises), by time."""
    tl = events_timeline
    kills = [k for k in ledger if k.result == "killed"]
    matched: set[int] = set()
    out: list[Termination] = []
    begun = min((e.time for e in tl.events if not isinstance(e, TerminationEvent)), default=None)
    for ev in sorted(server, key=lambda e: e.time):
        if begun is not None and ev.time < begun:
            continue  # before this run: an earlier example's clean-up
        entry = next(
            (
                k
                for i, k in enumerate(kills)
                if i not in matched and k.pid == ev.pid and abs(k.time - ev.time) <= MATCH_S
            ),
            None,
        )
        if entry is not None:
            matched.add(kills.index(entry))
        fault = _harness_kill(tl, ev.pid, ev.time)
        by, worker = _killer(tl, ev)
        if entry is not None:
            by, worker = f"reaper of {entry.worker}", entry.worker
        elif fault is not None and ev.killer_pid is None:
            by = "the harness (terminate_backend fault)"
        out.append(
            Termination(
                pid=ev.pid,
                time=ev.time if entry is None else entry.time,
                wall=ev.wall if entry is None else entry.wall,
                cause=ev.cause,
                source="server_log" if entry is None else "server_log+ledger",
                application_name=ev.application_name if entry is None else entry.application_name,
                by=by,
                by_harness=fault is not None and entry is None and ev.killer_pid is None,
                killer_pid=ev.killer_pid,
                killer_worker=worker,
                ledger=entry,
                server=ev,
            )
        )
    for i, k in enumerate(kills):
        if i in matched:
            continue
        out.append(
            Termination(
                pid=k.pid,
                time=k.time,
                wall=k.wall,
                cause="terminate_backend",
                source="ledger",
                application_name=k.application_name,
                by=f"reaper of {k.worker}",
                by_harness=False,
                killer_worker=k.worker,
                ledger=k,
            )
        )
    return sorted(out, key=lambda t: t.time)


def cross_check(terms: Sequence[Termination], has_server_log: bool) -> list[str]:
    """Sentences where the ledger and the server disagree (empty: they agree, or there
    is no server log to compare with)."""
    if not has_server_log:
        return []
    return [
        f"the ledger says reaper {t.killer_worker} killed backend {t.pid}, but the server"
        " logged no termination of it"
        for t in terms
        if t.source == "ledger"
    ]


__all__ = ["MATCH_S", "Termination", "build", "cross_check"]
