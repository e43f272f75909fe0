"""Fault schedules: what happens to a fleet, in words, and how it is run and judged.

A schedule is a short list of :class:`Step` values. Each step is plain data
(so Hypothesis can generate and shrink it), says what it does in a sentence
(:meth:`Step.describe`), and applies itself to a live fleet
(:meth:`Step.apply`). Steps refer to workers by index into the fleet's idle
workers, so a schedule stays meaningful when shrinking removes steps.

:class:`ChaosEnv` runs one schedule end to end on real components: a fresh
fleet (one proxy per worker) on the shared PostgreSQL and Toxiproxy servers,
the ``pg_stat_activity`` sampler, the steps, then the **settle** phase (faults
healed, invocations still arriving for the convergence bound, then every frozen
worker thawed and invoked once), the final database state, and the five
properties over the recorded run. :class:`Judged` holds the verdicts and the
narrative; :class:`PropertyViolation` is what a property test raises, so
Hypothesis shrinks to a minimal schedule and prints it in words.

Synchronisation is by events (a query started, an op paused, a backend seen
active); the only waits on the clock are the ones the properties are about:
letting leases expire (:class:`Age`) and keeping invocations arriving for the
convergence bound during settle.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg.conninfo import make_conninfo

from harness.checks import Run, RunConfig, Verdict, check_all, render_verdict
from harness.fleet import Fleet, FleetConfig
from harness.fleet.pending import FleetAtCapacity, FleetError, Pending, WorkerUnavailable
from harness.history import (
    BackendEvent,
    ErrorInfo,
    FaultEvent,
    ForeignEvent,
    HistoryWriter,
    load_history,
)
from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer
from harness.lease import token
from harness.observe import ActivitySampler, cross_check_kills, terminations_from_log
from harness.zoo import CORRECT, Bug

SERVICE = "thawproof"
SECRET = "thawproof-chaos-secret-32-bytes!"
OTHER_SECRET = "another-service-secret-of-32-b!!"

# -- timings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """Compressed lease timings: seconds, not minutes, so an example takes seconds."""

    lease_ttl: float = 0.8
    min_idle: float = 0.2
    cooldown: float = 0.1
    cooldown_jitter: float = 0.2
    reaper_grace: float = 0.1
    reaper_lock_timeout: float = 0.4
    reaper_statement_timeout: float = 2.0
    retry_budget: float = 4.0
    slack: float = 0.8
    """Added to P2's bound: one reaper pass, a lock timeout, scheduling noise."""
    settle_extra: float = 0.6
    """Settle keeps invocations arriving this long past the convergence bound."""
    wave_pace: float = 0.05
    """Pause between settle waves: the arrival rate of invocations, not a synchronisation."""

    @property
    def max_cooldown(self) -> float:
        return self.cooldown * (1 + self.cooldown_jitter)

    @property
    def bound(self) -> float:
        return self.lease_ttl + self.min_idle + self.max_cooldown + self.slack

    def lease_kwargs(self) -> dict[str, Any]:
        return {
            "service": SERVICE,
            "secret": SECRET,
            "lease_ttl": self.lease_ttl,
            "min_idle": self.min_idle,
            "cooldown": self.cooldown,
            "cooldown_jitter": self.cooldown_jitter,
            "reaper_grace": self.reaper_grace,
            "reap_probability": 1.0,
            "reaper_lock_timeout": self.reaper_lock_timeout,
            "reaper_statement_timeout": self.reaper_statement_timeout,
            "retry_budget": self.retry_budget,
            "backoff_base": 0.02,
            "backoff_cap": 0.3,
            "connect_timeout": 2.0,
        }


# -- what a step sees ----------------------------------------------------------------------


@dataclass
class Foreign:
    kind: str
    conn: psycopg.Connection[Any]
    pid: int


@dataclass
class Ctx:
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

    def idle(self) -> list[str]:
        names = [n for n in self.fleet.worker_names() if self.fleet.state(n) == "idle"]
        return sorted(names, key=lambda n: int(n[1:]))

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

    def run(self, f: str, *, worker: str | None = None, **args: Any) -> Any:
        result = self.fleet.invoke(f, worker=worker, **args)
        self.last_activity = time.time()
        return result


class Step:
    """One thing that happens to the fleet."""

    def describe(self) -> str:
        raise NotImplementedError

    def apply(self, ctx: Ctx) -> None:
        raise NotImplementedError


# -- ordinary life -------------------------------------------------------------------------


