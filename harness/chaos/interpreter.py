"""The interpreter: applies schedule steps (pure data) to a live fleet.

Jepsen's generator is data and its client and nemesis act: here
:mod:`harness.chaos.steps` is the data and :class:`Interpreter` acts, one
handler per step type. The interpreter also holds what one example's steps
leave behind for later steps: ops frozen in the middle, foreign backends it
opened, when invocations last happened, and notes for the story.

Synchronisation is by events (a query started, an op paused, a backend seen
active); the only waits on the clock are the ones the properties are about:
letting leases expire (``Age``, ``Linger``) and, in the races, letting a
lease run out under a query that is still running.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import make_conninfo

from harness.chaos import neighbours
from harness.chaos.steps import (
    AckLost,
    Age,
    Burst,
    CheckpointRestore,
    ClockSkew,
    ColdStartWave,
    ForeignBackend,
    FreezeMid,
    Invoke,
    InvokeWarm,
    Linger,
    Neighbour,
    NetworkFault,
    PeerRace,
    PgRestart,
    QueryOutlivesLease,
    Reap,
    ReaperRace,
    Reclaim,
    Rejected,
    SocketReset,
    Step,
    TerminateBackend,
    TerminateInTx,
    Thaw,
    ThawIntoTx,
    WriteLockedRow,
)
from harness.chaos.timings import OTHER_SECRET, SECRET, SERVICE_TAG, Timings
from harness.check import wire
from harness.errors import (
    FleetAtCapacity,
    FleetError,
    FleetTimeout,
    HarnessFault,
    PauseNotReached,
    UsageError,
    WorkerUnavailable,
)
from harness.fleet import Fleet, Pending
from harness.history import ErrorInfo, ForeignKind, HistoryWriter
from harness.infra.postgres import PostgresServer

S = TypeVar("S", bound=Step)
Handler = Callable[["Interpreter", Any], None]
_HANDLERS: dict[type[Step], Handler] = {}


def handles(kind: type[S]) -> Callable[[Callable[[Interpreter, S], None]], Handler]:
    """Register the handler of one step type."""

    def register(fn: Callable[[Interpreter, S], None]) -> Handler:
        _HANDLERS[kind] = fn
        return fn

    return register


@dataclass
class Foreign:
    """A backend the interpreter opened that is not the service's own."""

    kind: ForeignKind
    conn: psycopg.Connection[Any]
    pid: int


@dataclass
class Interpreter:
    """A running example: the fleet, the history, and what the steps left behind."""

    fleet: Fleet
    history: HistoryWriter
    pg: PostgresServer
    timings: Timings
    cap: int
    frozen_ops: list[Pending] = field(default_factory=list)
    foreign: list[Foreign] = field(default_factory=list)
    last_activity: float = field(default_factory=time.time)
    notes: list[str] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    """DSNs of the neighbours' roles, created on first use (shared across examples)."""
    aequor_namespace: int | None = None
    """pg-aequor's reaper-lock namespace, when the client takes that key as it leads
    (the bundled client's default): a reaper frozen holding the leader lock is probed."""

    def apply(self, step: Step) -> None:
        handler = _HANDLERS.get(type(step))
        if handler is None:
            raise UsageError(f"no interpreter for step {type(step).__name__}")
        handler(self, step)

    # -- what handlers share

    def idle(self) -> list[str]:
        return self.fleet.worker_names(state="idle")

    def pick(self, index: int) -> str | None:
        """The ``index``-th idle worker (modulo), or None when none is idle."""
        idle = self.idle()
        return idle[index % len(idle)] if idle else None

    def an_idle_worker(self) -> str | None:
        """An idle worker, cold-starting one with a read when none is idle and there
        is room; None when every worker is busy at the cap."""
        if not self.idle():
            with contextlib.suppress(FleetAtCapacity):
                self.run("read")
        return self.pick(0)

    def start_reads(self, limit: int) -> list[Pending]:
        """Up to ``limit`` reads at once: idle workers first, then cold starts to the cap."""
        started: list[Pending] = []
        while len(started) < limit:
            try:
                started.append(self.fleet.start("read"))
            except (FleetAtCapacity, WorkerUnavailable):
                break
        return started

    def run(self, f: Any, *, worker: str | None = None, **args: Any) -> Any:
        result = self.fleet.invoke(f, worker=worker, **args)
        self.touch()
        return result

    def touch(self) -> None:
        """Invocations just happened: leases were renewed now."""
        self.last_activity = time.time()

    def thaw_and_finish(self, p: Pending) -> None:
        with contextlib.suppress(WorkerUnavailable):
            if self.fleet.worker(p.worker).frozen:
                self.fleet.thaw(p.worker, resume=True)
        p.wait()
        self.touch()

    def role_dsn(self, role: str) -> str:
        """The DSN of a neighbour role (:data:`NEIGHBOUR_ROLES`), created the first time."""
        if role not in self.roles:
            name, groups = NEIGHBOUR_ROLES[role]
            self.roles[role] = self.pg.create_role(name, member_of=groups)
        return self.roles[role]

    def release_foreign(self) -> None:
        for f in self.foreign:
            # recorded BEFORE it acts, as a fault is: closed first, a sample taken before
            # the record showed the backend gone with nothing to explain it (P5-vanished
            # on the correct client, measured in make test N=2)
            self.history.foreign(backend_pid=f.pid, kind=f.kind, f="release")
            f.conn.close()
        self.foreign.clear()


