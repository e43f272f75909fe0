"""Small builders for recorded runs: histories, samples and final states.

Times are seconds on the monotonic clock; ``wall(t)`` is the true wall time at
monotonic ``t`` (``WALL0 + t``), so a lease "valid until t=5" is
``lease("a", until=5)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from harness.check import Run, RunConfig
from harness.history import (
    ActivityRow,
    BackendEvent,
    ErrorInfo,
    Event,
    FaultEvent,
    FaultF,
    FinalState,
    ForeignEvent,
    ForeignF,
    ForeignKind,
    OpEvent,
    OpF,
    OpType,
    QueryStartEvent,
    ReapEvent,
    ReapPassEvent,
    ReapPassF,
    ReapResult,
    Sample,
    WorkerEvent,
)

WALL0 = 1_767_225_600.0
SERVICE = "orders"
PREFIX = f"s={SERVICE};"
GOOD_SIG = "GOODsig0000"


def wall(t: float) -> float:
    return WALL0 + t


def lease(instance: str, until: float, *, sig: str = GOOD_SIG, service: str = SERVICE) -> str:
    """An application_name whose lease expires at monotonic ``until``."""
    return f"s={service};i={instance};e={round(wall(until) * 1000)};g={sig}"


@dataclass
class H:
    """A history under construction. Every method appends one event."""

    events: list[Event] = field(default_factory=list)
    _process: dict[str, int] = field(default_factory=dict)
    _next_process: int = 0
    _invokes: dict[str, OpEvent] = field(default_factory=dict)
    _n: int = 0

    def process(self, worker: str) -> int:
        if worker not in self._process:
            self._process[worker] = self._next_process
            self._next_process += 1
        return self._process[worker]

    def invoke(
        self,
        worker: str,
        t: float,
        f: OpF = "read",
        *,
        op: str | None = None,
        lease_valid: bool = True,
        pid: int | None = None,
        value: dict[str, Any] | None = None,
    ) -> str:
        self._n += 1
        op = op or f"{worker}-{self._n}"
        ev = OpEvent(
            "invoke",
            op,
            self.process(worker),
            worker,
            f,
            value or {},
            t,
            wall(t),
            lease_valid=lease_valid,
            backend_pid=pid,
        )
        self._invokes[op] = ev
        self.events.append(ev)
        return op

    def write(self, worker: str, t: float, op_id: str, *, amount: int = 1, **kw: Any) -> str:
        return self.invoke(
            worker, t, "write", op=op_id, value={"op_id": op_id, "amount": amount}, **kw
        )

    def complete(
        self,
        op: str,
        t: float,
        type: str,
        *,
        sqlstate: str | None = None,
        cls: str | None = None,
        message: str = "",
        pid: int | None = None,
    ) -> H:
        inv = self._invokes[op]
        err = None
        if sqlstate is not None or cls is not None:
            err = ErrorInfo(sqlstate, cls or "DatabaseError", message)
        self.events.append(
            OpEvent(
                cast(OpType, type),
                op,
                inv.process,
                inv.worker,
                inv.f,
                inv.value,
                t,
                wall(t),
                backend_pid=pid if pid is not None else inv.backend_pid,
                error=err,
            )
        )
        if type == "info" and inv.worker is not None:
            self._process[inv.worker] = self._next_process
            self._next_process += 1
        return self

    def ok(self, op: str, t: float, **kw: Any) -> H:
        return self.complete(op, t, "ok", **kw)

    def fail(self, op: str, t: float, **kw: Any) -> H:
        return self.complete(op, t, "fail", **kw)

    def info(self, op: str, t: float, **kw: Any) -> H:
        return self.complete(op, t, "info", **kw)

    def fault(self, f: FaultF, t: float, worker: str | None = None, **value: Any) -> H:
        self.events.append(FaultEvent(f, worker, value, t, wall(t)))
        return self

    def spawn(self, worker: str, t: float, os_pid: int = 4000) -> H:
        self.events.append(WorkerEvent("spawn", worker, os_pid, None, None, t, wall(t)))
        return self

    def crash(self, worker: str, t: float, detail: str = "TypeError in on_error") -> H:
        self.events.append(WorkerEvent("crash", worker, 4000, 1, detail, t, wall(t)))
        return self

    def backend(
        self,
        worker: str,
        pid: int,
        t: float,
        *,
        until: float,
        instance: str = "",
        renewed: bool = False,
        local_until: float | None = None,
    ) -> H:
        """``worker`` is on ``pid`` with a lease until ``until`` (its local expiry
        ``local_until``, the same unless a test says otherwise)."""
        app = lease(instance or worker, until)
        local = wall(until if local_until is None else local_until)
        self.events.append(BackendEvent(worker, pid, app, local, t, wall(t), renewed=renewed))
        return self

    def query(self, worker: str, pid: int | None, t: float, *, until: float | None) -> H:
        """``worker``'s client is about to send on ``pid`` holding a lease until ``until``."""
        local = None if until is None else wall(until)
        self.events.append(QueryStartEvent(worker, pid, local, t, wall(t)))
        return self

    def reap_step(
        self,
        f: ReapPassF,
        t: float,
        *,
        reaper: str = "reaper",
        reaper_pid: int = 900,
        server_at: float | None = None,
        candidates: tuple[int, ...] = (),
        error: str | None = None,
    ) -> H:
        """A step of a reaper pass; ``server_at`` is a monotonic time (the server's clock
        is recorded as wall seconds), by default ``t``."""
        server = wall(t if server_at is None else server_at)
        self.events.append(
            ReapPassEvent(
                f, reaper, reaper_pid, t, wall(t), server, candidates=candidates, error=error
            )
        )
        return self

    def reap(
        self,
        pid: int,
        t: float,
        *,
        reaper: str = "reaper",
        result: ReapResult = "killed",
        app: str | None = None,
        until: float = 0.0,
        state: str | None = "idle",
        state_change: float | None = 0.0,
        **clocks: Any,
    ) -> H:
        """A ledger entry. ``clocks``: ``idle_for`` (s), ``at`` (the reaper's clock, a
        monotonic time like ``t``), ``reaper_pid``."""
        at = clocks.get("at")
        app = app if app is not None else lease(f"p{pid}", until)
        sc = None if state_change is None else wall(state_change)
        self.events.append(
            ReapEvent(
                reaper,
                pid,
                result,
                app,
                state,
                sc,
                None,
                t,
                wall(t),
                idle_for=clocks.get("idle_for"),
                at=None if at is None else wall(at),
                reaper_pid=clocks.get("reaper_pid"),
            )
        )
        return self

    def foreign(
        self, pid: int, t: float, kind: ForeignKind = "other_app", f: ForeignF = "register"
    ) -> H:
        self.events.append(ForeignEvent(pid, kind, t, wall(t), f=f))
        return self


