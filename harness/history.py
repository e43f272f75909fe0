"""The run's history: append-only JSON lines, written as things happen.

Jepsen's model. Every operation is an ``invoke`` followed by exactly one of
``ok``, ``fail`` (it definitely did not happen) or ``info`` (unknown: it may or
may not have taken effect). A worker whose operation ended ``info`` continues
under a new history process id. Faults, worker lifecycle, backend mappings,
reaper ledger entries and foreign-backend registrations are events too.

Promises:

- :class:`HistoryWriter` writes each event as one line with one ``write(2)``
  on an ``O_APPEND`` descriptor, so every event that :meth:`HistoryWriter.append`
  returned from is in the file even if the process dies a moment later; it is
  safe to call from many threads.
- :func:`load_history` reads back exactly what was written (``event_from_json``
  is the inverse of ``event_to_json``); a torn last line, which a crash can
  leave, is dropped; any other malformed line raises :class:`HistoryFormatError`.
- :func:`validate_history` reports, without raising, every way a history breaks
  the invoke/complete discipline.

Times: ``time`` is ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every
process on Linux), ``wall`` is the harness's true ``time.time()``.
"""

from __future__ import annotations

import json
import os
import threading
import time as _time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast, get_args

from harness.errors import HarnessError

OpType = Literal["invoke", "ok", "fail", "info"]
CompletionType = Literal["ok", "fail", "info"]
OpF = Literal["write", "write_once", "read", "slow_read", "long_tx", "burst", "reap"]
FaultF = Literal[
    "freeze",
    "thaw",
    "reclaim",
    "freeze_mid_query",
    "freeze_mid_tx",
    "freeze_mid_reap",
    "socket_reset",
    "ack_lost",
    "latency",
    "bandwidth",
    "proxy_down",
    "proxy_up",
    "pg_restart",
    "terminate_backend",
    "clock_skew",
    "heal",
]
WorkerF = Literal["spawn", "exit", "crash"]
ReapResult = Literal["killed", "skipped", "denied"]
ForeignKind = Literal["other_app", "forged", "other_secret", "superuser"]
ForeignF = Literal["register", "release"]

COMPLETIONS: frozenset[str] = frozenset(get_args(CompletionType))
WRITE_FS: frozenset[str] = frozenset({"write", "write_once"})
FREEZE_FAULTS: frozenset[str] = frozenset(
    {"freeze", "freeze_mid_query", "freeze_mid_tx", "freeze_mid_reap"}
)
"""Faults that start a frozen interval of their worker."""
UNFREEZE_FAULTS: frozenset[str] = frozenset({"thaw", "reclaim"})
"""Faults that end a frozen interval (reclaim also ends the worker)."""


class HistoryFormatError(HarnessError):
    """A history file or event is malformed; the run cannot be judged (exit status 2)."""


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The error an operation ended with, as the caller saw it."""

    sqlstate: str | None
    cls: str
    """The exception class name (JSON key ``class``)."""
    message: str


@dataclass(frozen=True, slots=True)
class OpEvent:
    """An operation's invoke or completion. ``op`` pairs them."""

    type: OpType
    op: str
    process: int
    worker: str | None
    f: str
    value: Mapping[str, Any]
    time: float
    wall: float
    lease_valid: bool | None = None
    """Invoke only: the worker's lease was valid by true wall time at the start."""
    backend_pid: int | None = None
    error: ErrorInfo | None = None
    """Completions only."""

    @property
    def sqlstate(self) -> str | None:
        return self.error.sqlstate if self.error else None


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """A fault the nemesis applied (or healed)."""

    f: str
    worker: str | None
    value: Mapping[str, Any]
    time: float
    wall: float
    type: Literal["fault"] = "fault"


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """A worker process was spawned, exited, or crashed (not a reclaim)."""

    f: str
    worker: str
    os_pid: int
    exitcode: int | None
    detail: str | None
    time: float
    wall: float
    type: Literal["worker"] = "worker"


@dataclass(frozen=True, slots=True)
class BackendEvent:
    """A worker's client (re)connected to, or renewed its lease on, a backend."""

    worker: str
    backend_pid: int
    application_name: str
    lease_expiry: float
    """Wall seconds."""
    time: float
    wall: float
    type: Literal["backend"] = "backend"


