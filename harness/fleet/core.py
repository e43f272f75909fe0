"""``Fleet``: Lambda-like worker processes behind their own proxies, and routing.

The faults live in :mod:`harness.fleet.nemesis`, which drives this core only
through its public methods (``Fleet.nemesis``).

Owns (and releases on every exit path, Ctrl-C and interpreter exit included):
the worker processes, one proxy per worker on the Toxiproxy server, one reader
thread per worker pipe, and the history writer when it was given a path.

Routing follows Lambda: :meth:`Fleet.start` sends an invocation to an idle warm
worker (thawed first if frozen), else cold-starts one up to ``max_workers``
(:class:`FleetAtCapacity` beyond); when the invocation returns, the worker is
frozen (SIGSTOP) at once. Freezes and thaws done by routing are recorded as
``freeze``/``thaw`` faults with ``value.cause`` = ``idle``/``invoke``: a frozen
worker is what makes zombies, whoever froze it.

Waiting: every message from a worker (:mod:`harness.fleet.protocol`) is kept in
``Fleet.log`` (:class:`~harness.fleet.log.MessageLog`), where the sync points
are waited for with deadlines that fail loudly. What the fleet itself could not do
(a worker's line it could not read, a signal that did not land) is kept as a
:class:`Diagnostic`, never silently dropped.
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
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness.errors import (
    FleetAtCapacity,
    FleetError,
    FleetTimeout,
    HarnessError,
    SignalTimeout,
    WorkerUnavailable,
)
from harness.fleet import procs, schema, sockets, worker
from harness.fleet.channel import Channel, PipeChannel, SubprocessChannel
from harness.fleet.drivers import DriverSpec
from harness.fleet.links import WorkerLink
from harness.fleet.log import MessageLog
from harness.fleet.pending import OpResult, Pending
from harness.fleet.protocol import (
    DEFAULT_CLIENT,
    OP_FS,
    BackendLost,
    Command,
    Completed,
    Continue,
    Crashed,
    Init,
    Invoke,
    Invoked,
    Message,
    OnBackend,
    Paused,
    PausePoint,
    QueryFailed,
    QueryStarted,
    ReapReport,
    Stop,
    WorkerSpec,
    decode_message,
    encode,
)
from harness.history import (
    ErrorInfo,
    FaultF,
    HistoryWriter,
    OpEvent,
    OpF,
    QueryErrorEvent,
    ReapEvent,
    to_json,
)
from harness.infra.owned import owned, signals_held
from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer

_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(["psycopg", "harness.lease", "harness.fleet.worker"])

M = TypeVar("M", bound=Message)
WorkerState = Literal["starting", "idle", "busy", "dead"]
EndReason = Literal["reclaim", "stop"]


WORKER_NICE = 10
"""The workers' default nice increment. Measured: a 100-sandbox storm on two cores at
equal priority stalled the whole controller for 0.6-0.8 s during each cold-start wave
(the sampler with it, so the run was unknown); raising the sampler alone did not help,
as it waits for the controller's GIL. Lambda's sandboxes do not share the database's
or the observer's CPU; here they would, so they yield it. Needs no privilege."""


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
    seed: int | None = None
    """Seeds every worker's client randomness (see ``WorkerSpec.seed``)."""
    # -- drivers (harness/fleet/drivers.py) ----------------------------------------------
    driver: DriverSpec | None = None
    """What the workers run; None: the lease client ``client_class`` (today's default). For
    a driver with the ``lease`` api, ``client_class`` still says which class (the bug zoo)."""
    upstream: tuple[str, int] | None = None
    """Where the workers' proxies lead (a PgBouncer); None: the PostgreSQL server."""
    worker_nice: int = WORKER_NICE
    """Each worker runs this much nicer than the controller (0: as nice). The workers are
    the load; the controller that freezes them and the sampler that watches the server
    must not be starved by them (see :data:`WORKER_NICE`)."""


@dataclass(frozen=True)
class WorkerInfo:
    """A snapshot of one worker as the fleet knows it."""

    name: str
    slot: int
    """Its row in the ``hot`` table (what its ``long_tx`` locks)."""
    state: WorkerState
    frozen: bool
    blackholed: bool
    paused_at: PausePoint | None
    os_pid: int
    backend_pid: int | None
    """The backend the worker's client last reported (None after it dropped it)."""
    lease_expiry: float | None