@dataclass(frozen=True)
class Invoke(Step):
    f: Literal["write", "write_once", "read", "burst"]

    def describe(self) -> str:
        return f"invoke {self.f} (routed like Lambda: a warm worker, else a cold start)"

    def apply(self, ctx: Ctx) -> None:
        args: dict[str, Any] = {"n": 5} if self.f == "burst" else {}
        if self.f in ("write", "write_once"):
            args["amount"] = 1
        with contextlib.suppress(FleetAtCapacity):
            ctx.run(self.f, **args)


@dataclass(frozen=True)
class Burst(Step):
    n: int

    def describe(self) -> str:
        return f"{self.n} concurrent reads (cold starts up to the concurrency cap)"

    def apply(self, ctx: Ctx) -> None:
        for p in ctx.start_reads(self.n):
            p.wait()
        ctx.last_activity = time.time()


@dataclass(frozen=True)
class Age(Step):
    def describe(self) -> str:
        return (
            "let time pass until every idle worker's lease has expired"
            " (past the grace) and its backend has idled past min_idle"
        )

    def apply(self, ctx: Ctx) -> None:
        t = ctx.timings
        until = ctx.last_activity + t.lease_ttl + t.reaper_grace + t.min_idle + 0.05
        _wait_until_wall(until)


@dataclass(frozen=True)
class Linger(Step):
    def describe(self) -> str:
        return "let idle backends idle past min_idle (their leases still valid)"

    def apply(self, ctx: Ctx) -> None:
        _wait_until_wall(time.time() + ctx.timings.min_idle + 0.05)


@dataclass(frozen=True)
class Reclaim(Step):
    worker: int
    blackhole: bool = True

    def describe(self) -> str:
        how = (
            "its link blackholed first, so its backend stays as a zombie"
            if self.blackhole
            else "its socket closed by the kernel"
        )
        return f"reclaim idle worker #{self.worker} (SIGKILL while frozen; {how})"

    def apply(self, ctx: Ctx) -> None:
        name = ctx.pick(self.worker)
        if name is not None:
            ctx.fleet.reclaim(name, blackhole=self.blackhole)


@dataclass(frozen=True)
class Reap(Step):
    worker: int

    def describe(self) -> str:
        return f"idle worker #{self.worker} runs a reaper pass"

    def apply(self, ctx: Ctx) -> None:
        name = ctx.pick(self.worker)
        if name is None:
            with contextlib.suppress(FleetAtCapacity):
                ctx.run("reap")
        else:
            ctx.run("reap", worker=name)


# -- freezes in the middle of something ----------------------------------------------------


@dataclass(frozen=True)
class FreezeMid(Step):
    what: Literal["query", "tx", "reap"]

    def describe(self) -> str:
        return {
            "query": "a slow read, its worker frozen while the server runs it",
            "tx": "a long transaction, its worker frozen inside it (row lock held)",
            "reap": "a reaper pass, its worker frozen holding the leader lock",
        }[self.what]

    def apply(self, ctx: Ctx) -> None:
        try:
            if self.what == "query":
                p = ctx.fleet.freeze_mid_query(seconds=ctx.timings.lease_ttl / 2)
            elif self.what == "tx":
                p = ctx.fleet.freeze_mid_tx()
            else:
                p = ctx.fleet.freeze_mid_reap(pause_at="locked")
        except FleetAtCapacity:
            ctx.notes.append(f"freeze mid-{self.what} skipped: no worker free")
            return
        ctx.frozen_ops.append(p)


@dataclass(frozen=True)
class Thaw(Step):
    index: int

    def describe(self) -> str:
        return f"thaw frozen-in-the-middle worker #{self.index}; it finishes what it was doing"

    def apply(self, ctx: Ctx) -> None:
        if not ctx.frozen_ops:
            return
        p = ctx.frozen_ops.pop(self.index % len(ctx.frozen_ops))
        _thaw_and_finish(ctx, p)


# -- the network and the server ------------------------------------------------------------


@dataclass(frozen=True)
class AckLost(Step):
    f: Literal["write", "write_once"]

    def describe(self) -> str:
        return f"{self.f} whose answer is lost (the server commits, the reply never arrives)"

    def apply(self, ctx: Ctx) -> None:
        # On a warm worker whose lease was just renewed, so the toxic loses the answer
        # to the write itself, not to a connect or a heartbeat before it.
        name = ctx.an_idle_worker()
        if name is None:
            ctx.notes.append("ack_lost skipped: no worker free")
            return
        ctx.run("read", worker=name)
        ctx.fleet.ack_lost(f=self.f, worker=name)
        ctx.last_activity = time.time()