@dataclass(frozen=True, slots=True)
class ReapEvent:
    """One reaper ledger entry: what a reaper did to one victim backend."""

    worker: str | None
    pid: int
    result: str
    application_name: str | None
    state: str | None
    state_change: float | None
    """Wall seconds, from the scanned ``pg_stat_activity`` row."""
    lease_expiry_ms: int | None
    time: float
    wall: float
    type: Literal["reap"] = "reap"


@dataclass(frozen=True, slots=True)
class ForeignEvent:
    """A backend that is not the service's own was registered (or released by the harness)."""

    backend_pid: int
    kind: str
    time: float
    wall: float
    f: str = "register"
    worker: str | None = None
    type: Literal["foreign"] = "foreign"


Event: TypeAlias = OpEvent | FaultEvent | WorkerEvent | BackendEvent | ReapEvent | ForeignEvent


# ----------------------------------------------------------------- (de)serialisation


def event_to_json(event: Event) -> dict[str, Any]:
    """The event as the JSON object the history file holds."""
    if isinstance(event, OpEvent):
        out: dict[str, Any] = {
            "type": event.type,
            "op": event.op,
            "process": event.process,
            "worker": event.worker,
            "f": event.f,
            "value": dict(event.value),
            "time": event.time,
            "wall": event.wall,
            "backend_pid": event.backend_pid,
        }
        if event.type == "invoke":
            out["lease_valid"] = event.lease_valid
        else:
            err = event.error
            out["error"] = (
                None
                if err is None
                else {"sqlstate": err.sqlstate, "class": err.cls, "message": err.message}
            )
        return out
    if isinstance(event, FaultEvent):
        return {
            "type": "fault",
            "f": event.f,
            "worker": event.worker,
            "value": dict(event.value),
            "time": event.time,
            "wall": event.wall,
        }
    if isinstance(event, WorkerEvent):
        return {
            "type": "worker",
            "f": event.f,
            "worker": event.worker,
            "os_pid": event.os_pid,
            "exitcode": event.exitcode,
            "detail": event.detail,
            "time": event.time,
            "wall": event.wall,
        }
    if isinstance(event, BackendEvent):
        return {
            "type": "backend",
            "worker": event.worker,
            "backend_pid": event.backend_pid,
            "application_name": event.application_name,
            "lease_expiry": event.lease_expiry,
            "time": event.time,
            "wall": event.wall,
        }
    if isinstance(event, ReapEvent):
        return {
            "type": "reap",
            "worker": event.worker,
            "pid": event.pid,
            "result": event.result,
            "application_name": event.application_name,
            "state": event.state,
            "state_change": event.state_change,
            "lease_expiry_ms": event.lease_expiry_ms,
            "time": event.time,
            "wall": event.wall,
        }
    return {
        "type": "foreign",
        "f": event.f,
        "backend_pid": event.backend_pid,
        "kind": event.kind,
        "worker": event.worker,
        "time": event.time,
        "wall": event.wall,
    }