def wait_until_wall(until: float) -> None:
    """Let wall-clock time reach ``until``: leases expire by the clock, nothing else."""
    event = threading.Event()
    while (remaining := until - time.time()) > 0:
        event.wait(remaining)


# -- ordinary life -------------------------------------------------------------------------


@handles(Invoke)
def _invoke(it: Interpreter, step: Invoke) -> None:
    args: dict[str, Any] = {"n": 5} if step.f == "burst" else {}
    if step.f in ("write", "write_once"):
        args["amount"] = 1
    with contextlib.suppress(FleetAtCapacity):
        it.run(step.f, **args)


@handles(Rejected)
def _rejected(it: Interpreter, step: Rejected) -> None:
    with contextlib.suppress(FleetAtCapacity):
        it.run("rejected", side=step.side)


@handles(Burst)
def _burst(it: Interpreter, step: Burst) -> None:
    for p in it.start_reads(step.n):
        p.wait()
    it.touch()


WAVE_HOLD_S = 0.3
"""How long each invocation of a cold-start wave stays in flight: long enough that the
whole wave is in flight at once (Lambda's concurrency), so each needs its own sandbox."""


@handles(ColdStartWave)
def _cold_start_wave(it: Interpreter, step: ColdStartWave) -> None:
    if step.prestarted:
        ready = _start_ahead(it, step.n)
        it.notes.append(f"cold-start wave: {ready} sandbox(es) ready (started ahead) for it")
    waves: list[Pending] = []
    while len(waves) < step.n:
        try:
            waves.append(it.fleet.start("slow_read", seconds=WAVE_HOLD_S))
        except (FleetAtCapacity, WorkerUnavailable):
            break
    if len(waves) < step.n:
        it.notes.append(f"cold-start wave: {len(waves)} of {step.n} started (the cap)")
    results = [p.wait() for p in waves]
    refused = [r.op for r in results if r.error is not None and r.error.sqlstate == "53300"]
    it.fleet.record_fault(
        "overload", None, {"started": len(waves), "refused": len(refused), "ops": refused}
    )
    it.touch()


def _start_ahead(it: Interpreter, n: int) -> int:
    """Up to ``n`` sandboxes idle and parked before a wave: the idle ones, and new ones
    cold-started (process, proxy and client; no connection until invoked), each
    reserved and given back without an op. How many there are."""
    held: list[str] = []
    try:
        while len(held) < n:
            try:
                held.append(it.fleet.acquire())
            except (FleetAtCapacity, WorkerUnavailable):
                break
    finally:
        for name in held:
            it.fleet.release(name)
    return len(held)


@handles(InvokeWarm)
def _invoke_warm(it: Interpreter, step: InvokeWarm) -> None:
    warm = [n for n in it.idle() if it.fleet.worker(n).backend_pid is not None]
    if not warm:
        it.notes.append("no warm sandbox holds a connection: invocation skipped")
        return
    it.run("read", worker=warm[0])


@handles(Age)
def _age(it: Interpreter, step: Age) -> None:
    t = it.timings
    wait_until_wall(it.last_activity + t.lease_ttl + t.reaper_grace + t.min_idle + 0.05)


@handles(Linger)
def _linger(it: Interpreter, step: Linger) -> None:
    wait_until_wall(time.time() + it.timings.min_idle + 0.05)


@handles(Reclaim)
def _reclaim(it: Interpreter, step: Reclaim) -> None:
    name = it.pick(step.worker)
    if name is not None:
        it.fleet.reclaim(name, blackhole=step.blackhole)