@dataclass(frozen=True)
class SocketReset(Step):
    mode: Literal["reset_peer", "disable"]

    def describe(self) -> str:
        how = (
            "a TCP reset when the answer comes back"
            if self.mode == "reset_peer"
            else "its proxy closed while the server is silent"
        )
        return f"a slow read whose socket is cut mid-query ({how})"

    def apply(self, ctx: Ctx) -> None:
        try:
            p = ctx.fleet.start("slow_read", seconds=0.3)
        except FleetAtCapacity:
            return
        ctx.fleet.socket_reset(p, mode=self.mode)
        p.wait()
        ctx.last_activity = time.time()


@dataclass(frozen=True)
class PgRestart(Step):
    def describe(self) -> str:
        return "PostgreSQL restarts (immediate: every backend dies)"

    def apply(self, ctx: Ctx) -> None:
        ctx.fleet.pg_restart()


@dataclass(frozen=True)
class TerminateBackend(Step):
    worker: int

    def describe(self) -> str:
        return f"an operator terminates idle worker #{self.worker}'s backend"

    def apply(self, ctx: Ctx) -> None:
        name = ctx.pick(self.worker)
        if name is not None:
            ctx.fleet.terminate_backend(name)


@dataclass(frozen=True)
class NetworkFault(Step):
    worker: int
    fault: Literal["latency", "proxy_down", "bandwidth"]

    def describe(self) -> str:
        what = {
            "latency": "50 ms of latency on",
            "proxy_down": "the proxy goes down for",
            "bandwidth": "bandwidth limited to 64 KB/s for",
        }[self.fault]
        return f"{what} idle worker #{self.worker}'s link (until the faults heal)"

    def apply(self, ctx: Ctx) -> None:
        name = ctx.pick(self.worker)
        if name is None:
            return
        if self.fault == "latency":
            ctx.fleet.latency(name, 50)
        elif self.fault == "bandwidth":
            ctx.fleet.bandwidth(name, 64)
        else:
            ctx.fleet.proxy_down(name)


@dataclass(frozen=True)
class ClockSkew(Step):
    worker: int
    fraction: float
    """Of the reaper grace, in [-0.5, 0.5]: skew the correct client tolerates."""

    def describe(self) -> str:
        return f"idle worker #{self.worker}'s clock skewed by {self.fraction:+.2f} x the grace"

    def apply(self, ctx: Ctx) -> None:
        name = ctx.pick(self.worker)
        if name is not None:
            ctx.fleet.clock_skew(name, self.fraction * ctx.timings.reaper_grace)


@dataclass(frozen=True)
class ForeignBackend(Step):
    who: Literal["other_app", "forged", "other_secret", "superuser"]

    def describe(self) -> str:
        return {
            "other_app": "another application connects (plain application_name)",
            "forged": "a backend with a forged lease of this service (bad signature)",
            "other_secret": "a backend with a lease of this service signed with another secret",
            "superuser": "a superuser session carrying an expired lease of this service",
        }[self.who]

    def apply(self, ctx: Ctx) -> None:
        expired_ms = int((time.time() - 3600) * 1000)
        tag = token.service_tag(SERVICE)
        if self.who == "other_app":
            app, dsn = "psql", ctx.pg.app_dsn
        elif self.who == "forged":
            app, dsn = f"s={tag};i=F0rGeD00;e={expired_ms};g=AAAAAAAAAAA", ctx.pg.app_dsn
        elif self.who == "other_secret":
            app, dsn = token.encode(SERVICE, "0ther5ec", expired_ms, OTHER_SECRET), ctx.pg.app_dsn
        else:
            app = token.encode(SERVICE, "5uperU5r", expired_ms, SECRET)
            dsn = make_conninfo(ctx.pg.admin_dsn, dbname=ctx.pg.app_db)
        conn = psycopg.connect(dsn, autocommit=True, application_name=app)
        pid = conn.info.backend_pid
        ctx.history.foreign(backend_pid=pid, kind=self.who)
        ctx.foreign.append(Foreign(self.who, conn, pid))


# -- races made deterministic --------------------------------------------------------------