def row(
    pid: int,
    app: str | None,
    state: str = "idle",
    state_change: float = 0.0,
    *,
    usename: str | None = None,
    superuser: bool | None = None,
) -> ActivityRow:
    return ActivityRow(
        pid=pid,
        application_name=app,
        state=state,
        state_change=wall(state_change),
        backend_type="client backend",
        usename=usename,
        superuser=superuser,
    )


def sample(t: float, *rows: ActivityRow) -> Sample:
    return Sample(t, wall(t), tuple(rows))


def own_rows(n: int, first_pid: int = 500) -> list[ActivityRow]:
    """``n`` idle service backends."""
    return [row(first_pid + i, lease(f"z{i}", 0.0)) for i in range(n)]


def samples_by_count(
    start: float, stop: float, step: float, count: Callable[[float], int]
) -> list[Sample]:
    """Samples every ``step`` s in [start, stop) with ``count(t)`` service backends each."""
    out, t = [], start
    while t < stop - 1e-9:
        out.append(sample(round(t, 6), *own_rows(count(t))))
        t += step
    return out


def final(
    counts: dict[str, int] | None = None, *, counter: int | None = None, rows: int | None = None
) -> FinalState:
    counts = counts or {}
    total = sum(counts.values())
    return FinalState(
        counts, total if counter is None else counter, total if rows is None else rows
    )


def verify(app: str) -> bool:
    """The tests' stand-in for signature verification: the good signature."""
    return app.endswith(f";g={GOOD_SIG}")


def run_config(**overrides: Any) -> RunConfig:
    """A small run's config: TTL, minimum idle, cooldown and slack of 1 s (bound 4 s),
    grace 0.1 s, fence margin 0.1 s, at most 2 kills a pass."""
    base: dict[str, Any] = {
        "service": SERVICE,
        "connection_limit": 3,
        "lease_ttl": 1.0,
        "min_idle": 1.0,
        "max_cooldown": 1.0,
        "grace": 0.1,
        "slack": 1.0,
        "retry_budget_s": 1.0,
        "verify": verify,
        "max_kills": 2,
        "fence_margin": 0.1,
    }
    base.update(overrides)
    return RunConfig(**base)


def recorded(h: H, samples: Iterable[Sample] = (), **cfg: Any) -> Run:
    """The run of history ``h`` with ``samples``, no writes, and :func:`run_config`."""
    return Run(list(h.events), list(samples), final(), run_config(**cfg))