@handles(Reap)
def _reap(it: Interpreter, step: Reap) -> None:
    name = it.pick(step.worker)
    args: dict[str, Any] = {"standalone": True} if step.standalone else {}
    if name is None:
        with contextlib.suppress(FleetAtCapacity):
            it.run("reap", **args)
    else:
        it.run("reap", worker=name, **args)


# -- freezes in the middle of something ----------------------------------------------------


@handles(FreezeMid)
def _freeze_mid(it: Interpreter, step: FreezeMid) -> None:
    nemesis = it.fleet.nemesis
    try:
        if step.what == "query":
            p = nemesis.freeze_mid_query(seconds=it.timings.lease_ttl / 2)
        elif step.what == "tx":
            p = nemesis.freeze_mid_tx()
        else:
            p = nemesis.freeze_mid_reap(pause_at="locked")
            if it.aequor_namespace is not None:
                # a pg-aequor reaper of the service arrives now: it must find its key held
                nemesis.probe_lock(p.worker, it.aequor_namespace, SERVICE_TAG)
    except FleetAtCapacity:
        it.notes.append(f"freeze mid-{step.what} skipped: no worker free")
        return
    except PauseNotReached as exc:
        it.notes.append(f"freeze mid-{step.what} skipped: {exc}")
        return
    except FleetTimeout as exc:
        # The driver never got its statement to the server (or never paused): hung.
        stuck = [w for w in it.fleet.worker_names() if it.fleet.worker(w).state == "busy"]
        it.notes.append(f"freeze mid-{step.what} skipped: {exc}; busy workers: {stuck}")
        return
    it.frozen_ops.append(p)


@handles(Thaw)
def _thaw(it: Interpreter, step: Thaw) -> None:
    if it.frozen_ops:
        it.thaw_and_finish(it.frozen_ops.pop(step.index % len(it.frozen_ops)))


# -- the network and the server ------------------------------------------------------------


@handles(AckLost)
def _ack_lost(it: Interpreter, step: AckLost) -> None:
    # On a warm worker whose lease was just renewed, so the toxic loses the answer
    # to the write itself, not to a connect or a heartbeat before it.
    name = it.an_idle_worker()
    if name is None:
        it.notes.append("ack_lost skipped: no worker free")
        return
    it.run("read", worker=name)
    at_error = step.heal == "at_error"
    try:
        it.fleet.nemesis.ack_lost(f=step.f, worker=name, heal_at_error=at_error)
    except PauseNotReached as exc:
        # a client without execute_once (or that reports no statements): its write's
        # own answer is lost instead
        it.notes.append(f"ack_lost at COMMIT not provoked (the client showed no COMMIT): {exc}")
        it.fleet.nemesis.ack_lost(f="write", worker=name, heal_at_error=at_error)
    it.touch()


@handles(SocketReset)
def _socket_reset(it: Interpreter, step: SocketReset) -> None:
    try:
        p = it.fleet.start("slow_read", seconds=0.3)
    except FleetAtCapacity:
        return
    try:
        it.fleet.nemesis.socket_reset(p, mode=step.mode)
    except FleetTimeout:
        if p.done():
            raise
        # The statement never reached the server within the op timeout: the driver
        # hung before sending it. That is the driver's failure (P4), not the harness's.
        it.notes.append(f"socket reset skipped: op {p.op}'s statement never reached the server")
        p.wait(0.0)
    p.wait()
    it.touch()


@handles(PgRestart)
def _pg_restart(it: Interpreter, step: PgRestart) -> None:
    it.fleet.nemesis.pg_restart()


@handles(TerminateBackend)
def _terminate(it: Interpreter, step: TerminateBackend) -> None:
    name = it.pick(step.worker)
    if name is not None:
        it.fleet.nemesis.terminate_backend(name)


@handles(NetworkFault)
def _network(it: Interpreter, step: NetworkFault) -> None:
    name = it.pick(step.worker)
    if name is None:
        return
    nemesis = it.fleet.nemesis
    if step.fault == "latency":
        nemesis.latency(name, 50)
    elif step.fault == "jitter":
        nemesis.latency(name, 30, jitter_ms=25)
    elif step.fault == "bandwidth":
        nemesis.bandwidth(name, 64)
    else:
        nemesis.proxy_down(name)


@handles(ClockSkew)
def _clock_skew(it: Interpreter, step: ClockSkew) -> None:
    name = it.pick(step.worker)
    if name is not None:
        it.fleet.nemesis.clock_skew(name, step.fraction * it.timings.reaper_grace)


