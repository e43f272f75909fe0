"""``FleetCore``: Lambda-like worker processes behind their own proxies, and routing.

The faults live in :mod:`harness.fleet.fleet` (``Fleet`` adds them to this core).

Owns (and releases on every exit path, Ctrl-C and interpreter exit included):
the worker processes, one proxy per worker on the Toxiproxy server, one reader
thread per worker pipe, and the history writer when it was given a path.

Routing follows Lambda: :meth:`Fleet.start` sends an invocation to an idle warm
worker (thawed first if frozen), else cold-starts one up to ``max_workers``
(:class:`FleetAtCapacity` beyond); when the invocation returns, the worker is
frozen (SIGSTOP) at once. Freezes and thaws done by routing are recorded as
``freeze``/``thaw`` faults with ``value.cause`` = ``idle``/``invoke``: a frozen
worker is what makes zombies, whoever froze it.

Waiting: every message from a worker, and every fault and lifecycle event, is
appended to an in-memory event log guarded by a condition variable;
:meth:`Fleet.wait_for` waits (with a deadline that fails loudly) for the first
event after a :meth:`Fleet.mark` that matches a predicate.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing as mp
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Self

import psycopg

from harness.fleet import _sockets, _worker, procs, schema
from harness.fleet.links import WorkerLink
from harness.fleet.pending import (
    FleetAtCapacity,
    FleetError,
    FleetTimeout,
    OpResult,
    Pending,
    WorkerUnavailable,
)
from harness.fleet.spec import DEFAULT_CLIENT, OP_FS, WorkerSpec
from harness.history import ErrorInfo, FinalState, HistoryWriter, OpEvent
from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer

_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(["psycopg", "harness.lease", "harness.fleet._worker"])

Event = dict[str, Any]


@dataclass(frozen=True)
class FleetConfig:
    """How the fleet's workers are built and how long the fleet waits for them."""

    lease: Mapping[str, Any]
    """``LeaseConfig`` keyword arguments (service, secret, lease_ttl, ...) except ``clock``."""
    max_workers: int = 4
    """Concurrency cap: live workers at most."""
    client_class: str = DEFAULT_CLIENT
    client_kwargs: Mapping[str, Any] = field(default_factory=dict)
    freeze_idle: bool = True
    """Freeze a worker as soon as its invocation returns (Lambda)."""
    run_id: str = ""
    """Prefix of proxy names and op ids; random when empty."""
    op_timeout: float = 30.0
    """Default deadline of ``Pending.wait`` and of the fleet's waits for sync points."""
    signal_timeout: float = 5.0
    """Deadline for a signal to take effect (stopped, continued, dead)."""
    stop_grace: float = 3.0
    """At teardown, how long a worker may take to exit after ``stop`` before SIGKILL."""


class _Worker:
    """The controller's record of one worker process."""

    def __init__(self, name: str, number: int, slot: int) -> None:
        self.name = name
        self.number = number
        self.slot = slot
        self.state = "starting"  # starting | idle | busy | dead
        self.frozen = False
        self.blackholed = False
        self.paused_at: str | None = None
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.link: WorkerLink | None = None
        self.os_pid = 0
        self.pending: Pending | None = None
        self.invokes: dict[str, OpEvent] = {}
        self.reader: threading.Thread | None = None
        self.exited = threading.Event()
        self.end_reason: str | None = None  # reclaim | stop
        self.crash_tb: str | None = None
        self.backend_pid: int | None = None
        self.lease_expiry: float | None = None
        self.held_fds: list[int] = []
        """Duplicates of a reclaimed worker's sockets, held so its death sends no FIN."""
        self.on_error: list[Callable[[], None]] = []
        """Run once, in the reader thread, at the worker's next query error or op end."""

    @property
    def alive(self) -> bool:
        return self.state != "dead"