@dataclass(frozen=True)
class QueryOutlivesLease(Step):
    """A query of unknown length outlives its lease while another worker reaps."""

    def describe(self) -> str:
        return (
            "a read of unknown length runs past its lease; meanwhile another worker"
            " runs a reaper pass"
        )

    def apply(self, ctx: Ctx) -> None:
        t = ctx.timings
        seconds = 2 * t.lease_ttl + t.reaper_grace + t.min_idle + 0.5
        try:
            slow = ctx.fleet.start("slow_read", seconds=seconds)
        except FleetAtCapacity:
            return
        started = ctx.fleet.wait_query_started(slow.worker, after=slow.since)
        ctx.fleet.wait_backend_active(int(started["payload"]["backend_pid"]), "pg_sleep")
        lease_expiry = float(started["payload"].get("lease_expiry") or time.time() + t.lease_ttl)
        _wait_until_wall(max(lease_expiry, time.time()) + t.reaper_grace + t.min_idle + 0.05)
        with contextlib.suppress(FleetAtCapacity):
            ctx.fleet.start("reap").wait()
        slow.wait()
        ctx.last_activity = time.time()


@dataclass(frozen=True)
class PeerRace(Step):
    """A pg-aequor peer of the service (same secret, no fencing) reuses its expired
    connection between a reaper's scan and its kill."""

    def describe(self) -> str:
        return (
            "a Node peer of this service leaves an expired idle connection; a reaper"
            " scans it, then the peer starts a query on it before the kill"
        )

    def apply(self, ctx: Ctx) -> None:
        t = ctx.timings
        expiry = time.time() + 0.05
        app = token.encode(SERVICE, "N0dePeer", int(expiry * 1000), SECRET)
        peer = psycopg.connect(ctx.pg.app_dsn, autocommit=True, application_name=app)
        pid = peer.info.backend_pid
        ctx.history.backend(
            worker="peer", backend_pid=pid, application_name=app, lease_expiry=expiry
        )
        try:
            _wait_until_wall(expiry + t.reaper_grace + t.min_idle + 0.05)
            try:
                reap = ctx.fleet.start("reap", pause_at="scanned")
            except FleetAtCapacity:
                return
            ctx.fleet.wait_paused(reap.worker, "scanned", after=reap.since)
            op = _PeerQuery(ctx, peer, pid, seconds=0.5)
            op.start()
            ctx.fleet.wait_backend_active(pid, "pg_sleep")
            ctx.fleet.resume(reap.worker)
            reap.wait()
            op.join()
        finally:
            peer.close()
            ctx.history.foreign(backend_pid=pid, kind="peer", f="release")
        ctx.last_activity = time.time()


@dataclass(frozen=True)
class ThawIntoTx(Step):
    """A worker thawed after its lease expired opens a transaction and holds it."""

    worker: int

    def describe(self) -> str:
        return (
            f"idle worker #{self.worker} is thawed after its lease expired and holds a"
            " transaction open past min_idle while another worker reaps"
        )

    def apply(self, ctx: Ctx) -> None:
        t = ctx.timings
        name = ctx.pick(self.worker)
        if name is None:
            return
        Age().apply(ctx)
        tx = ctx.fleet.start("long_tx", worker=name)
        ctx.fleet.wait_paused(tx.worker, "tx", after=tx.since)
        _wait_until_wall(time.time() + t.min_idle + 0.05)
        try:
            ctx.fleet.start("reap").wait()
        except FleetAtCapacity:
            ctx.notes.append("thaw_into_tx: no other worker to reap")
        finally:
            ctx.fleet.resume(tx.worker)
            tx.wait()
        ctx.last_activity = time.time()


# -- helpers -------------------------------------------------------------------------------


def _wait_until_wall(until: float) -> None:
    """Let wall-clock time reach ``until``: leases expire by the clock, nothing else."""
    event = threading.Event()
    while (remaining := until - time.time()) > 0:
        event.wait(remaining)


def _thaw_and_finish(ctx: Ctx, p: Pending) -> None:
    with contextlib.suppress(WorkerUnavailable):
        if ctx.fleet.is_frozen(p.worker):
            ctx.fleet.thaw(p.worker, resume=True)
    p.wait()
    ctx.last_activity = time.time()


class _PeerQuery(threading.Thread):
    """The Node peer's query, recorded in the history as worker ``peer``."""

    def __init__(self, ctx: Ctx, conn: psycopg.Connection[Any], pid: int, seconds: float) -> None:
        super().__init__(name="peer-query", daemon=True)
        self.ctx, self.conn, self.pid, self.seconds = ctx, conn, pid, seconds

    def run(self) -> None:
        h = self.ctx.history
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


