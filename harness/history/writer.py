"""The history writer: append-only JSON lines, written as things happen.

Promises:

- :class:`HistoryWriter` writes each event as one line with one ``write(2)``
  on an ``O_APPEND`` descriptor, so every event that :meth:`HistoryWriter.append`
  returned from is in the file even if the process dies a moment later; it is
  safe to call from many threads. Clocks are injected.
- :class:`ProcessTable` gives a worker a fresh history process id after an
  operation of it ended ``info`` (Jepsen's rule: an unknown outcome may still
  be in flight, so the worker goes on as a new process).
"""

from __future__ import annotations

import os
import threading
import time as _time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import HistoryFormatError
from harness.history.codec import dumps
from harness.history.events import (
    COMPLETIONS,
    BackendEvent,
    CompletionType,
    ErrorInfo,
    Event,
    FaultEvent,
    FaultF,
    ForeignEvent,
    ForeignF,
    ForeignKind,
    NeighbourShape,
    OpEvent,
    OpF,
    QueryStartEvent,
    ReapEvent,
    ReapPassEvent,
    ReapPassF,
    ReapResult,
    StepEvent,
    WorkerEvent,
    WorkerF,
)


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
        data = dumps(event).encode()
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
        f: OpF,
        value: Mapping[str, Any],
        lease_valid: bool | None,
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
        f: FaultF,
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
        f: WorkerF,
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
        renewed: bool = False,
        reconnect: bool | None = None,
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
            renewed=renewed,
            reconnect=reconnect,
        )
        self.append(ev)
        return ev

    def reap(
        self,
        *,
        worker: str | None,
        pid: int,
        result: ReapResult,
        application_name: str | None,
        state: str | None,
        state_change: float | None,
        lease_expiry_ms: int | None,
        time: float | None = None,
        wall: float | None = None,
    ) -> ReapEvent:
        """A ledger entry without the reaper's clocks (the fleet appends a full
        :class:`ReapEvent`, with ``idle_for``, ``at`` and ``reaper_pid``)."""
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

    def reap_pass(
        self,
        f: ReapPassF,
        *,
        worker: str | None,
        reaper_pid: int | None,
        server_at: float | None = None,
        candidates: Sequence[int] = (),
        scanned: int | None = None,
        killed: int | None = None,
        error: str | None = None,
        time: float | None = None,
        wall: float | None = None,
    ) -> ReapPassEvent:
        """Record a step of a reaper pass (see :class:`ReapPassEvent`)."""
        t, w = self._times(time, wall)
        ev = ReapPassEvent(
            f=f,
            worker=worker,
            reaper_pid=reaper_pid,
            time=t,
            wall=w,
            server_at=server_at,
            candidates=tuple(candidates),
            scanned=scanned,
            killed=killed,
            error=error,
        )
        self.append(ev)
        return ev

    def query_start(
        self,
        *,
        worker: str,
        backend_pid: int | None,
        lease_expiry: float | None,
        time: float | None = None,
        wall: float | None = None,
    ) -> QueryStartEvent:
        """Record that ``worker``'s client is about to send a statement."""
        t, w = self._times(time, wall)
        ev = QueryStartEvent(
            worker=worker, backend_pid=backend_pid, lease_expiry=lease_expiry, time=t, wall=w
        )
        self.append(ev)
        return ev

    def step(
        self, n: int, text: str, *, time: float | None = None, wall: float | None = None
    ) -> StepEvent:
        """Record that schedule step ``n`` begins."""
        t, w = self._times(time, wall)
        ev = StepEvent(n=n, text=text, time=t, wall=w)
        self.append(ev)
        return ev

    def foreign(
        self,
        *,
        backend_pid: int,
        kind: ForeignKind,
        f: ForeignF = "register",
        shape: NeighbourShape | None = None,
        application_name: str | None = None,
        time: float | None = None,
        wall: float | None = None,
    ) -> ForeignEvent:
        t, w = self._times(time, wall)
        ev = ForeignEvent(
            backend_pid=backend_pid,
            kind=kind,
            f=f,
            shape=shape,
            application_name=application_name,
            time=t,
            wall=w,
        )
        self.append(ev)
        return ev
