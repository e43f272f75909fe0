"""Situation coverage: how often a run reached each situation the spec describes.

Antithesis calls these "sometimes" assertions: not properties (nothing fails when a
situation is not reached) but the measure of what a run *provoked*. A property that
holds in a run that never reached the situation it is about proves nothing about
it; the counts say which situations a suite exercised and which it never did.

Every counter reads only what was recorded (the history, the run's config), so a
stored run is counted again exactly. :data:`SITUATIONS` names them in the spec's
order; :func:`situations` counts them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar, get_args

from harness.check import wire
from harness.check.passes import reaper_passes
from harness.check.run import Run
from harness.history import (
    BackendEvent,
    FaultEvent,
    ForeignEvent,
    NeighbourShape,
    OpEvent,
    ReapEvent,
    ReapPassEvent,
    RefusalEvent,
)

E = TypeVar("E")

NEIGHBOUR_SHAPES: tuple[NeighbourShape, ...] = get_args(NeighbourShape)


@dataclass(frozen=True)
class Situation:
    name: str
    what: str
    count: Callable[[Run], int]
    required: bool = True
    """The ``ci`` profile must reach it (False: only a client that breaks its rules can;
    counted and shown, never required)."""


def _of(run: Run, kind: type[E]) -> Iterator[E]:
    return (e for e in run.events if isinstance(e, kind))


def _faults(run: Run, f: str) -> list[FaultEvent]:
    return [e for e in _of(run, FaultEvent) if e.f == f]


def _pass_at_max(run: Run) -> int:
    """Passes that killed their maximum while the scan returned more rows than that."""
    most = run.config.max_kills
    if most is None:
        return 0
    passes, _ = reaper_passes(run.timeline.events)
    return sum(
        1
        for p in passes
        if p.scanned is not None
        and (p.scanned.scanned or 0) > most
        and sum(1 for e in p.entries if e.result == "killed") >= most
    )


def _renewal_during_pass(run: Run) -> int:
    """Lease renewals confirmed while another worker's reaper held the leader lock."""
    passes, _ = reaper_passes(run.timeline.events)
    spans = [(p.worker, p.locked.time, p.end.time) for p in passes if p.end is not None]
    return sum(
        1
        for e in _of(run, BackendEvent)
        if e.renewed and any(w != e.worker and t0 <= e.time <= t1 for w, t0, t1 in spans)
    )


def _ops(run: Run) -> dict[str, list[OpEvent]]:
    out: dict[str, list[OpEvent]] = {}
    for e in _of(run, OpEvent):
        out.setdefault(e.op, []).append(e)
    return out


def _lost_ack(run: Run, f: str, *, retried: bool) -> int:
    """``ack_lost`` faults on ``f`` whose op then ended; ``retried``: ended ok on another
    backend than it began on (the retry after the lost answer reconnected)."""
    ops = _ops(run)
    n = 0
    for fault in _faults(run, "ack_lost"):
        if str(fault.value.get("f", "write")) != f:
            continue
        events = ops.get(str(fault.value.get("op")), [])
        invoke = next((e for e in events if e.type == "invoke"), None)
        end = next((e for e in events if e.type != "invoke"), None)
        if invoke is None or end is None:
            continue
        if not retried or (end.type == "ok" and end.backend_pid != invoke.backend_pid):
            n += 1
    return n


def _neighbours(run: Run) -> list[ForeignEvent]:
    return [e for e in _of(run, ForeignEvent) if e.f == "register" and e.kind == "neighbour"]


def _like_wildcard_neighbour(run: Run) -> int:
    """Neighbours of another service whose name holds a LIKE wildcard (``%``, ``_``)."""
    n = 0
    for e in _neighbours(run):
        lease = wire.parse(e.application_name)
        if e.shape == "other_service" and lease is not None:
            n += any(c in lease.service for c in "%_")
    return n


def _shape(shape: str) -> Callable[[Run], int]:
    return lambda run: sum(1 for e in _neighbours(run) if e.shape == shape)


