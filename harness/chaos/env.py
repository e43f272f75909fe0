"""The chaos environment: schedules run end to end on real components, and judged.

:class:`ChaosEnv` holds the shared real servers (PostgreSQL, a Toxiproxy
server); :meth:`ChaosEnv.begin` gives one example a fresh fleet (one proxy per
worker), its history, the ``pg_stat_activity`` sampler and an
:class:`~harness.chaos.interpreter.Interpreter`, all released on every exit
path. :meth:`LiveRun.finish` runs the **settle** phase (faults healed,
invocations still arriving for the convergence bound, then every frozen
worker thawed and invoked once), reads the final database state, and judges
the properties (:data:`harness.check.CHECKS`) over the recorded run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness.chaos.interpreter import Interpreter
from harness.chaos.judge import Judged, raise_unless_ok
from harness.chaos.steps import Step
from harness.chaos.timings import SECRET, SERVICE_TAG, Timings
from harness.chaos.zoo import CORRECT, Bug
from harness.check import Run, RunConfig, check_all, check_p2, wire
from harness.check.situations import situations
from harness.check.terminations import cross_check as cross_check_terminations
from harness.errors import (
    FleetAtCapacity,
    FleetError,
    FleetTimeout,
    WaitTimeout,
    WorkerUnavailable,
)
from harness.fleet import Fleet, FleetConfig
from harness.fleet.drivers import SERVICE_APPLICATION, DriverSpec
from harness.history import HistoryWriter, load_history
from harness.infra.owned import owned, signals_held
from harness.infra.pgbouncer import PgBouncer
from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer
from harness.lease import LeaseConfig
from harness.observe import ActivitySampler, connection_events, refusal_events, terminations
from harness.wait import poll

SAMPLE_INTERVAL = 0.05
"""The sampler's interval in every chaos run (20 Hz; the promise is at least 10)."""

TURN_LOCK = 0x7468617770726F66
"""The session advisory lock (one bigint key, "thawprof"; the reapers' locks take two
int4 keys, another key space) by which examples on one database take turns."""
TURN_APP = "thawproof turn"
"""The application_name of the connection that holds a run's turn (not the service's
``s=<service>;`` prefix: no check counts it)."""

TURN_NOTED = 0.5
"""A wait for the turn longer than this is noted in the run (a lock is taken in ms)."""

DECIDED_EVERY = 0.1
"""How often the settle phase asks whether the record decides P2 yet (a snapshot costs
about 12 ms with three workers)."""


def app_connection_limit(pg: PostgresServer) -> int:
    """What the server admits for the application role: ``max_connections`` minus the
    slots reserved for superusers, minus other roles' backends now, minus two kept for
    the harness's own connections of each example: the sampler's and the one holding
    the run's turn (:meth:`ChaosEnv._turn`)."""
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int,"
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            "  AND usename IS DISTINCT FROM %s AND pid <> pg_backend_pid())::int",
            (pg.app_role,),
        ).fetchone()
    assert row is not None
    max_connections, reserved, others = row
    return max(1, int(max_connections) - int(reserved) - int(others) - 2)


def _chaos_verify(application_name: str) -> bool:
    return wire.genuine(application_name, SERVICE_TAG, SECRET.encode())


def verify_for(service: str) -> Callable[[str], bool] | None:
    """The signature check of the harness's own chaos service when ``service`` (a
    ``RunConfig.service``) is it, else None: how a stored run, which never holds the
    secret, is judged again (:func:`harness.report.analyze`)."""
    return _chaos_verify if service == SERVICE_TAG else None