# -- running and judging -------------------------------------------------------------------


@dataclass
class Judged:
    """One schedule's run and the properties' verdicts on it."""

    schedule: tuple[Step, ...]
    bug: Bug | None
    verdicts: list[Verdict]
    run: Run
    history_path: Path
    notes: list[str]

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def failed(self) -> list[str]:
        return [v.prop for v in self.verdicts if not v.ok]

    def story(self) -> list[str]:
        """The schedule in words: which client, each step, the settle phase."""
        client = self.bug.client_class if self.bug else CORRECT
        lines = [f"client: {client}", "schedule:"]
        lines += [f"  {i}. {s.describe()}" for i, s in enumerate(self.schedule, 1)]
        lines.append(
            "  then: faults healed, invocations keep arriving for the convergence"
            " bound, every frozen worker is thawed and invoked once"
        )
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"history: {self.history_path}")
        return lines

    def narrative(self) -> str:
        """The story and one line per property."""
        verdicts = [f"{v.prop} {'holds' if v.ok else 'FAILS'}: {v.summary}" for v in self.verdicts]
        return "\n".join([*self.story(), *verdicts])

    def explain_failures(self) -> str:
        return "\n\n".join(render_verdict(v) for v in self.verdicts if not v.ok)


class PropertyViolation(AssertionError):
    """A property failed on a schedule; the message says the schedule in words."""

    def __init__(self, judged: Judged) -> None:
        self.judged = judged
        super().__init__(
            f"properties {', '.join(judged.failed)} failed\n{judged.narrative()}\n\n"
            f"{judged.explain_failures()}"
        )


class LiveRun:
    """One example in progress: apply steps, look at the run so far, then finish."""

    def __init__(
        self, env: ChaosEnv, ctx: Ctx, sampler: ActivitySampler, history_path: Path, bug: Bug | None
    ) -> None:
        self.env, self.ctx, self.sampler = env, ctx, sampler
        self.history_path, self.bug = history_path, bug
        self.steps: list[Step] = []
        self.judged: Judged | None = None

    def apply(self, step: Step) -> None:
        self.steps.append(step)
        step.apply(self.ctx)

    def snapshot(self) -> Run:
        """The run so far (history, samples, database now), for invariants."""
        return Run(
            load_history(self.history_path),
            self.sampler.samples,
            self.ctx.fleet.final_state(),
            self.env.run_config(),
        )

    def finish(self) -> Judged:
        """Settle, then judge the whole run with the five properties, and cross-check
        the reaper's ledger against the server log's terminations."""
        self.env._settle(self.ctx)
        final = self.ctx.fleet.final_state()
        self.release_foreign()
        run = Run(
            load_history(self.history_path), self.sampler.samples, final, self.env.run_config()
        )
        self.ctx.notes.append(self._log_cross_check(run))
        self.judged = Judged(
            tuple(self.steps), self.bug, check_all(run), run, self.history_path, self.ctx.notes
        )
        return self.judged

    def _log_cross_check(self, run: Run) -> str:
        """Kills the ledger records vs terminations the server logged, for this run's
        backends (the cluster is shared, its log holds other runs too)."""
        ours = {e.backend_pid for e in run.events if isinstance(e, BackendEvent | ForeignEvent)}
        ours |= {r.pid for s in run.samples for r in s.rows}
        logged = [p for p in terminations_from_log(self.env.pg.read_log()) if p in ours]
        external = [
            int(e.value["backend_pid"])
            for e in run.events
            if isinstance(e, FaultEvent)
            and e.f == "terminate_backend"
            and e.value.get("backend_pid")
        ]
        check = cross_check_kills([k.pid for k in run.kills], logged, external)
        if not self.env.pg.read_log():
            return "server log not readable here: ledger not cross-checked"
        if check.consistent:
            return f"server log: {len(logged)} termination(s), all accounted for by the ledger"
        return (
            f"server log DISAGREES with the ledger: killed but never logged {check.ledger_only},"
            f" logged but unaccounted {check.log_only}"
        )

    def release_foreign(self) -> None:
        for f in self.ctx.foreign:
            f.conn.close()
            self.ctx.history.foreign(backend_pid=f.pid, kind=f.kind, f="release")
        self.ctx.foreign.clear()