class _Fields:
    """Typed access to one JSON object, naming the field in every error."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def _get(self, key: str, types: tuple[type, ...], optional: bool) -> Any:
        if key not in self.raw:
            if optional:
                return None
            raise HistoryFormatError(f"missing field {key!r} in {self._kind()} event")
        v = self.raw[key]
        if v is None and optional:
            return None
        if isinstance(v, bool) and bool not in types:
            raise HistoryFormatError(f"field {key!r} of {self._kind()} event is a bool")
        if not isinstance(v, types):
            names = "/".join(t.__name__ for t in types)
            raise HistoryFormatError(
                f"field {key!r} of {self._kind()} event should be {names}, got {v!r}"
            )
        return v

    def _kind(self) -> str:
        return str(self.raw.get("type", "?"))

    def str_(self, key: str) -> str:
        return cast(str, self._get(key, (str,), False))

    def opt_str(self, key: str) -> str | None:
        return cast("str | None", self._get(key, (str,), True))

    def int_(self, key: str) -> int:
        return cast(int, self._get(key, (int,), False))

    def opt_int(self, key: str) -> int | None:
        return cast("int | None", self._get(key, (int,), True))

    def num(self, key: str) -> float:
        return float(self._get(key, (int, float), False))

    def opt_num(self, key: str) -> float | None:
        v = self._get(key, (int, float), True)
        return None if v is None else float(v)

    def opt_bool(self, key: str) -> bool | None:
        return cast("bool | None", self._get(key, (bool,), True))

    def mapping(self, key: str) -> Mapping[str, Any]:
        v = self._get(key, (dict,), True)
        return {} if v is None else cast("dict[str, Any]", v)


def _error_from_json(raw: Any) -> ErrorInfo | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise HistoryFormatError(f"field 'error' should be an object or null, got {raw!r}")
    g = _Fields({"type": "error", **raw})
    return ErrorInfo(sqlstate=g.opt_str("sqlstate"), cls=g.str_("class"), message=g.str_("message"))


def event_from_json(raw: Mapping[str, Any]) -> Event:
    """Parse one history object; raise :class:`HistoryFormatError` naming what is wrong."""
    g = _Fields(raw)
    kind = g.str_("type")
    t, w = g.num("time"), g.num("wall")
    if kind in ("invoke", "ok", "fail", "info"):
        return OpEvent(
            type=cast(OpType, kind),
            op=g.str_("op"),
            process=g.int_("process"),
            worker=g.opt_str("worker"),
            f=g.str_("f"),
            value=g.mapping("value"),
            time=t,
            wall=w,
            lease_valid=g.opt_bool("lease_valid") if kind == "invoke" else None,
            backend_pid=g.opt_int("backend_pid"),
            error=None if kind == "invoke" else _error_from_json(raw.get("error")),
        )
    if kind == "fault":
        return FaultEvent(
            f=g.str_("f"), worker=g.opt_str("worker"), value=g.mapping("value"), time=t, wall=w
        )
    if kind == "worker":
        return WorkerEvent(
            f=g.str_("f"),
            worker=g.str_("worker"),
            os_pid=g.int_("os_pid"),
            exitcode=g.opt_int("exitcode"),
            detail=g.opt_str("detail"),
            time=t,
            wall=w,
        )
    if kind == "backend":
        return BackendEvent(
            worker=g.str_("worker"),
            backend_pid=g.int_("backend_pid"),
            application_name=g.str_("application_name"),
            lease_expiry=g.num("lease_expiry"),
            time=t,
            wall=w,
        )
    if kind == "reap":
        return ReapEvent(
            worker=g.opt_str("worker"),
            pid=g.int_("pid"),
            result=g.str_("result"),
            application_name=g.opt_str("application_name"),
            state=g.opt_str("state"),
            state_change=g.opt_num("state_change"),
            lease_expiry_ms=g.opt_int("lease_expiry_ms"),
            time=t,
            wall=w,
        )
    if kind == "foreign":
        return ForeignEvent(
            backend_pid=g.int_("backend_pid"),
            kind=g.str_("kind"),
            f=g.opt_str("f") or "register",
            worker=g.opt_str("worker"),
            time=t,
            wall=w,
        )
    raise HistoryFormatError(f"unknown event type {kind!r}")


def dumps_event(event: Event) -> str:
    """One history line, newline included."""
    return json.dumps(event_to_json(event), separators=(",", ":"), allow_nan=False) + "\n"


# --------------------------------------------------------------------------- writing


class ProcessTable:
    """Which history process id each worker currently runs under.

    A worker gets a fresh id the first time it is seen and again after
    :meth:`retire` (called when one of its operations ended ``info``). Ids are
    never reused. Thread-safe.
    """

    def __init__(self, start: int = 0) -> None:
        self._lock = threading.Lock()
        self._next = start
        self._current: dict[str, int] = {}

    def current(self, worker: str) -> int:
        with self._lock:
            if worker not in self._current:
                self._current[worker] = self._next
                self._next += 1
            return self._current[worker]

    def retire(self, worker: str, process: int | None = None) -> int:
        """Give ``worker`` a new process id (only if it still runs under ``process``)."""
        with self._lock:
            if process is None or self._current.get(worker) == process:
                self._current[worker] = self._next
                self._next += 1
            return self._current[worker]


class HistoryWriter:
    """Appends events to a JSON-lines history as they happen.

    Each :meth:`append` is one ``write(2)`` of one whole line on an ``O_APPEND``
    descriptor, under a lock: nothing is buffered in this process, lines never
    interleave, and a crash loses at most the event being written. The event
    helpers stamp ``time`` and ``wall`` from the injected clocks unless given.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        monotonic: Callable[[], float] = _time.monotonic,
        wall: Callable[[], float] = _time.time,
        fsync: bool = False,
    ) -> None:
        self.path = Path(path)
        self._monotonic = monotonic
        self._wall = wall
        self._fsync = fsync
        self._lock = threading.Lock()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.processes = ProcessTable()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def stamp(self) -> tuple[float, float]:
        """(monotonic, wall) now, from the writer's clocks."""
        return self._monotonic(), self._wall()

    def append(self, event: Event) -> Event:
        """Write ``event`` durably (to the OS; to disk too with ``fsync=True``)."""
        data = dumps_event(event).encode()
        with self._lock:
            if self._fd is None:
                raise HistoryFormatError(f"history {self.path} is closed")
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if self._fsync:
                os.fsync(self._fd)
        return event

    def _times(self, t: float | None, w: float | None) -> tuple[float, float]:
        return (self._monotonic() if t is None else t, self._wall() if w is None else w)

    # -- operations

    def invoke(
        self,
        *,
        op: str,
        worker: str | None,
        f: str,
        value: Mapping[str, Any],
        lease_valid: bool,
        process: int | None = None,
        backend_pid: int | None = None,
        time: float | None = None,
        wall: float | None = None,
    ) -> OpEvent:
        """Record an invoke; ``process`` defaults to the worker's current process id."""
        if process is None:
            if worker is None:
                raise HistoryFormatError("an invoke needs a process id or a worker")
            process = self.processes.current(worker)
        t, w = self._times(time, wall)
        ev = OpEvent(
            type="invoke",
            op=op,
            process=process,
            worker=worker,
            f=f,
            value=dict(value),
            time=t,
            wall=w,
            lease_valid=lease_valid,
            backend_pid=backend_pid,
        )
        self.append(ev)
        return ev

    def complete(
        self,
        invoke: OpEvent,
        type: CompletionType,
        *,
        error: ErrorInfo | None = None,
        backend_pid: int | None = None,
        value: Mapping[str, Any] | None = None,
        time: float | None = None,
        wall: float | None = None,
    ) -> OpEvent:
        """Record the completion of ``invoke``. After ``info`` the worker's process is retired."""
        if type not in COMPLETIONS:
            raise HistoryFormatError(f"not a completion type: {type!r}")
        t, w = self._times(time, wall)
        ev = OpEvent(
            type=type,
            op=invoke.op,
            process=invoke.process,
            worker=invoke.worker,
            f=invoke.f,
            value=dict(invoke.value if value is None else value),
            time=t,
            wall=w,
            backend_pid=backend_pid,
            error=error,
        )
        self.append(ev)
        if type == "info" and invoke.worker is not None:
            self.processes.retire(invoke.worker, invoke.process)
        return ev

    # -- everything else

    def fault(
        self,
        f: str,
        *,
        worker: str | None = None,
        value: Mapping[str, Any] | None = None,
        time: float | None = None,
        wall: float | None = None,
    ) -> FaultEvent:
        t, w = self._times(time, wall)
        ev = FaultEvent(f=f, worker=worker, value=dict(value or {}), time=t, wall=w)
        self.append(ev)
        return ev

    def worker_event(
        self,
        f: str,
        *,
        worker: str,
        os_pid: int,
        exitcode: int | None = None,
        detail: str | None = None,
        time: float | None = None,
        wall: float | None = None,
    ) -> WorkerEvent:
        t, w = self._times(time, wall)
        ev = WorkerEvent(
            f=f, worker=worker, os_pid=os_pid, exitcode=exitcode, detail=detail, time=t, wall=w
        )
        self.append(ev)
        return ev

    def backend(
        self,
        *,
        worker: str,
        backend_pid: int,
        application_name: str,
        lease_expiry: float,
        time: float | None = None,
        wall: float | None = None,
    ) -> BackendEvent:
        t, w = self._times(time, wall)
        ev = BackendEvent(
            worker=worker,
            backend_pid=backend_pid,
            application_name=application_name,
            lease_expiry=lease_expiry,
            time=t,
            wall=w,
        )
        self.append(ev)
        return ev

    def reap(
        self,
        *,
        worker: str | None,
        pid: int,
        result: str,
        application_name: str | None,
        state: str | None,
        state_change: float | None,
        lease_expiry_ms: int | None,
        time: float | None = None,
        wall: float | None = None,
    ) -> ReapEvent:
        t, w = self._times(time, wall)
        ev = ReapEvent(
            worker=worker,
            pid=pid,
            result=result,
            application_name=application_name,
            state=state,
            state_change=state_change,
            lease_expiry_ms=lease_expiry_ms,
            time=t,
            wall=w,
        )
        self.append(ev)
        return ev

    def foreign(
        self,
        *,
        backend_pid: int,
        kind: str,
        f: str = "register",
        time: float | None = None,
        wall: float | None = None,
    ) -> ForeignEvent:
        t, w = self._times(time, wall)
        ev = ForeignEvent(backend_pid=backend_pid, kind=kind, f=f, time=t, wall=w)
        self.append(ev)
        return ev