@handles(ForeignBackend)
def _foreign(it: Interpreter, step: ForeignBackend) -> None:
    expired_ms = int((time.time() - 3600) * 1000)
    if step.who == "other_app":
        app, dsn = "psql", it.pg.app_dsn
    elif step.who == "forged":
        app, dsn = f"s={SERVICE_TAG};i=F0rGeD00;e={expired_ms};g=AAAAAAAAAAA", it.pg.app_dsn
    elif step.who == "other_secret":
        app = wire.encode(SERVICE_TAG, "0ther5ec", expired_ms, OTHER_SECRET.encode())
        dsn = it.pg.app_dsn
    else:
        app = wire.encode(SERVICE_TAG, "5uperU5r", expired_ms, SECRET.encode())
        dsn = make_conninfo(it.pg.admin_dsn, dbname=it.pg.app_db)
    conn = psycopg.connect(dsn, autocommit=True, application_name=app)
    pid = conn.info.backend_pid
    it.history.foreign(backend_pid=pid, kind=step.who)
    it.foreign.append(Foreign(step.who, conn, pid))


NEIGHBOUR_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "plain_role": ("thawproof_neighbour", ()),
    "signal_role": ("thawproof_neighbour_signal", ("pg_signal_backend",)),
}
"""The roles neighbours connect as (besides the app role and a superuser): name, groups."""


@handles(Neighbour)
def _neighbour(it: Interpreter, step: Neighbour) -> None:
    app = neighbours.application_name(step, int(time.time() * 1000))
    ours = wire.genuine(app, SERVICE_TAG, SECRET.encode())
    if ours != (step.shape == "genuine"):
        what = "is" if ours else "is not"
        raise HarnessFault(f"neighbour {step.shape!r} built {app!r}, which {what} a genuine lease")
    if step.role == "app":
        dsn = it.pg.app_dsn
    elif step.role == "superuser":
        dsn = make_conninfo(it.pg.admin_dsn, dbname=it.pg.app_db)
    else:
        dsn = it.role_dsn(step.role)
    conn = psycopg.connect(dsn, autocommit=True, application_name=app)
    pid = conn.info.backend_pid
    it.history.foreign(backend_pid=pid, kind="neighbour", shape=step.shape, application_name=app)
    it.foreign.append(Foreign("neighbour", conn, pid))


@handles(CheckpointRestore)
def _checkpoint_restore(it: Interpreter, step: CheckpointRestore) -> None:
    """Frozen with its link blackholed (the snapshot: nothing reaches the process), the
    server ends its idle backend, then restored: removing the blackhole closes the old
    connection, which the client finds dead on first use."""
    fleet = it.fleet
    name = it.pick(step.worker)
    if name is None:
        return
    fleet.freeze(name, value={"cause": "checkpoint"}, blackhole=True)
    fleet.nemesis.terminate_backend(name)
    fleet.thaw(name)
    it.run("read", worker=name)


# -- races made deterministic --------------------------------------------------------------


@handles(QueryOutlivesLease)
def _outlive(it: Interpreter, step: QueryOutlivesLease) -> None:
    t, fleet = it.timings, it.fleet
    seconds = 2 * t.lease_ttl + t.reaper_grace + t.min_idle + 0.5
    try:
        slow = fleet.start("slow_read", seconds=seconds)
    except FleetAtCapacity:
        return
    started = fleet.log.wait_query_started(slow.worker, after=slow.since)
    if started.backend_pid is None:
        raise FleetError("the slow read's query started without a backend")
    fleet.nemesis.wait_backend_active(started.backend_pid, "pg_sleep")
    lease_expiry = started.lease_expiry or time.time() + t.lease_ttl
    wait_until_wall(max(lease_expiry, time.time()) + t.reaper_grace + t.min_idle + 0.05)
    with contextlib.suppress(FleetAtCapacity):
        fleet.start("reap").wait()
    slow.wait()
    it.touch()


@handles(PeerRace)
def _peer_race(it: Interpreter, step: PeerRace) -> None:
    t, fleet = it.timings, it.fleet
    expiry = time.time() + 0.05
    app = wire.encode(SERVICE_TAG, "N0dePeer", int(expiry * 1000), SECRET.encode())
    peer = psycopg.connect(it.pg.app_dsn, autocommit=True, application_name=app)
    pid = peer.info.backend_pid
    it.history.backend(worker="peer", backend_pid=pid, application_name=app, lease_expiry=expiry)
    try:
        wait_until_wall(expiry + t.reaper_grace + t.min_idle + 0.05)
        try:
            reap = fleet.start("reap", pause_at="scanned")
        except FleetAtCapacity:
            return
        if fleet.log.wait_paused(reap.worker, "scanned", after=reap.since, op=reap.op) is None:
            it.notes.append(f"peer race skipped: the reap ended {reap.wait().type} before its scan")
            return
        query = _PeerQuery(it, peer, pid, seconds=0.5)
        query.start()
        fleet.nemesis.wait_backend_active(pid, "pg_sleep")
        fleet.resume(reap.worker)
        reap.wait()
        query.join()
    finally:
        it.history.foreign(backend_pid=pid, kind="peer", f="release")  # before it acts
        peer.close()
    it.touch()