HARNESS_FAULTS = frozenset({"protocol_error", "reader_error", "link_unreachable"})
"""Diagnostics that mean the harness itself misbehaved (the run cannot be judged); the
others (a send or freeze that failed because the worker was dying) are the worker's."""


@dataclass(frozen=True)
class Diagnostic:
    """Something the fleet's own machinery could not do; kept for the run's judge."""

    kind: Literal[
        "protocol_error",
        "reader_error",
        "send_failed",
        "freeze_failed",
        "link_unreachable",
        "driver_protocol",
        "op_timeout",
    ]
    worker: str
    detail: str
    time: float = field(default_factory=time.monotonic)


class _Worker:
    """The controller's record of one worker process."""

    def __init__(self, name: str, number: int, slot: int) -> None:
        self.name = name
        self.number = number
        self.slot = slot
        self.state: WorkerState = "starting"
        self.frozen = False
        self.blackholed = False
        self.paused_at: PausePoint | None = None
        self.channel: Channel | None = None
        """The worker's process and its JSON-lines link (pipe or stdin/stdout)."""
        self.link: WorkerLink | None = None
        self.os_pid = 0
        self.pending: Pending | None = None
        self.invokes: dict[str, OpEvent] = {}
        self.reader: threading.Thread | None = None
        self.exited = threading.Event()
        self.end_reason: EndReason | None = None
        self.crash_tb: str | None = None
        self.backend_pid: int | None = None
        self.lease_expiry: float | None = None
        self.held_fds: list[int] = []
        """Duplicates of a reclaimed worker's sockets, held so its death sends no FIN."""
        self.on_error: list[Callable[[], None]] = []
        """Run once, in the reader thread, at the worker's next query error or op end."""
        self.record: str | None = None
        """Its entry in this process's owned records (see ``harness.infra.owned``)."""
        self.external = False
        """A program of its own (subprocess transport): a line it gets wrong is its fault."""

    @property
    def alive(self) -> bool:
        return self.state != "dead"