class LiveRun:
    """One example in progress: apply steps, look at the run so far, then finish."""

    def __init__(
        self,
        env: ChaosEnv,
        interpreter: Interpreter,
        sampler: ActivitySampler,
        history_path: Path,
        bug: Bug | None,
    ) -> None:
        self.env, self.interpreter, self.sampler = env, interpreter, sampler
        self.history_path, self.bug = history_path, bug
        self.steps: list[Step] = []
        self.judged: Judged | None = None
        self.started_wall = time.time()
        """When this run began (after the previous example's backends were ended)."""
        self.bouncer: PgBouncer | None = None
        """The PgBouncer the workers go through, for drivers that use one."""

    @property
    def notes(self) -> list[str]:
        return self.interpreter.notes

    def apply(self, step: Step) -> None:
        self.steps.append(step)
        self.interpreter.history.step(len(self.steps), step.describe())
        self.interpreter.apply(step)

    def snapshot(self) -> Run:
        """The run so far (history, samples, database now), for invariants."""
        return Run(
            load_history(self.history_path),
            self.sampler.samples,
            self.interpreter.fleet.data.final_state(),
            self.env.run_config(),
        )

    def finish(self) -> Judged:
        """Settle, then judge the whole run with every property, and cross-check
        the reaper's ledger against the server log's terminations."""
        self.env.settle(self.interpreter, self.sampler, self.snapshot)
        final = self.interpreter.fleet.data.final_state()
        self.interpreter.release_foreign()
        self._record_terminations()
        run = Run(
            load_history(self.history_path),
            self.sampler.samples,
            final,
            self.env.run_config(),
            harness_faults=tuple(self.interpreter.fleet.harness_faults),
        )
        self.notes.append(self._log_cross_check(run))
        self.judged = Judged(
            tuple(self.steps), self.bug, check_all(run), run, self.history_path, self.notes
        )
        driver = self.env.driver
        client = self.bug.name if self.bug else (driver.name if driver else "correct")
        record_situations(run, client)
        return self.judged

    def _record_terminations(self) -> None:
        """Every termination the server logged during the run, into the history (what
        P1 and P5 judge for every driver; see :mod:`harness.check.terminations`), and
        its refusals and authorized connections."""
        text = self.env.pg.read_log()
        if not text:
            self.notes.append("no readable server log here: terminations judged from the ledger")
            return
        offset = time.time() - time.monotonic()
        found = terminations(text, since_wall=self.started_wall, monotonic_offset=offset)
        for ev in found:
            self.interpreter.history.append(ev)
        causes = sorted({e.cause for e in found})
        self.notes.append(
            f"terminations during the run, from the server's log: {len(found)}"
            + (f" ({', '.join(causes)})" if causes else "")
        )
        for conn in connection_events(text, since_wall=self.started_wall, monotonic_offset=offset):
            self.interpreter.history.append(conn)
        refused_events = refusal_events(text, since_wall=self.started_wall, monotonic_offset=offset)
        for refusal in refused_events:
            self.interpreter.history.append(refusal)
        refused = len(refused_events)
        if refused:
            self.notes.append(
                f"the server refused {refused} connection attempt(s) with 53300 (its log;"
                " retries included)"
            )

    def _log_cross_check(self, run: Run) -> str:
        """The reaper's ledger against the server's record of terminations (where the
        server log is readable): a kill the ledger holds that the server never logged is
        a disagreement; kills by others (the server's timeouts, a driver's own cleaning,
        the harness's faults) are listed by who did them."""
        if not self.env.pg.read_log():
            return "server log not readable here: ledger not cross-checked"
        terms = run.terminations
        missing = cross_check_terminations(terms, has_server_log=True)
        if missing:
            return "server log DISAGREES with the ledger: " + "; ".join(missing)
        others: dict[str, int] = {}
        for t in terms:
            if t.ledger is None:
                key = "the harness" if t.by_harness else t.by.split(" of ")[0].split(" (app")[0]
                others[key] = others.get(key, 0) + 1
        ledger = sum(1 for t in terms if t.ledger is not None)
        rest = ", ".join(f"{n} by {who}" for who, n in sorted(others.items()))
        return f"server log: {ledger} reaper kill(s), all accounted for by the ledger" + (
            f"; other terminations: {rest}" if rest else ""
        )


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
        scratch: Path | None = None,
        seed: int | None = None,
        clock_start: float | None = None,
        driver: DriverSpec | None = None,
    ) -> None:
        self.pg = pg
        self.proxies = proxies
        self.timings = timings or Timings()
        self.cap = cap
        self.limit = min(cap, app_connection_limit(pg))
        """The most backends the service may hold: its concurrency cap, or what the server
        really admits for the application role if that is less."""
        self.keep = keep
        """Where to keep run directories (None: a temp dir, removed when the run passes)."""
        self.scratch = scratch
        """Where those temp dirs go (None: the system's temp dir); a failing example's
        stays there as evidence (the test suite gives pytest's own temp dir)."""
        self.seed = seed
        """Seeds the workers' client randomness (None: random)."""

        self.clock_start = clock_start
        """The run's zero (``RunConfig.clock_start``): where the progress output starts."""

        self.driver = driver
        """What the workers run (None: the bundled lease client, or the bug's)."""
        self._roles: dict[str, str] = {}
        """Neighbour roles' DSNs (created once per server, see Interpreter.role_dsn)."""
        self._runs = 0

    @property
    def settles_early(self) -> bool:
        """The settle's arrivals may end once the record decides P2 (:meth:`settle`).
        Not for a fleet larger than the server: the sandboxes the arrivals do not
        reach keep becoming zombies (measured in the scale test), so it keeps the full
        settle; nor when the timings ask for the full length."""
        return self.timings.settle_early and self.cap <= self.limit

    def run_config(self) -> RunConfig:
        t = self.timings
        common: dict[str, Any] = {
            "service": SERVICE_TAG,
            "lease_ttl": t.lease_ttl,
            "min_idle": t.min_idle,
            "max_cooldown": t.max_cooldown,
            "grace": t.reaper_grace,
            "slack": t.slack,
            "retry_budget_s": t.retry_budget,
            "sample_interval": SAMPLE_INTERVAL,
        }
        if self.driver is not None and not self.driver.leases:
            # No leases to read: the service's backends are those carrying its one
            # application_name; there is no signature to check.
            return RunConfig(
                **common, connection_limit=self.cap, own_app_prefix=SERVICE_APPLICATION
            )
        # the margins the client really runs with (AUTO ones derived from the TTL)
        lease = LeaseConfig(**t.lease_kwargs())
        return RunConfig(
            **common,
            connection_limit=self.limit,
            verify=_chaos_verify,
            max_kills=lease.max_kills,
            fence_margin=lease.fence_margin,
            heartbeat_margin=lease.heartbeat_margin,
            renews_only_at_margin=self.driver is None,
            clock_start=self.clock_start,
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
        record: str | None = None
        if run_dir is None:
            base = self.keep or self.scratch or Path(tempfile.gettempdir())
            base.mkdir(parents=True, exist_ok=True)
            with signals_held():
                run_dir = Path(tempfile.mkdtemp(prefix=f"chaos-{self._runs:03d}-", dir=base))
                if self.keep is None:
                    record = owned().directory(run_dir, "chaos example")
        lease = {**self.timings.lease_kwargs(), **(dict(bug.lease_overrides) if bug else {})}
        with self._turn() as waited:
            self._clear_server()
            history_path = run_dir / "history.jsonl"
            passed = False
            with (
                self._driver_environment(run_dir.name) as (driver, upstream, bouncer),
                HistoryWriter(history_path) as history,
                ActivitySampler(
                    self.pg.admin_dsn,
                    self.pg.app_db,
                    interval=SAMPLE_INTERVAL,
                    path=run_dir / "activity.jsonl",
                ) as sampler,
                Fleet(
                    self.pg,
                    self.proxies,
                    history,
                    FleetConfig(
                        lease=lease,
                        max_workers=self.cap,
                        client_class=bug.client_class if bug else CORRECT,
                        op_timeout=20.0,
                        seed=self.seed,
                        driver=driver,
                        upstream=upstream,
                    ),
                ) as fleet,
            ):
                fleet.data.reset()
                interpreter = Interpreter(
                    fleet,
                    history,
                    self.pg,
                    self.timings,
                    self.cap,
                    roles=self._roles,
                    aequor_namespace=(
                        LeaseConfig(**lease).aequor_lock_namespace if driver is None else None
                    ),
                )
                live = LiveRun(self, interpreter, sampler, history_path, bug)
                live.bouncer = bouncer
                if waited > TURN_NOTED:
                    live.notes.append(
                        f"waited {waited:.1f}s for another run's example on database"
                        f" {self.pg.app_db} (examples on one database take turns)"
                    )
                if driver is not None:
                    live.notes.append(f"driver: {driver.name} ({driver.description})")
                try:
                    yield live
                    passed = live.judged is not None and live.judged.ok
                finally:
                    interpreter.release_foreign()
            if passed and self.keep is None and not given:
                shutil.rmtree(run_dir, ignore_errors=True)
        if record is not None:
            owned().release(record)  # removed, or kept on purpose as evidence

    @contextlib.contextmanager
    def _driver_environment(
        self, tag: str
    ) -> Iterator[tuple[DriverSpec | None, tuple[str, int] | None, PgBouncer | None]]:
        """What the driver needs around it, for one run, undone on every exit path:

        - ``log_statement = 'all'`` for the application role, so the server log
          names who called ``pg_terminate_backend`` (see :mod:`harness.observe.serverlog`);
        - the driver's role settings (``server_timeout``: the server's idle timeouts);
        - a PgBouncer in transaction mode (``pgbouncer``, ``lease-pgbouncer``), with its
          own proxy in front of the server so its links can be cut too.
        """
        driver = self.driver
        settings = {"log_statement": "'all'"}
        if driver is not None:
            settings.update({k: str(v) for k, v in driver.role_settings.items()})
            if driver.name == "serverless-postgres" or "serverless" in driver.name:
                # its clean() acts past 80% of maxConnections: the service's real limit
                driver = _with_options(driver, maxConnections=self.cap)
        applied = self._role_settings(settings)
        bouncer: PgBouncer | None = None
        link_name = f"pgbouncer-up-{tag}"
        try:
            upstream: tuple[str, int] | None = None
            if driver is not None and driver.via_pgbouncer:
                link = self.proxies.create_proxy(link_name, (self.pg.host, self.pg.port))
                password = conninfo_to_dict(self.pg.app_dsn).get("password")
                bouncer = PgBouncer(
                    upstream=(link.host, link.port),
                    dbname=self.pg.app_db,
                    user=self.pg.app_role,
                    password=str(password or ""),
                    pool_size=self.cap,
                )
                upstream = (bouncer.host, bouncer.port)
            yield driver, upstream, bouncer
        finally:
            if bouncer is not None:
                bouncer.stop()
                with contextlib.suppress(Exception):
                    self.proxies.delete_proxy(link_name)
            self._role_settings(dict.fromkeys(applied, ""), reset=True)

    def _role_settings(self, settings: dict[str, str], *, reset: bool = False) -> list[str]:
        """``ALTER ROLE <app role> SET`` (or ``RESET``) each; the names applied. A server
        that refuses (no superuser here) keeps its own settings: noted, not fatal."""
        done: list[str] = []
        role = sql.Identifier(self.pg.app_role)
        try:
            with psycopg.connect(self.pg.admin_dsn, autocommit=True) as conn:
                for name, value in settings.items():
                    if reset:
                        stmt = sql.SQL("ALTER ROLE {} RESET {}").format(role, sql.Identifier(name))
                    else:
                        stmt = sql.SQL("ALTER ROLE {} SET {} = {}").format(
                            role, sql.Identifier(name), sql.SQL(value)
                        )
                    conn.execute(stmt)
                    done.append(name)
        except psycopg.Error:
            pass
        return done

    def settle(
        self,
        it: Interpreter,
        sampler: ActivitySampler,
        snapshot: Callable[[], Run] | None = None,
    ) -> None:
        """Heal; keep invocations arriving past the convergence bound; thaw and invoke all.

        The arrivals last ``bound + settle_extra`` seconds at most. With ``snapshot``
        (the run so far) and :attr:`Timings.settle_early`, they end as soon as the
        record decides P2 (:meth:`_p2_decided`): what the bound requires and no more.

        The arrivals stay within what the server admits; a fleet larger than the
        limit keeps room to spare, at most half the limit in flight at once (a newcomer
        can always connect, and its reaper frees what expired), and the closing pass
        over every sandbox is paced by the server's count (:meth:`_wait_for_room`). A
        fleet larger than the limit thawed in one lease period is an overload no client
        can absorb; after the deadline that would be the harness's doing, not the
        client's."""
        fleet, t = it.fleet, self.timings
        fleet.nemesis.heal()
        # a fleet the server admits whole: every worker may be in flight; a larger one
        # keeps half the limit free for newcomers (and their reapers)
        in_flight = self.limit if self.cap <= self.limit else max(1, self.limit // 2)
        decided: Callable[[], bool] | None = None
        if snapshot is not None and self.settles_early:
            decided = functools.partial(self._p2_decided, it, snapshot)
        self._keep_arriving(it, t.bound + t.settle_extra, in_flight, decided)
        for p in list(it.frozen_ops):
            it.thaw_and_finish(p)
        it.frozen_ops.clear()
        closing = time.monotonic()
        patient = True
        for name in self._closing_order(fleet, it.idle()):
            # once the server did not free a slot within the bound, it will not: the
            # rest go in unpaced (a client that never reaps must not make this pass
            # wait the bound once per sandbox)
            patient = patient and self._wait_for_room(fleet, sampler, name)
            with contextlib.suppress(WorkerUnavailable):
                fleet.invoke("read", worker=name)
        took = time.monotonic() - closing
        if took > t.lease_ttl / 2:
            # A long closing pass (a fleet larger than the server, paced) parks
            # sandboxes whose leases run out before the record ends, or just after:
            # zombies made before the last invocation. Invocations go on for the
            # bound, so they are judged (measured: with the pass shorter than one
            # lease, the record still ended 0.1 s after the first of them expired,
            # and P2 was rightly unknown). Half a lease is the margin for what
            # follows the pass before the record ends.
            it.notes.append(
                f"the closing pass took {took:.1f}s (a lease is {t.lease_ttl:g}s):"
                f" invocations went on for {t.bound + t.settle_extra:.1f}s more"
            )
            self._keep_arriving(it, t.bound + t.settle_extra, in_flight)
            # Those arrivals park sandboxes too (each one invoked and not again expires a
            # lease later; measured: two expired 0.9 s before the record ended, P2
            # unknown). End with every sandbox that holds a backend renewed at once, so
            # none becomes a zombie before the record ends.
            self._renew_every_backend(it, sampler, in_flight)

    def _renew_every_backend(
        self, it: Interpreter, sampler: ActivitySampler, in_flight: int
    ) -> None:
        """Invoke, ``in_flight`` at a time, every idle sandbox whose backend the latest
        sample still shows: each renews its lease on its own connection (no free slot
        needed), so the sweep takes a moment, not a paced pass."""
        latest = sampler.samples[-1:]
        alive = {r.pid for r in latest[0].rows} if latest else set()
        fleet = it.fleet
        names = []
        for name in it.idle():
            with contextlib.suppress(WorkerUnavailable):
                if fleet.worker(name).backend_pid in alive:
                    names.append(name)
        for i in range(0, len(names), max(1, in_flight)):
            started = []
            for name in names[i : i + in_flight]:
                with contextlib.suppress(WorkerUnavailable, FleetAtCapacity):
                    started.append(fleet.start("read", worker=name))
            for p in started:
                with contextlib.suppress(FleetError):
                    p.wait()

    def _keep_arriving(
        self,
        it: Interpreter,
        seconds: float,
        in_flight: int,
        decided: Callable[[], bool] | None = None,
    ) -> None:
        """Reads arriving for ``seconds``, at most ``in_flight`` at once, Lambda-routed;
        sooner over once ``decided()`` says the record needs no more (asked at most
        every :data:`DECIDED_EVERY` seconds)."""
        until = time.monotonic() + seconds
        pace = threading.Event()
        ask_at = 0.0
        while time.monotonic() < until:
            for p in it.start_reads(in_flight):
                with contextlib.suppress(FleetError):
                    p.wait()
            if decided is not None and time.monotonic() >= ask_at:
                if decided():
                    took = seconds - (until - time.monotonic())
                    it.notes.append(
                        f"settle: invocations arrived for {took:.2f}s of at most"
                        f" {seconds:.2f}s, until the record decided P2"
                    )
                    return
                ask_at = time.monotonic() + DECIDED_EVERY
            pace.wait(self.timings.wave_pace)

    @staticmethod
    def _p2_decided(it: Interpreter, snapshot: Callable[[], Run]) -> bool:
        """The record so far decides P2 (ok or fail; not unknown) and holds every zombie
        still to come: a sandbox frozen in the middle of an op (the arrivals never reach
        it) whose lease has not run out yet, sampled, is a zombie the record has not seen
        and must judge, so the arrivals wait for it."""
        now = time.time()
        for p in it.frozen_ops:
            with contextlib.suppress(WorkerUnavailable):
                info = it.fleet.worker(p.worker)
                sampled_expiry = (info.lease_expiry or 0.0) + 2 * SAMPLE_INTERVAL
                if info.backend_pid is not None and sampled_expiry > now:
                    return False
        return not check_p2(snapshot()).unknown

    @staticmethod
    def _closing_order(fleet: Fleet, names: list[str]) -> list[str]:
        """Sandboxes that still hold a backend first: invoked, each reuses (or drops and
        replaces) its own slot and its reaper frees what expired. A sandbox without one
        needs a free slot: refused at the door, it cannot reap (measured: 36 expired
        idle backends filled a server, and a newcomer invoked then got 53300)."""

        def holds_backend(name: str) -> bool:
            try:
                return fleet.worker(name).backend_pid is not None
            except WorkerUnavailable:
                return False

        return sorted(names, key=lambda n: not holds_backend(n))

    def _wait_for_room(self, fleet: Fleet, sampler: ActivitySampler, name: str) -> bool:
        """Before a sandbox that must open a connection is invoked (it holds none): wait
        until the server's latest sample leaves the service a slot to spare. Waits at
        most the convergence bound, then lets it in anyway (the verdicts judge what
        follows). False: the bound passed without a free slot.

        While it waits, the traffic goes where Lambda sends it, to a warm sandbox: one
        that holds a backend whose lease has run out renews or replaces it, and its
        reaper frees what expired. Without that nobody reaps: every other sandbox is
        frozen, and a newcomer refused at the door cannot (measured: 100 sandboxes,
        36 slots, the closing pass stuck at a full server)."""
        if self.driver is not None and not self.driver.leases:
            return True  # no lease, no reaper to make room: its backends are judged as they are
        try:
            if fleet.worker(name).backend_pid is not None:
                return True
        except WorkerUnavailable:
            return True
        prefix = self.run_config().own_app_prefix

        def room() -> bool | None:
            latest = sampler.samples[-1:]
            if not latest:
                return None
            rows = [r for r in latest[0].rows if (r.application_name or "").startswith(prefix)]
            if len(rows) <= self.limit - 2:
                return True
            warm = self._spent_warm_sandbox(fleet)
            if warm is not None:
                with contextlib.suppress(WorkerUnavailable, FleetError):
                    fleet.invoke("read", worker=warm)
            return None

        t = self.timings
        try:
            poll(room, timeout=t.bound, what="a free connection slot", interval=t.wave_pace)
        except WaitTimeout:
            return False
        return True

    @staticmethod
    def _spent_warm_sandbox(fleet: Fleet) -> str | None:
        """An idle sandbox holding a backend whose lease has run out (None: none)."""
        now = time.time()
        for name in fleet.worker_names(state="idle"):
            with contextlib.suppress(WorkerUnavailable):
                info = fleet.worker(name)
                if info.backend_pid is not None and (info.lease_expiry or 0.0) < now:
                    return name
        return None

    @contextlib.contextmanager
    def _turn(self) -> Iterator[float]:
        """This run's turn on its database, held until the example ends: a session
        advisory lock (:data:`TURN_LOCK`, database-scoped) on a connection of its own
        (named :data:`TURN_APP`); yields the seconds it waited. Another runner on the
        same database (one server, one ``THAWPROOF_DSN``) waits for it: examples there
        take turns, so one runner's clearing and resets never land in another's
        example, where they would read as the client's failures (measured: P2-count
        and P3-phantom, two runners on one database at once)."""
        dsn = make_conninfo(self.pg.admin_dsn, dbname=self.pg.app_db, application_name=TURN_APP)
        with psycopg.connect(dsn, autocommit=True) as conn:
            asked = time.monotonic()
            conn.execute("SELECT pg_advisory_lock(%s)", (TURN_LOCK,))
            waited = time.monotonic() - asked
            try:
                yield waited
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (TURN_LOCK,))

    def _clear_server(self) -> None:
        """No backend of an earlier example survives into this one. The turn
        connections stay: this run's, and other runners' waiting for theirs (measured:
        a runner waiting for its turn was killed by the clearing of the one holding it)."""
        earlier = (
            " FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND application_name IS DISTINCT FROM %s"
        )
        params = (self.pg.app_db, TURN_APP)
        with psycopg.connect(self.pg.admin_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid)" + earlier, params)

            def gone() -> bool | None:
                row = conn.execute("SELECT count(*)" + earlier, params).fetchone()
                return True if row == (0,) else None

            poll(
                gone,
                timeout=10,
                what="the backends of an earlier example to end",
                error=FleetTimeout,
            )


SITUATIONS_LOG = "THAWPROOF_SITUATIONS"
"""When set, the file every judged run appends its situation counts to (one JSON line):
how ``make test`` learns what its chaos suites reached, across processes."""


def record_situations(run: Run, client: str) -> None:
    """Append ``run``'s situation counts to :data:`SITUATIONS_LOG`'s file, if set."""
    path = os.environ.get(SITUATIONS_LOG)
    if not path:
        return
    line = json.dumps(
        {"client": client, "situations": situations(run)},
        separators=(",", ":"),
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())  # one write: whole lines from many processes
    finally:
        os.close(fd)


def _with_options(driver: DriverSpec, **options: object) -> DriverSpec:
    """``driver`` with ``options`` as defaults under its own."""
    from dataclasses import replace

    return replace(driver, options={**options, **dict(driver.options)})


def judge(env: ChaosEnv, schedule: Sequence[Step], bug: Bug | None = None) -> Judged:
    """Run, and raise :class:`~harness.chaos.judge.PropertyViolation` if a property
    failed (:class:`~harness.chaos.judge.Unjudged` if one could not be judged)."""
    return raise_unless_ok(env.run(schedule, bug))