@handles(ReaperRace)
def _reaper_race(it: Interpreter, step: ReaperRace) -> None:
    reapers: list[Pending] = []
    while len(reapers) < step.n:
        try:
            reapers.append(it.fleet.start("reap"))
        except (FleetAtCapacity, WorkerUnavailable):
            break
    for p in reapers:
        p.wait()
    if len(reapers) < 2:
        it.notes.append(f"reaper race: only {len(reapers)} worker(s) free to reap")
    it.touch()


@handles(WriteLockedRow)
def _write_locked_row(it: Interpreter, step: WriteLockedRow) -> None:
    held = [p for p in it.frozen_ops if p.f == "long_tx"]
    if not held:
        it.notes.append("write to a locked row skipped: no frozen transaction holds one")
        return
    row = it.fleet.worker(held[-1].worker).slot
    try:
        write = it.fleet.start("long_tx", row=row, pause=False)
    except FleetAtCapacity:
        it.notes.append("write to a locked row skipped: no worker free")
        return
    # the frozen transaction's lease runs out; then a third sandbox's reaper can end it
    _age(it, Age())
    try:
        it.fleet.start("reap").wait()
    except FleetAtCapacity:
        it.notes.append("write to a locked row: no third worker to reap the frozen holder")
    write.wait()
    it.touch()


@handles(TerminateInTx)
def _terminate_in_tx(it: Interpreter, step: TerminateInTx) -> None:
    try:
        tx = it.fleet.start("long_tx", retryable=step.retryable)
    except FleetAtCapacity:
        it.notes.append("terminate in a transaction skipped: no worker free")
        return
    if it.fleet.log.wait_paused(tx.worker, "tx", after=tx.since, op=tx.op) is None:
        it.notes.append(f"terminate_in_tx: the transaction ended {tx.wait().type} before it paused")
        it.touch()
        return
    try:
        it.fleet.nemesis.terminate_backend(tx.worker)
    finally:
        it.fleet.resume(tx.worker)
    tx.wait()
    it.touch()


@handles(ThawIntoTx)
def _thaw_into_tx(it: Interpreter, step: ThawIntoTx) -> None:
    t, fleet = it.timings, it.fleet
    name = it.pick(step.worker)
    if name is None:
        return
    _age(it, Age())
    tx = fleet.start("long_tx", worker=name)
    if fleet.log.wait_paused(tx.worker, "tx", after=tx.since, op=tx.op) is None:
        it.notes.append(f"thaw_into_tx: the transaction ended {tx.wait().type} before it began")
        it.touch()
        return
    wait_until_wall(time.time() + t.min_idle + 0.05)
    try:
        fleet.start("reap").wait()
    except FleetAtCapacity:
        it.notes.append("thaw_into_tx: no other worker to reap")
    finally:
        fleet.resume(tx.worker)
        tx.wait()
    it.touch()


class _PeerQuery(threading.Thread):
    """The Node peer's query, recorded in the history as worker ``peer``."""

    def __init__(
        self, it: Interpreter, conn: psycopg.Connection[Any], pid: int, seconds: float
    ) -> None:
        super().__init__(name="peer-query", daemon=True)
        self.it, self.conn, self.pid, self.seconds = it, conn, pid, seconds

    def run(self) -> None:
        h = self.it.history
        inv = h.invoke(
            op=f"peer-{self.pid}",
            worker="peer",
            f="slow_read",
            value={"seconds": self.seconds},
            lease_valid=False,
            backend_pid=self.pid,
        )
        try:
            self.conn.execute("SELECT pg_sleep(%s)", (self.seconds,))
        except psycopg.Error as e:
            h.complete(
                inv,
                "fail",
                backend_pid=self.pid,
                error=ErrorInfo(getattr(e, "sqlstate", None), type(e).__name__, str(e)),
            )
        else:
            h.complete(inv, "ok", backend_pid=self.pid)