class Fleet:
    """Lambda-like workers, their proxies, and the history of what happened to them."""

    def __init__(
        self,
        pg: PostgresServer,
        toxiproxy: ToxiproxyServer,
        history: HistoryWriter | str | os.PathLike[str],
        config: FleetConfig,
    ) -> None:
        if config.max_workers < 1:
            raise FleetError(f"max_workers must be at least 1, got {config.max_workers}")
        from harness.fleet.nemesis import Nemesis  # the layer above, built on this one

        self.pg = pg
        self.toxiproxy = toxiproxy
        self.config = config
        self.run_id = config.run_id or f"fleet-{secrets.token_hex(3)}"
        self._owns_history = not isinstance(history, HistoryWriter)
        self.history = history if isinstance(history, HistoryWriter) else HistoryWriter(history)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self.log = MessageLog(config.op_timeout)
        """Every message the workers sent; the sync points are waited for here."""
        self.diagnostics: list[Diagnostic] = []
        self._workers: dict[str, _Worker] = {}
        self._numbers = itertools.count(1)
        self._op_seq = itertools.count(1)
        self._closed = False
        self.data = schema.Workload(
            pg.app_dsn,
            slots=config.max_workers,
            dedup_table=str(config.lease.get("dedup_table", "lease_dedup")),
            reader_dsn=_superuser_dsn(pg),
        )
        """The workload's tables: reset between examples, read at the end."""
        self.nemesis = Nemesis(self)
        """The faults, composed from this fleet's public methods."""
        atexit.register(self.close)
        try:
            self.data.setup()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries

    def worker_names(self, *, alive: bool = True, state: WorkerState | None = None) -> list[str]:
        """The workers' names, oldest first: the live ones (or all), in ``state`` if given
        (``idle``: those that can take an invocation now)."""
        with self._lock:
            chosen = [
                w
                for w in self._workers.values()
                if (w.alive or not alive) and (state is None or w.state == state)
            ]
        return [w.name for w in sorted(chosen, key=lambda w: w.number)]

    def worker(self, name: str) -> WorkerInfo:
        """What the fleet knows of one worker, now."""
        with self._lock:
            w = self._get(name)
            return WorkerInfo(
                name=w.name,
                slot=w.slot,
                state=w.state,
                frozen=w.frozen,
                blackholed=w.blackholed,
                paused_at=w.paused_at,
                os_pid=w.os_pid,
                backend_pid=w.backend_pid,
                lease_expiry=w.lease_expiry,
            )

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

    def _live(self, name: str) -> _Worker:
        w = self._get(name)
        if not w.alive or w.channel is None:
            raise WorkerUnavailable(f"worker {name} is {w.state}")
        return w

    # ------------------------------------------------------------------ diagnostics

    def _diagnose(self, kind: Any, worker: str, detail: str) -> None:
        with self._cond:
            self.diagnostics.append(Diagnostic(kind, worker, detail))

    # ------------------------------------------------------------------ invocations

    def invoke(
        self, f: OpF, *, worker: str | None = None, timeout: float | None = None, **args: Any
    ) -> OpResult:
        """Run one invocation to its end (see :meth:`start`)."""
        return self.start(f, worker=worker, **args).wait(timeout)

    def start(self, f: OpF, *, worker: str | None = None, **args: Any) -> Pending:
        """Send one invocation and return at once.

        ``worker``: that worker (it must be alive and idle), else Lambda routing.
        ``args``: ``amount`` (write, write_once), ``seconds`` (slow_read), ``n``
        (burst), ``pause_at`` (reap: ``locked`` or ``scanned``), ``row``, ``pause`` and
        ``retryable`` (long_tx; False by default).
        """
        if f not in OP_FS:
            raise FleetError(f"unknown operation {f!r}; known: {', '.join(sorted(OP_FS))}")
        return self.send(self.acquire(worker), f, args)

    def acquire(self, name: str | None = None) -> str:
        """Reserve a worker for one invocation: ``name`` (idle), else an idle warm worker
        (thawed), else a cold start. Give it back with :meth:`release` if no op follows."""
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
            self._cold_start(w)
        return w.name

    def release(self, worker: str) -> None:
        """Give back a worker acquired for an op that was never sent (parked again)."""
        with self._cond:
            w = self._get(worker)
            if w.state == "busy":
                w.state = "idle"
                if self.config.freeze_idle and not w.frozen:
                    with contextlib.suppress(SignalTimeout, ProcessLookupError):
                        self._freeze_locked(w, cause="idle")
            self._cond.notify_all()

    def send(self, worker: str, f: OpF, args: Mapping[str, Any], op: str | None = None) -> Pending:
        """Send op ``f`` to a worker reserved with :meth:`acquire`."""
        w = self._get(worker)
        op = op or self.new_op_id()
        args = dict(args)
        if f == "long_tx":
            args.setdefault("retryable", False)
        if f in ("write", "write_once"):
            value: dict[str, Any] = {"op_id": op, "amount": int(args.setdefault("amount", 1))}
        else:
            value = dict(args)
        with self._cond:
            pending = Pending(
                op,
                w.name,
                f,
                value,
                self.config.op_timeout,
                since=self.log.mark(),
                grace=self.config.signal_timeout,
            )
            pending.on_timeout = lambda: self._end_hung(w, pending)
            w.pending = pending
        try:
            self._command(w, Invoke(op=op, f=f, args=args, value=value))
        except (OSError, ValueError) as exc:
            # The worker is dying; its reader resolves the pending op.
            self._diagnose("send_failed", w.name, f"op {op}: {exc}")
        return pending

    def _end_hung(self, w: _Worker, pending: Pending) -> bool:
        """An op that did not answer within the op timeout, on a worker that was neither
        frozen nor paused: the driver hung. It is killed and recorded as a crash (P4),
        and the op ends ``info``; never a harness that waits forever."""
        with self._cond:
            if pending.done() or not w.alive or w.frozen or w.paused_at is not None:
                return False
            if w.pending is not pending:
                return False
            w.crash_tb = (
                f"the driver did not answer {pending.f} op {pending.op} within"
                f" {pending.default_timeout:g}s (not frozen, not paused): killed as hung"
            )
            self._diagnose("op_timeout", w.name, w.crash_tb)
            procs.kill(w.os_pid)
        return True

    def new_op_id(self) -> str:
        """An op id unique within the run (and, with the run id, across runs)."""
        return f"{self.run_id}-op{next(self._op_seq)}"

    def _command(self, w: _Worker, cmd: Command) -> None:
        assert w.channel is not None
        w.channel.send(encode(cmd))

    def _reserve(self, live: list[_Worker]) -> _Worker:
        number = next(self._numbers)
        used = {w.slot for w in live}
        slot = min(s for s in range(1, self.config.max_workers + 1) if s not in used)
        w = _Worker(f"w{number}", number, slot)
        self._workers[w.name] = w
        return w

    def _cold_start(self, w: _Worker) -> None:
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

    def _spawn(self, w: _Worker) -> None:
        """Cold start: the worker's proxy, its process, its reader thread."""
        upstream = self.config.upstream or (self.pg.host, self.pg.port)
        w.link = WorkerLink(self.toxiproxy, f"{self.run_id}-{w.name}", upstream)
        driver = self.config.driver
        client_class = self.config.client_class
        if driver is not None and driver.api != "lease":
            client_class = driver.client_class
        spec = WorkerSpec(
            name=w.name,
            slot=w.slot,
            conninfo=self.pg.dsn(host=w.link.host, port=w.link.port),
            lease=dict(self.config.lease),
            client_class=client_class,
            client_kwargs=dict(self.config.client_kwargs),
            seed=self.config.seed,
            nice=self.config.worker_nice,
            driver="lease" if driver is None else driver.name,
            api="lease" if driver is None else driver.api,
            driver_options={} if driver is None else dict(driver.options),
            application_name="" if driver is None else driver.application_name,
        )
        with signals_held():  # the worker exists only once it is recorded
            if driver is not None and driver.transport == "subprocess":
                channel: Channel = self._start_subprocess(w, driver, spec)
            else:
                channel = self._start_forked(w, spec)
        w.channel, w.os_pid = channel, channel.pid
        w.external = driver is not None and driver.transport == "subprocess"
        procs.register_worker(channel.pid, f"{self.run_id}/{w.name}")
        self.history.worker_event("spawn", worker=w.name, os_pid=channel.pid)
        w.reader = threading.Thread(
            target=self._read_loop, args=(w,), name=f"fleet-{w.name}-reader", daemon=True
        )
        w.reader.start()

    def _start_forked(self, w: _Worker, spec: WorkerSpec) -> Channel:
        """A Python worker: a forkserver child on a pipe (dies with it: PR_SET_PDEATHSIG)."""
        parent, child = _CTX.Pipe(duplex=True)
        proc = _CTX.Process(
            target=worker.main, args=(child, spec), name=f"thawproof-{w.name}", daemon=True
        )
        try:
            proc.start()
            assert proc.pid is not None
            w.record = owned().process(proc.pid, f"worker {self.run_id}/{w.name}")
            _record_forkserver()
        finally:
            child.close()
        return PipeChannel(parent, proc)

    def _start_subprocess(self, w: _Worker, driver: DriverSpec, spec: WorkerSpec) -> Channel:
        """Any other program, on its stdin/stdout; its stderr is kept beside the history.
        It is recorded as ours at once (the watchdog ends it if this process dies) and
        it exits by itself when its stdin closes."""
        stderr = Path(self.history.path).parent / "workers" / f"{self.run_id}-{w.name}.stderr"
        channel = SubprocessChannel(
            driver.command,
            cwd=str(_node_dir()),
            stderr_path=stderr,
            env=_child_env(),
            nice=self.config.worker_nice,
        )
        w.record = owned().process(channel.pid, f"worker {self.run_id}/{w.name} ({driver.name})")
        try:
            channel.send(
                encode(Init(spec=worker_spec_json(spec, self.pg), sql=schema.dollar_sql()))
            )
        except (OSError, ValueError) as exc:
            self._diagnose("send_failed", w.name, f"init: {exc}")
        return channel

    # ------------------------------------------------------------------ reading workers

    def _read_loop(self, w: _Worker) -> None:
        assert w.channel is not None
        channel = w.channel
        try:
            while (data := channel.recv()) is not None:
                self._handle(w, data)
        finally:
            self._on_exit(w)

    def _handle(self, w: _Worker, data: bytes) -> None:
        """One line; a line that cannot be read or recorded is a diagnostic, never the
        reader's death."""
        try:
            msg = decode_message(data)
        except HarnessError as exc:
            if w.external:
                self._protocol_violation(w, exc)
            else:
                self._diagnose("protocol_error", w.name, f"{exc}")
            return
        try:
            self._on_message(w, msg)
        except Exception as exc:
            self._diagnose("reader_error", w.name, f"{exc!r} on {msg!r}"[:500])

    def _protocol_violation(self, w: _Worker, exc: HarnessError) -> None:
        """A driver program sent a line that is no protocol message (a stray print, a
        bad field): nothing it says can be trusted any more. It is the driver's fault,
        not the harness's: killed and recorded as a crash with the line (P4)."""
        with self._cond:
            if w.crash_tb is None:
                w.crash_tb = f"protocol violation: {exc}"
            self._diagnose("driver_protocol", w.name, str(exc)[:500])
            if w.alive:
                if w.frozen:
                    with contextlib.suppress(ProcessLookupError, SignalTimeout):
                        procs.cont(w.os_pid, self.config.signal_timeout)
                procs.kill(w.os_pid)

    def _on_message(self, w: _Worker, msg: Message) -> None:
        finished: tuple[Pending, OpResult] | None = None
        run_after: list[Callable[[], None]] = []
        with self._cond:
            self.log.append(msg)
            if isinstance(msg, OnBackend | QueryStarted | ReapReport | Invoked):
                self._record(w, msg)
            elif isinstance(msg, BackendLost):
                if msg.backend_pid == w.backend_pid:
                    w.backend_pid = None
                run_after, w.on_error = w.on_error, []
            elif isinstance(msg, QueryFailed):
                run_after, w.on_error = w.on_error, []
                self.history.append(
                    QueryErrorEvent(
                        worker=w.name,
                        backend_pid=msg.backend_pid,
                        sqlstate=msg.sqlstate,
                        error=msg.error,
                        lost=msg.lost,
                        time=msg.time,
                        wall=msg.wall,
                    )
                )
            elif isinstance(msg, Paused):
                w.paused_at = msg.at
            elif isinstance(msg, Completed):
                finished = self._on_complete(w, msg)
                run_after, w.on_error = [*w.on_error, lambda: self._check_link(w, msg)], []
            elif isinstance(msg, Crashed):
                w.crash_tb = msg.traceback
            self._cond.notify_all()
        for fn in run_after:
            with contextlib.suppress(Exception):
                fn()
        if finished is not None:
            finished[0].resolve(finished[1])

    @property
    def harness_faults(self) -> list[str]:
        """What the harness's own machinery did wrong so far, one sentence each."""
        with self._lock:
            return [f"{d.worker}: {d.detail}" for d in self.diagnostics if d.kind in HARNESS_FAULTS]

    def _check_link(self, w: _Worker, msg: Completed) -> None:
        """A worker refused by its OWN proxy while that proxy should be listening is the
        harness's fault (its proxy died or vanished), never the client's."""
        err, link = msg.error, w.link
        if err is None or link is None or link.deleted or "Connection refused" not in err.message:
            return
        if f"port {link.port}" not in err.message:
            return  # refused elsewhere (the server behind a healthy proxy): not ours
        try:
            enabled = link.proxy.refresh().enabled
        except HarnessError as exc:
            self._diagnose("link_unreachable", w.name, f"its proxy {link.name} is gone: {exc}")
            return
        if enabled:
            self._diagnose(
                "link_unreachable",
                w.name,
                f"its proxy {link.name} (port {link.port}) refused it while enabled, with no"
                f" fault to explain it: {err.message}",
            )

    def _record(self, w: _Worker, msg: OnBackend | QueryStarted | ReapReport | Invoked) -> None:
        """A report that becomes history: a backend mapping, a statement about to be
        sent, a reaper's step or ledger entry, an invoke."""
        if isinstance(msg, OnBackend):
            self._on_backend(w, msg)
        elif isinstance(msg, QueryStarted):
            self.history.query_start(
                worker=w.name,
                backend_pid=msg.backend_pid,
                lease_expiry=msg.lease_expiry,
                time=msg.time,
                wall=msg.wall,
            )
        elif isinstance(msg, ReapReport):
            self._on_reap(w, msg)
        else:
            self._on_invoke(w, msg)

    def _on_backend(self, w: _Worker, msg: OnBackend) -> None:
        w.backend_pid = msg.backend_pid
        w.lease_expiry = msg.lease_expiry
        self.history.backend(
            worker=w.name,
            backend_pid=msg.backend_pid,
            application_name=msg.application_name,
            lease_expiry=msg.lease_expiry or 0.0,
            renewed=msg.renewed,
            reconnect=msg.reconnect,
            time=msg.time,
            wall=msg.wall,
        )

    def _on_reap(self, w: _Worker, msg: ReapReport) -> None:
        if msg.step in ("locked", "scanned", "pass_end", "busy", "error"):
            # the pass's steps: its leadership interval (server clock), its decision, and
            # what it raised when it failed
            self.history.reap_pass(
                msg.step,
                worker=w.name,
                reaper_pid=msg.reaper_pid,
                server_at=msg.server_at,
                candidates=msg.candidates,
                scanned=msg.scanned,
                killed=msg.killed,
                error=msg.error,
                time=msg.time,
                wall=msg.wall,
            )
            return
        if msg.step != "kill" or msg.pid is None or msg.result is None:
            return
        # the kill's time is when the reaper sent it, not when it reported it
        sent = msg.time if msg.sent is None else msg.sent
        self.history.append(
            ReapEvent(
                worker=w.name,
                pid=msg.pid,
                result=msg.result,
                application_name=msg.application_name,
                state=msg.state,
                state_change=msg.state_change,
                lease_expiry_ms=msg.lease_expiry_ms,
                time=sent,
                wall=msg.wall - (msg.time - sent),
                idle_for=msg.idle_for,
                at=msg.at,
                reaper_pid=msg.reaper_pid,
            )
        )

    def _on_invoke(self, w: _Worker, msg: Invoked) -> None:
        w.invokes[msg.op] = self.history.invoke(
            op=msg.op,
            worker=w.name,
            f=msg.f,
            value=msg.value,
            lease_valid=msg.lease_valid,
            backend_pid=msg.backend_pid,
            time=msg.time,
            wall=msg.wall,
        )

    def _on_complete(self, w: _Worker, msg: Completed) -> tuple[Pending, OpResult] | None:
        inv = w.invokes.pop(msg.op, None)
        if inv is not None:
            value = dict(inv.value)
            if msg.result is not None:
                value["result"] = msg.result
            self.history.complete(
                inv,
                msg.type,
                error=msg.error,
                backend_pid=msg.backend_pid,
                value=value,
                time=msg.time,
                wall=msg.wall,
            )
        pending = w.pending if w.pending is not None and w.pending.op == msg.op else None
        w.pending = None
        w.paused_at = None
        if self.config.freeze_idle and not w.frozen and w.end_reason is None:
            try:
                self._freeze_locked(w, cause="idle")
            except (SignalTimeout, ProcessLookupError) as exc:
                # It died just after answering: its reader records how.
                self.diagnostics.append(Diagnostic("freeze_failed", w.name, str(exc)))
        if w.state == "busy":
            w.state = "idle"
        if pending is None:
            return None
        return pending, OpResult(
            op=msg.op,
            worker=w.name,
            f=pending.f,
            type=msg.type,
            value=pending.value,
            result=msg.result,
            error=msg.error,
            process=None if inv is None else inv.process,
            backend_pid=msg.backend_pid,
        )

    def _on_exit(self, w: _Worker) -> None:
        assert w.channel is not None
        code = w.channel.wait()
        w.channel.close()  # its lines are all read: nothing more will come
        finished: tuple[Pending, OpResult] | None = None
        with self._cond:
            procs.unregister_worker(w.os_pid)
            if w.record is not None:
                owned().release(w.record)
            w.state, w.frozen, w.paused_at = "dead", False, None
            self._record_exit(w, code)
            pending, w.pending = w.pending, None
            if pending is not None:
                finished = self._abandon(w, pending, code)
            w.exited.set()
            self._cond.notify_all()
        if finished is not None:
            finished[0].resolve(finished[1])

    def _record_exit(self, w: _Worker, code: int | None) -> None:
        if w.end_reason == "reclaim":
            return  # the reclaim fault is its record
        if w.end_reason == "stop":
            detail = "stopped by the fleet"
        elif w.crash_tb is not None or code != 0:
            self.history.worker_event(
                "crash",
                worker=w.name,
                os_pid=w.os_pid,
                exitcode=code,
                detail=w.crash_tb or _exit_detail(code),
            )
            return
        else:
            detail = "exited on its own"
        self.history.worker_event(
            "exit", worker=w.name, os_pid=w.os_pid, exitcode=code, detail=detail
        )

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

    # ------------------------------------------------------------------ signals and links

    def record_fault(
        self, f: FaultF, worker: str | None = None, value: Mapping[str, Any] | None = None
    ) -> None:
        """Record a fault in the history (always BEFORE it acts)."""
        self.history.fault(f, worker=worker, value=dict(value or {}))

    def freeze(
        self,
        worker: str,
        *,
        f: FaultF = "freeze",
        value: Mapping[str, Any] | None = None,
        blackhole: bool = False,
        during: Pending | None = None,
    ) -> None:
        """SIGSTOP a worker as a fault (recorded as ``f`` with ``value``); optionally
        blackhole its link once it is stopped. A worker parked by routing is already
        stopped: the fault is recorded (and the blackhole added) without a second
        signal. ``during``: the op it must still be in (:class:`FleetError` if it ended)."""
        with self._cond:
            w = self._live(worker)
            if during is not None and during.done():
                raise FleetError(f"{during.f} op {during.op} ended before {f} could freeze it")
            fault = {"cause": "fault", "blackhole": blackhole, **(value or {})}
            if w.frozen:
                self.record_fault(f, w.name, {**fault, "already_frozen": True})
            else:
                self._freeze_locked(w, cause="fault", f=f, value=fault)
            if blackhole and not w.blackholed:
                self._blackhole_locked(w)

    def thaw(self, worker: str, *, resume: bool = True) -> None:
        """SIGCONT a frozen worker (blackhole removed first); ``resume``: a paused op goes on."""
        with self._cond:
            w = self._live(worker)
            if not w.frozen:
                raise WorkerUnavailable(f"worker {worker} is not frozen")
            self._thaw_locked(w, cause="fault")
            if resume and w.paused_at is not None:
                self._continue_locked(w)

    def resume(self, worker: str) -> None:
        """Let a paused (not frozen) op go on."""
        with self._cond:
            w = self._live(worker)
            if w.paused_at is None:
                raise WorkerUnavailable(f"worker {worker} is not paused")
            self._continue_locked(w)

    def reclaim(
        self, worker: str, *, blackhole: bool = False, timeout: float | None = None
    ) -> None:
        """SIGKILL a frozen worker (frozen first if it is not), and wait until it is gone.

        With ``blackhole`` (or if its link already is), the worker's TCP sockets to its
        proxy are first duplicated into the controller (see :mod:`harness.fleet.sockets`),
        so its death sends no FIN, as a torn-down VM's would not, and its link is
        blackholed: the server keeps the backend as a true zombie until a reaper kills
        it or the fleet closes (:meth:`heal_links` leaves it alone)."""
        with self._cond:
            w = self._live(worker)
            if not w.frozen:
                self._freeze_locked(w, cause="reclaim")
            blackhole = blackhole or w.blackholed
            if blackhole and w.link is not None:
                w.held_fds = sockets.hold_sockets(w.os_pid, w.link.port)
            self.record_fault(
                "reclaim",
                w.name,
                {"blackhole": blackhole, "os_pid": w.os_pid, "held_sockets": len(w.held_fds)},
            )
            if blackhole and not w.blackholed:
                self._blackhole_locked(w)
            w.end_reason = "reclaim"
            procs.kill(w.os_pid)
        limit = self.config.signal_timeout if timeout is None else timeout
        if not w.exited.wait(limit):
            raise FleetTimeout(f"reclaimed worker {worker} (pid {w.os_pid}) not gone in {limit}s")

    def _blackhole_locked(self, w: _Worker) -> None:
        """Drop everything on the worker's link in both directions, never closing it."""
        assert w.link is not None
        w.link.blackhole()
        w.blackholed = True

    def command(self, worker: str, cmd: Command) -> None:
        """Send a control command to a live worker (it reads it at once if idle or paused,
        after the running op otherwise)."""
        self._command(self._live(worker), cmd)

    def on_next_error(self, worker: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` once, at the worker's next query error, dropped connection or op end."""
        with self._cond:
            self._get(worker).on_error.append(fn)

    def heal_links(self) -> None:
        """Remove every toxic of the live workers' proxies and enable them all.

        A reclaimed worker's link stays as it is: its sandbox is gone and will never
        answer again, so a zombie it left behind stays a zombie until a reaper (or
        the fleet's teardown) ends it."""
        with self._cond:
            workers = [w for w in self._workers.values() if w.alive]
        for w in workers:
            if w.link is not None and not w.link.deleted:
                w.link.clear()
                w.blackholed = False

    def _freeze_locked(
        self,
        w: _Worker,
        *,
        cause: str,
        f: FaultF = "freeze",
        value: Mapping[str, Any] | None = None,
    ) -> None:
        self.record_fault(f, w.name, {"cause": cause, **(value or {})})
        procs.stop(w.os_pid, self.config.signal_timeout)
        w.frozen = True

    def _thaw_locked(self, w: _Worker, *, cause: str) -> None:
        self.record_fault("thaw", w.name, {"cause": cause, "unblackholed": w.blackholed})
        if w.blackholed and w.link is not None:
            # Removing the timeout toxics closes the connection they held: the worker
            # wakes up to a dead socket, as a thawed VM behind a dropped flow would.
            w.link.unblackhole()
            w.blackholed = False
        procs.cont(w.os_pid, self.config.signal_timeout)
        w.frozen = False

    def _continue_locked(self, w: _Worker) -> None:
        w.paused_at = None
        self._command(w, Continue())

    # ------------------------------------------------------------------ teardown

    def _stop_workers(self) -> None:
        """End every worker: thaw the frozen ones FIRST; ask idle and paused ones to stop
        (they close their client), kill those inside an op, and stragglers after
        ``stop_grace``. Recorded as ``exit`` (not ``crash``)."""
        with self._cond:
            live = [w for w in self._workers.values() if w.alive and w.channel is not None]
            for w in live:
                self._ask_to_stop(w)
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
            if w.channel is not None:
                w.channel.close()
        if problems:
            raise FleetTimeout("workers did not exit: " + ", ".join(problems))

    def _ask_to_stop(self, w: _Worker) -> None:
        w.end_reason = w.end_reason or "stop"
        if w.frozen:
            with contextlib.suppress(ProcessLookupError, SignalTimeout):
                procs.cont(w.os_pid, self.config.signal_timeout)
            w.frozen = False
        if w.state == "busy" and w.paused_at is None:
            # Inside an op it reads no command until the op ends: kill it now.
            procs.kill(w.os_pid)
        elif w.channel is not None:
            with contextlib.suppress(OSError, ValueError):
                self._command(w, Stop())

    def close(self) -> None:
        """Stop every worker, delete every proxy, close the history (if owned). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        errors: list[BaseException] = []
        try:
            self._stop_workers()
        except BaseException as exc:  # keep releasing the rest, then re-raise
            errors.append(exc)
        for w in list(self._workers.values()):
            sockets.release(w.held_fds)
            if w.link is not None:
                try:
                    w.link.delete()
                except Exception as exc:
                    errors.append(exc)
        if self._owns_history:
            self.history.close()
        if errors:
            raise errors[0]


def _superuser_dsn(pg: PostgresServer) -> str:
    """The admin role on the app database where the server has one, else the app role."""
    try:
        return make_conninfo(pg.admin_dsn, dbname=pg.app_db)
    except NotImplementedError:
        return pg.app_dsn


_forkserver_recorded: set[int] = set()


def _record_forkserver() -> None:
    """The forkserver is a process of ours too: recorded once, so the watchdog ends it
    if this process is killed (its workers then die of PR_SET_PDEATHSIG)."""
    from multiprocessing import forkserver

    pid = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    if isinstance(pid, int) and pid not in _forkserver_recorded:
        _forkserver_recorded.add(pid)
        owned().process(pid, "multiprocessing forkserver")


def _node_dir() -> Path:
    from harness.fleet.drivers import NODE_DIR

    return NODE_DIR


def _child_env() -> dict[str, str]:
    """A subprocess worker's environment: ours, without libpq's PG* (its spec says where)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG") or k == "PG_AEQUOR_DIR"}


def worker_spec_json(spec: WorkerSpec, pg: PostgresServer) -> dict[str, Any]:
    """A :class:`WorkerSpec` as a subprocess worker reads it: its fields, and ``dsn`` (the
    conninfo as host, port, user, password, dbname, for clients that take an object)."""
    raw = to_json(spec)
    params = conninfo_to_dict(spec.conninfo)
    raw["dsn"] = {
        "host": str(params.get("host", pg.host)),
        "port": int(str(params.get("port") or pg.port)),
        "user": str(params.get("user", "")),
        "password": str(params.get("password", "")),
        "dbname": str(params.get("dbname", "")),
    }
    return raw


def _exit_detail(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


__all__ = ["Diagnostic", "Fleet", "FleetConfig"]