# --------------------------------------------------------------------------- reading


def parse_history_lines(lines: Iterable[str], *, source: str = "<history>") -> list[Event]:
    """Parse history lines; blank lines are skipped, anything else malformed raises."""
    events: list[Event] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryFormatError(f"{source}:{n}: not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise HistoryFormatError(f"{source}:{n}: not a JSON object")
        try:
            events.append(event_from_json(raw))
        except HistoryFormatError as exc:
            raise HistoryFormatError(f"{source}:{n}: {exc}") from exc
    return events


def load_history(path: str | os.PathLike[str], *, allow_torn_tail: bool = True) -> list[Event]:
    """Read a history file back, in file order.

    A last line without its newline is what a crash mid-write leaves; with
    ``allow_torn_tail`` it is dropped if it does not parse (and kept if it does).
    """
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    events = parse_history_lines(lines, source=str(path))
    if tail.strip():
        try:
            events.extend(parse_history_lines([tail], source=str(path)))
        except HistoryFormatError:
            if not allow_torn_tail:
                raise
    return events


# ------------------------------------------------------------------------ validation


@dataclass(frozen=True, slots=True)
class Problem:
    """One way a history breaks the invoke/complete discipline."""

    kind: str
    message: str
    op: str | None = None
    process: int | None = None
    indexes: tuple[int, ...] = field(default=())
    """Positions of the offending events in the history."""


def validate_history(events: Iterable[Event]) -> list[Problem]:
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


# ------------------------------------------------- what is recorded beside the history


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One ``pg_stat_activity`` row of a sample. Wall-clock fields are server seconds."""

    pid: int
    application_name: str | None = None
    state: str | None = None
    state_change: float | None = None
    backend_start: float | None = None
    xact_start: float | None = None
    usename: str | None = None
    backend_type: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ActivityRow:
        g = _Fields({"type": "activity row", **raw})
        return cls(
            pid=g.int_("pid"),
            application_name=g.opt_str("application_name"),
            state=g.opt_str("state"),
            state_change=g.opt_num("state_change"),
            backend_start=g.opt_num("backend_start"),
            xact_start=g.opt_num("xact_start"),
            usename=g.opt_str("usename"),
            backend_type=g.opt_str("backend_type"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "application_name": self.application_name,
            "state": self.state,
            "state_change": self.state_change,
            "backend_start": self.backend_start,
            "xact_start": self.xact_start,
            "usename": self.usename,
            "backend_type": self.backend_type,
        }


@dataclass(frozen=True, slots=True)
class Sample:
    """One snapshot of ``pg_stat_activity``, taken at harness ``time``/``wall``."""

    time: float
    wall: float
    rows: tuple[ActivityRow, ...]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Sample:
        g = _Fields({"type": "sample", **raw})
        rows = raw.get("rows", [])
        if not isinstance(rows, list):
            raise HistoryFormatError("field 'rows' of sample should be a list")
        return cls(g.num("time"), g.num("wall"), tuple(ActivityRow.from_json(r) for r in rows))

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "wall": self.wall, "rows": [r.to_json() for r in self.rows]}

    def pids(self) -> frozenset[int]:
        return frozenset(r.pid for r in self.rows)

    def row(self, pid: int) -> ActivityRow | None:
        return next((r for r in self.rows if r.pid == pid), None)


@dataclass(frozen=True, slots=True)
class FinalState:
    """The database at the end of the run: ledger rows per op_id, the counter, the row total."""

    ledger_counts: Mapping[str, int]
    counter: int
    ledger_rows: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FinalState:
        g = _Fields({"type": "final state", **raw})
        counts = g.mapping("ledger_counts")
        if not all(isinstance(k, str) and isinstance(v, int) for k, v in counts.items()):
            raise HistoryFormatError("ledger_counts should map op_id strings to integers")
        return cls(dict(counts), g.int_("counter"), g.int_("ledger_rows"))

    def to_json(self) -> dict[str, Any]:
        return {
            "ledger_counts": dict(self.ledger_counts),
            "counter": self.counter,
            "ledger_rows": self.ledger_rows,
        }