SITUATIONS: tuple[Situation, ...] = (
    Situation("pass_at_max", "a reaper pass killed its maximum with more rows left", _pass_at_max),
    Situation(
        "reapers_contend",
        "a reaper found the leader lock held by another",
        lambda run: sum(1 for e in _of(run, ReapPassEvent) if e.f == "busy"),
    ),
    Situation(
        "leader_frozen_mid_pass",
        "a reaper frozen while it held the leader lock",
        lambda run: len(_faults(run, "freeze_mid_reap")),
    ),
    Situation(
        "idle_in_tx_zombie_killed",
        "a reaper killed an idle-in-transaction backend",
        lambda run: sum(
            1
            for e in _of(run, ReapEvent)
            if e.result == "killed" and (e.state or "").startswith("idle in transaction")
        ),
    ),
    Situation(
        "renewal_during_pass",
        "a lease renewed while another worker's reaper held the lock",
        _renewal_during_pass,
    ),
    Situation(
        "thaw_after_expiry",
        "an invocation reached a sandbox whose lease had expired",
        lambda run: sum(
            1 for e in _of(run, OpEvent) if e.type == "invoke" and e.lease_valid is False
        ),
    ),
    Situation(
        "frozen_mid_transaction",
        "a worker frozen inside an open transaction",
        lambda run: len(_faults(run, "freeze_mid_tx")),
    ),
    Situation(
        "write_on_locked_row",
        "a write to a row a frozen transaction holds locked",
        lambda run: sum(
            1
            for e in _of(run, OpEvent)
            if e.type == "invoke" and e.f == "long_tx" and "row" in e.value
        ),
    ),
    Situation(
        "lost_ack_write",
        "a plain write's answer lost, and the op ended",
        lambda run: _lost_ack(run, "write", retried=False),
    ),
    Situation(
        "lost_ack_commit",
        "the answer to execute_once's COMMIT lost, then retried on a new connection",
        lambda run: _lost_ack(run, "write_once", retried=True),
    ),
    Situation(
        "refused_53300",
        "a connection attempt refused with 53300 (the server's log)",
        lambda run: sum(1 for _ in _of(run, RefusalEvent)),
    ),
    Situation(
        "kill_denied",
        "the server denied a reaper's kill (only a reaper that tries a protected backend)",
        lambda run: sum(1 for e in _of(run, ReapEvent) if e.result == "denied"),
        required=False,
    ),
    Situation(
        "reaper_kill",
        "a reaper killed a backend",
        lambda run: sum(1 for e in _of(run, ReapEvent) if e.result == "killed"),
    ),
    Situation(
        "socket_cut_mid_query",
        "a socket cut while its statement ran",
        lambda run: len(_faults(run, "socket_reset")),
    ),
    Situation(
        "server_restart", "the server restarted", lambda run: len(_faults(run, "pg_restart"))
    ),
    Situation("clock_skew", "a worker's clock skewed", lambda run: len(_faults(run, "clock_skew"))),
    *(
        Situation(
            f"neighbour_{shape}",
            f"a neighbour with a {shape.replace('_', ' ')} application_name",
            _shape(shape),
        )
        for shape in NEIGHBOUR_SHAPES
    ),
    Situation(
        "neighbour_like_wildcard",
        "a neighbour of another service whose name holds a LIKE wildcard",
        _like_wildcard_neighbour,
    ),
)

BY_NAME: dict[str, Situation] = {s.name: s for s in SITUATIONS}


def situations(run: Run) -> dict[str, int]:
    """How often ``run`` reached each situation, in :data:`SITUATIONS` order."""
    return {s.name: s.count(run) for s in SITUATIONS}


def unreached(counts: dict[str, int]) -> list[str]:
    """The required situations (of :data:`SITUATIONS`) that ``counts`` never reached."""
    return [s.name for s in SITUATIONS if s.required and counts.get(s.name, 0) == 0]