class FleetCore:
    """Lambda-like workers, their proxies and the history of what happened to them."""

    def __init__(
        self,
        pg: PostgresServer,
        toxiproxy: ToxiproxyServer,
        history: HistoryWriter | str | os.PathLike[str],
        config: FleetConfig,
    ) -> None:
        if config.max_workers < 1:
            raise FleetError(f"max_workers must be at least 1, got {config.max_workers}")
        self.pg = pg
        self.toxiproxy = toxiproxy
        self.config = config
        self.run_id = config.run_id or f"fleet-{secrets.token_hex(3)}"
        self._owns_history = not isinstance(history, HistoryWriter)
        self.history = history if isinstance(history, HistoryWriter) else HistoryWriter(history)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._log: list[Event] = []
        self._workers: dict[str, _Worker] = {}
        self._numbers = itertools.count(1)
        self._op_seq = itertools.count(1)
        self._closed = False
        self.dedup_table = str(config.lease.get("dedup_table", "lease_dedup"))
        atexit.register(self.close)
        try:
            schema.setup(self.pg.app_dsn, slots=config.max_workers, dedup_table=self.dedup_table)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries

    def worker_names(self, *, alive: bool = True) -> list[str]:
        with self._lock:
            return [w.name for w in self._workers.values() if w.alive or not alive]

    def os_pid(self, worker: str) -> int:
        return self._get(worker).os_pid

    def backend_pid(self, worker: str) -> int | None:
        """The backend the worker's client last reported (None after it dropped it)."""
        return self._get(worker).backend_pid

    def is_frozen(self, worker: str) -> bool:
        return self._get(worker).frozen

    def state(self, worker: str) -> str:
        return self._get(worker).state

    def link(self, worker: str) -> WorkerLink:
        link = self._get(worker).link
        if link is None:
            raise WorkerUnavailable(f"worker {worker} has no proxy yet")
        return link

    def _get(self, name: str) -> _Worker:
        with self._lock:
            w = self._workers.get(name)
        if w is None:
            raise WorkerUnavailable(f"no worker named {name!r}")
        return w

    # ------------------------------------------------------------------ the event log

    def mark(self) -> int:
        """The current position of the event log (pass it as ``after`` to :meth:`wait_for`)."""
        with self._lock:
            return len(self._log)

    def events(self, after: int = 0) -> list[Event]:
        with self._lock:
            return list(self._log[after:])

    def wait_for(
        self,
        predicate: Callable[[Event], bool],
        timeout: float | None = None,
        *,
        after: int = 0,
        what: str = "an event",
    ) -> Event:
        """The first event at or after position ``after`` matching ``predicate``."""
        limit = self.config.op_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._cond:
            i = after
            while True:
                while i < len(self._log):
                    ev = self._log[i]
                    i += 1
                    if predicate(ev):
                        return ev
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FleetTimeout(f"no {what} within {limit}s")
                self._cond.wait(remaining)

    def wait_query_started(
        self, worker: str, *, after: int = 0, timeout: float | None = None
    ) -> Event:
        """The worker's next ``on_query_start`` hook event (the "query started" sync point)."""
        return self.wait_for(
            lambda e: (
                e.get("kind") == "hook"
                and e.get("hook") == "on_query_start"
                and e.get("worker") == worker
            ),
            timeout,
            after=after,
            what=f"query start on worker {worker}",
        )

    def wait_paused(
        self, worker: str, at: str, *, after: int = 0, timeout: float | None = None
    ) -> Event:
        """The worker's next report that its op is paused at ``at`` (tx, locked, scanned)."""
        return self.wait_for(
            lambda e: e.get("kind") == "paused" and e.get("worker") == worker and e.get("at") == at,
            timeout,
            after=after,
            what=f"worker {worker} paused at {at!r}",
        )

    def _note(self, entry: Event) -> None:
        with self._cond:
            self._log.append(entry)
            self._cond.notify_all()

    # ------------------------------------------------------------------ invocations

    def invoke(
        self, f: str, *, worker: str | None = None, timeout: float | None = None, **args: Any
    ) -> OpResult:
        """Run one invocation to its end (see :meth:`start`)."""
        return self.start(f, worker=worker, **args).wait(timeout)

    def start(self, f: str, *, worker: str | None = None, **args: Any) -> Pending:
        """Send one invocation and return at once.

        ``worker``: that worker (it must be alive and idle), else Lambda routing.
        ``args``: ``amount`` (write, write_once), ``seconds`` (slow_read), ``n``
        (burst), ``pause_at`` (reap: ``locked`` or ``scanned``).
        """
        if f not in OP_FS:
            raise FleetError(f"unknown operation {f!r}; known: {', '.join(sorted(OP_FS))}")
        w = self._acquire(worker)
        return self._send_op(w, f, args)

    def _acquire(self, name: str | None) -> _Worker:
        """A worker reserved for one invocation: idle warm (thawed), or cold-started."""
        cold = False
        with self._cond:
            if self._closed:
                raise FleetError("the fleet is closed")
            if name is not None:
                w = self._workers.get(name)
                if w is None or not w.alive or w.state != "idle":
                    state = "unknown" if w is None else w.state
                    raise WorkerUnavailable(f"worker {name} cannot take an invocation ({state})")
            else:
                idle = [w for w in self._workers.values() if w.state == "idle"]
                live = [w for w in self._workers.values() if w.alive]
                if idle:
                    w = min(idle, key=lambda x: x.number)
                elif len(live) < self.config.max_workers:
                    w = self._reserve(live)
                    cold = True
                else:
                    raise FleetAtCapacity(
                        f"all {len(live)} workers are busy and max_workers is"
                        f" {self.config.max_workers}"
                    )
            w.state = "busy"
            if w.frozen:
                self._thaw_locked(w, cause="invoke")
        if cold:
            try:
                self._spawn(w)
            except BaseException:
                with self._cond:
                    w.state = "dead"
                    self._cond.notify_all()
                if w.link is not None:
                    with contextlib.suppress(Exception):
                        w.link.delete()
                raise
        return w

    def _reserve(self, live: list[_Worker]) -> _Worker:
        number = next(self._numbers)
        used = {w.slot for w in live}
        slot = min(s for s in range(1, self.config.max_workers + 1) if s not in used)
        w = _Worker(f"w{number}", number, slot)
        self._workers[w.name] = w
        return w

    def _spawn(self, w: _Worker) -> None:
        """Cold start: the worker's proxy, its process, its reader thread."""
        w.link = WorkerLink(self.toxiproxy, f"{self.run_id}-{w.name}", (self.pg.host, self.pg.port))
        spec = WorkerSpec(
            name=w.name,
            slot=w.slot,
            conninfo=self.pg.dsn(host=w.link.host, port=w.link.port),
            lease=dict(self.config.lease),
            client_class=self.config.client_class,
            client_kwargs=dict(self.config.client_kwargs),
        )
        parent, child = _CTX.Pipe(duplex=True)
        proc = _CTX.Process(
            target=_worker.main, args=(child, spec), name=f"thawproof-{w.name}", daemon=True
        )
        try:
            proc.start()
        finally:
            child.close()
        assert proc.pid is not None
        w.process, w.conn, w.os_pid = proc, parent, proc.pid
        procs.register_worker(proc.pid, f"{self.run_id}/{w.name}")
        ev = self.history.worker_event("spawn", worker=w.name, os_pid=proc.pid)
        self._note(
            {"kind": "worker", "f": "spawn", "worker": w.name, "os_pid": proc.pid, "time": ev.time}
        )
        w.reader = threading.Thread(
            target=self._read_loop, args=(w,), name=f"fleet-{w.name}-reader", daemon=True
        )
        w.reader.start()

    def _send_op(
        self, w: _Worker, f: str, args: Mapping[str, Any], op: str | None = None
    ) -> Pending:
        op = op or self.new_op_id()
        args = dict(args)
        if f in ("write", "write_once"):
            value: dict[str, Any] = {"op_id": op, "amount": int(args.setdefault("amount", 1))}
        else:
            value = dict(args)
        with self._cond:
            pending = Pending(op, w.name, f, value, self.config.op_timeout, since=len(self._log))
            w.pending = pending
        assert w.conn is not None
        try:
            w.conn.send({"kind": "invoke", "op": op, "f": f, "args": args, "value": value})
        except (OSError, ValueError) as exc:
            # The worker is dying; its reader resolves the pending op.
            self._note({"kind": "send_failed", "worker": w.name, "op": op, "error": str(exc)})
        return pending

    def new_op_id(self) -> str:
        """An op id unique within the run (and, with the run id, across runs)."""
        return f"{self.run_id}-op{next(self._op_seq)}"

    # ------------------------------------------------------------------ reading workers

    def _read_loop(self, w: _Worker) -> None:
        assert w.conn is not None and w.process is not None
        conn, sentinel = w.conn, w.process.sentinel
        try:
            while True:
                ready = wait([conn, sentinel])
                if conn in ready:
                    try:
                        msg = conn.recv()
                    except (EOFError, OSError):
                        break
                    self._handle(w, msg)
                    continue
                # The process ended: take what it sent before it did.
                with contextlib.suppress(EOFError, OSError):
                    while conn.poll(0):
                        self._handle(w, conn.recv())
                break
        finally:
            self._on_exit(w)

    def _handle(self, w: _Worker, msg: Event) -> None:
        """One message; a failure to record it is logged, never kills the reader."""
        try:
            self._on_message(w, msg)
        except Exception as exc:
            self._note(
                {
                    "kind": "reader_error",
                    "worker": w.name,
                    "error": repr(exc),
                    "message": repr(msg)[:500],
                }
            )

    def _on_message(self, w: _Worker, msg: Event) -> None:
        kind = msg.get("kind")
        finished: tuple[Pending, OpResult] | None = None
        run_after: list[Callable[[], None]] = []
        with self._cond:
            self._log.append(msg)
            if kind == "ready":
                pass
            elif kind == "hook":
                run_after = self._on_hook(w, msg)
            elif kind == "invoke":
                self._on_invoke(w, msg)
            elif kind == "paused":
                w.paused_at = str(msg.get("at"))
            elif kind == "complete":
                finished = self._on_complete(w, msg)
                run_after, w.on_error = w.on_error, []
            elif kind == "crash":
                w.crash_tb = str(msg.get("traceback"))
            self._cond.notify_all()
        for fn in run_after:
            with contextlib.suppress(Exception):
                fn()
        if finished is not None:
            finished[0]._resolve(finished[1])

    def _on_hook(self, w: _Worker, msg: Event) -> list[Callable[[], None]]:
        hook, payload = msg.get("hook"), msg.get("payload") or {}
        t, wall = float(msg["time"]), float(msg["wall"])
        if hook in ("on_connect", "on_heartbeat") and payload.get("backend_pid") is not None:
            w.backend_pid = int(payload["backend_pid"])
            w.lease_expiry = float(payload.get("lease_expiry") or 0.0)
            self.history.backend(
                worker=w.name,
                backend_pid=w.backend_pid,
                application_name=str(payload.get("application_name") or ""),
                lease_expiry=w.lease_expiry,
                time=t,
                wall=wall,
            )
        elif hook == "on_client_dead" and payload.get("backend_pid") == w.backend_pid:
            w.backend_pid = None
        elif hook == "on_reap" and payload.get("event") == "kill":
            # the kill's time is when the reaper sent it, not when it reported it
            sent = float(payload.get("sent_monotonic") or t)
            t, wall = sent, wall - (t - sent)
            self.history.reap(
                worker=w.name,
                pid=int(payload["pid"]),
                result=str(payload.get("result")),
                application_name=payload.get("application_name"),
                state=payload.get("state"),
                state_change=_epoch(payload.get("state_change")),
                lease_expiry_ms=payload.get("lease_expiry_ms"),
                time=t,
                wall=wall,
            )
        if hook in ("on_query_error", "on_client_dead") and w.on_error:
            run, w.on_error = w.on_error, []
            return run
        return []

    def _on_invoke(self, w: _Worker, msg: Event) -> None:
        backend = msg.get("backend_pid")
        w.invokes[str(msg["op"])] = self.history.invoke(
            op=str(msg["op"]),
            worker=w.name,
            f=str(msg["f"]),
            value=dict(msg.get("value") or {}),
            lease_valid=bool(msg.get("lease_valid")),
            backend_pid=None if backend is None else int(backend),
            time=float(msg["time"]),
            wall=float(msg["wall"]),
        )

    def _on_complete(self, w: _Worker, msg: Event) -> tuple[Pending, OpResult] | None:
        op = str(msg["op"])
        inv = w.invokes.pop(op, None)
        err = msg.get("error")
        error = (
            None
            if not err
            else ErrorInfo(
                sqlstate=err.get("sqlstate"),
                cls=str(err.get("class")),
                message=str(err.get("message")),
            )
        )
        backend = msg.get("backend_pid")
        result_value = msg.get("result")
        if inv is not None:
            value = dict(inv.value)
            if result_value is not None:
                value["result"] = result_value
            self.history.complete(
                inv,
                msg["type"],
                error=error,
                backend_pid=None if backend is None else int(backend),
                value=value,
                time=float(msg["time"]),
                wall=float(msg["wall"]),
            )
        pending = w.pending if w.pending is not None and w.pending.op == op else None
        w.pending = None
        w.paused_at = None
        if self.config.freeze_idle and not w.frozen and w.end_reason is None:
            try:
                self._freeze_locked(w, cause="idle")
            except (procs.SignalTimeout, ProcessLookupError) as exc:
                # It died just after answering: its reader records how.
                self._log.append({"kind": "freeze_failed", "worker": w.name, "error": str(exc)})
        if w.state == "busy":
            w.state = "idle"
        if pending is None:
            return None
        return pending, OpResult(
            op=op,
            worker=w.name,
            f=pending.f,
            type=str(msg["type"]),
            value=pending.value,
            result=result_value,
            error=error,
            process=None if inv is None else inv.process,
            backend_pid=None if backend is None else int(backend),
        )

    def _on_exit(self, w: _Worker) -> None:
        assert w.process is not None
        w.process.join()
        code = w.process.exitcode
        finished: tuple[Pending, OpResult] | None = None
        with self._cond:
            procs.unregister_worker(w.os_pid)
            w.state, w.frozen, w.paused_at = "dead", False, None
            if w.end_reason == "reclaim":
                pass
            elif w.end_reason == "stop":
                self.history.worker_event(
                    "exit",
                    worker=w.name,
                    os_pid=w.os_pid,
                    exitcode=code,
                    detail="stopped by the fleet",
                )
            elif w.crash_tb is not None or code != 0:
                self.history.worker_event(
                    "crash",
                    worker=w.name,
                    os_pid=w.os_pid,
                    exitcode=code,
                    detail=w.crash_tb or _exit_detail(code),
                )
            else:
                self.history.worker_event(
                    "exit",
                    worker=w.name,
                    os_pid=w.os_pid,
                    exitcode=code,
                    detail="exited on its own",
                )
            self._log.append(
                {
                    "kind": "exit",
                    "worker": w.name,
                    "exitcode": code,
                    "reason": w.end_reason or ("crash" if code else "exit"),
                    "time": time.monotonic(),
                }
            )
            pending, w.pending = w.pending, None
            if pending is not None:
                finished = self._abandon(w, pending, code)
            w.exited.set()
            self._cond.notify_all()
        if finished is not None:
            finished[0]._resolve(finished[1])

    def _abandon(self, w: _Worker, pending: Pending, code: int | None) -> tuple[Pending, OpResult]:
        """The worker died with ``pending`` in flight: ``info`` if it had started it."""
        cls = {"reclaim": "WorkerReclaimed", "stop": "WorkerStopped"}.get(
            w.end_reason or "", "WorkerCrashed"
        )
        error = ErrorInfo(sqlstate=None, cls=cls, message=f"worker {w.name}: {_exit_detail(code)}")
        inv = w.invokes.pop(pending.op, None)
        if inv is None:
            # It never reported the invoke, so it never began the op.
            return pending, OpResult(
                pending.op, w.name, pending.f, "fail", pending.value, error=error
            )
        self.history.complete(inv, "info", error=error, backend_pid=w.backend_pid)
        return pending, OpResult(
            pending.op,
            w.name,
            pending.f,
            "info",
            pending.value,
            error=error,
            process=inv.process,
            backend_pid=w.backend_pid,
        )

    # ------------------------------------------------------------------ signals

    def _freeze_locked(
        self, w: _Worker, *, cause: str, f: str = "freeze", value: Mapping[str, Any] | None = None
    ) -> None:
        self._fault(f, w.name, {"cause": cause, **(value or {})})
        procs.stop(w.os_pid, self.config.signal_timeout)
        w.frozen = True

    def _thaw_locked(self, w: _Worker, *, cause: str) -> None:
        self._fault("thaw", w.name, {"cause": cause, "unblackholed": w.blackholed})
        if w.blackholed and w.link is not None:
            # Removing the timeout toxics closes the connection they held: the worker
            # wakes up to a dead socket, as a thawed VM behind a dropped flow would.
            w.link.unblackhole()
            w.blackholed = False
        procs.cont(w.os_pid, self.config.signal_timeout)
        w.frozen = False

    def _fault(self, f: str, worker: str | None, value: Mapping[str, Any]) -> None:
        ev = self.history.fault(f, worker=worker, value=value)
        self._note(
            {"kind": "fault", "f": f, "worker": worker, "value": dict(value), "time": ev.time}
        )

    # ------------------------------------------------------------------ data

    def reset_data(self) -> None:
        """Empty the ledger and the dedup table, zero the counter and the ``hot`` rows."""
        schema.reset(self.pg.app_dsn, slots=self.config.max_workers, dedup_table=self.dedup_table)

    def final_state(self) -> FinalState:
        """Ledger rows per op_id, the counter and the ledger's row total (one snapshot)."""
        return schema.final_state(self.pg.app_dsn)

    def admin_dsn(self) -> str:
        """A superuser DSN where the server has one, else the app role's."""
        try:
            return self.pg.admin_dsn
        except NotImplementedError:
            return self.pg.app_dsn

    def backend_activity(self, pid: int) -> tuple[str | None, str | None] | None:
        """(state, query) of backend ``pid`` in ``pg_stat_activity``; None if it is gone."""
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
        return None if row is None else (row[0], row[1])

    # ------------------------------------------------------------------ teardown

    def stop_workers(self) -> None:
        """End every worker: thaw the frozen ones FIRST; ask idle and paused ones to stop
        (they close their client), kill those inside an op, and stragglers after
        ``stop_grace``. Recorded as ``exit`` (not ``crash``)."""
        with self._cond:
            live = [w for w in self._workers.values() if w.alive and w.process is not None]
            for w in live:
                w.end_reason = w.end_reason or "stop"
                if w.frozen:
                    with contextlib.suppress(ProcessLookupError, procs.SignalTimeout):
                        procs.cont(w.os_pid, self.config.signal_timeout)
                    w.frozen = False
                if w.state == "busy" and w.paused_at is None:
                    # Inside an op it reads no message until the op ends: kill it now.
                    procs.kill(w.os_pid)
                elif w.conn is not None:
                    with contextlib.suppress(OSError, ValueError):
                        w.conn.send({"kind": "stop"})
        deadline = time.monotonic() + self.config.stop_grace
        for w in live:
            w.exited.wait(max(0.0, deadline - time.monotonic()))
        for w in live:
            if not w.exited.is_set():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.os_pid, signal.SIGCONT)  # never kill a stopped process
                    os.kill(w.os_pid, signal.SIGKILL)
        problems = []
        for w in live:
            if not w.exited.wait(self.config.signal_timeout * 2):
                problems.append(f"{w.name} (pid {w.os_pid})")
            if w.reader is not None:
                w.reader.join(self.config.signal_timeout)
            if w.conn is not None:
                w.conn.close()
        if problems:
            raise FleetTimeout("workers did not exit: " + ", ".join(problems))

    def close(self) -> None:
        """Stop every worker, delete every proxy, close the history (if owned). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        errors: list[BaseException] = []
        try:
            self.stop_workers()
        except BaseException as exc:  # keep releasing the rest, then re-raise
            errors.append(exc)
        for w in list(self._workers.values()):
            _sockets.release(w.held_fds)
            if w.link is not None:
                try:
                    w.link.delete()
                except Exception as exc:
                    errors.append(exc)
        if self._owns_history:
            self.history.close()
        if errors:
            raise errors[0]


def _epoch(value: Any) -> float | None:
    """``state_change`` as the reaper reports it (ISO text or seconds) -> Unix seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _exit_detail(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