class ChaosEnv:
    """Shared real servers; runs schedules against fresh fleets on them."""

    def __init__(
        self,
        pg: PostgresServer,
        proxies: ToxiproxyServer,
        *,
        timings: Timings | None = None,
        cap: int = 3,
        keep: Path | None = None,
    ) -> None:
        self.pg = pg
        self.proxies = proxies
        self.timings = timings or Timings()
        self.cap = cap
        self.keep = keep
        """Where to keep run directories (None: a temp dir, removed when the run passes)."""
        self._runs = 0

    def run_config(self) -> RunConfig:
        t = self.timings
        return RunConfig(
            service=token.service_tag(SERVICE),
            connection_limit=self.cap,
            lease_ttl=t.lease_ttl,
            min_idle=t.min_idle,
            max_cooldown=t.max_cooldown,
            grace=t.reaper_grace,
            slack=t.slack,
            retry_budget_s=t.retry_budget,
            verify=lambda app: token.verify(app, SERVICE, SECRET) is not None,
        )

    def run(self, schedule: Sequence[Step], bug: Bug | None = None) -> Judged:
        """Run ``schedule`` on a fresh fleet with ``bug``'s client (None: the correct one)."""
        with self.begin(bug) as live:
            for step in schedule:
                live.apply(step)
            return live.finish()

    @contextlib.contextmanager
    def begin(self, bug: Bug | None = None, run_dir: Path | None = None) -> Iterator[LiveRun]:
        """A fresh fleet, history and sampler, released on every exit path.

        ``run_dir``: where ``history.jsonl`` and ``activity.jsonl`` go (kept); by
        default a new directory under ``keep`` or the temp dir, removed if the run
        passes and nothing asked to keep it."""
        self._runs += 1
        given = run_dir is not None
        if run_dir is None:
            base = self.keep or Path(tempfile.gettempdir())
            base.mkdir(parents=True, exist_ok=True)
            run_dir = Path(tempfile.mkdtemp(prefix=f"chaos-{self._runs:03d}-", dir=base))
        lease = {**self.timings.lease_kwargs(), **(dict(bug.lease_overrides) if bug else {})}
        config = FleetConfig(
            lease=lease,
            max_workers=self.cap,
            client_class=bug.client_class if bug else CORRECT,
            op_timeout=20.0,
        )
        self._clear_server()
        history_path = run_dir / "history.jsonl"
        passed = False
        with (
            HistoryWriter(history_path) as history,
            ActivitySampler(
                self.pg.admin_dsn, self.pg.app_db, path=run_dir / "activity.jsonl"
            ) as sampler,
            Fleet(self.pg, self.proxies, history, config) as fleet,
        ):
            fleet.reset_data()
            live = LiveRun(
                self,
                Ctx(fleet, history, self.pg, self.timings, self.cap),
                sampler,
                history_path,
                bug,
            )
            try:
                yield live
                passed = live.judged is not None and live.judged.ok
            finally:
                live.release_foreign()
        if passed and self.keep is None and not given:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _settle(self, ctx: Ctx) -> None:
        """Heal; keep invocations arriving past the convergence bound; thaw and invoke all."""
        fleet, t = ctx.fleet, self.timings
        fleet.heal()
        until = time.monotonic() + t.bound + t.settle_extra
        pace = threading.Event()
        while time.monotonic() < until:
            # a read on every worker that can take one, cold-starting up to the cap
            for p in ctx.start_reads(self.cap):
                with contextlib.suppress(FleetError):
                    p.wait()
            pace.wait(t.wave_pace)
        for p in list(ctx.frozen_ops):
            _thaw_and_finish(ctx, p)
        ctx.frozen_ops.clear()
        for name in ctx.idle():
            with contextlib.suppress(WorkerUnavailable):
                fleet.invoke("read", worker=name)

    def _clear_server(self) -> None:
        """No backend of an earlier example survives into this one."""
        with psycopg.connect(self.pg.admin_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.pg.app_db,),
            )
            deadline = time.monotonic() + 10
            while conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND pid <> pg_backend_pid()",
                (self.pg.app_db,),
            ).fetchone() != (0,):
                if time.monotonic() > deadline:
                    raise FleetError("backends of an earlier example would not end")
                threading.Event().wait(0.01)


def judge(env: ChaosEnv, schedule: Sequence[Step], bug: Bug | None = None) -> Judged:
    """Run and raise :class:`PropertyViolation` if any property fails."""
    judged = env.run(schedule, bug)
    if not judged.ok:
        raise PropertyViolation(judged)
    return judged
