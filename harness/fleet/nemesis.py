"""The nemesis: the faults a fleet can suffer, each waiting for its sync point.

Built on :class:`harness.fleet.core.Fleet`'s public methods only (Jepsen's
nemesis beside its client): every fault records its ``fault`` event (``time``
/ ``wall`` of the harness) BEFORE it acts, and a ``heal`` event when it is
undone. Faults that interrupt an operation wait for a sync point first, never
for a fixed time:

- ``freeze_mid_query``: a ``slow_read``; waits for the worker's "query started"
  and then for the server to show that backend ``active`` in ``pg_sleep``; SIGSTOP.
- ``freeze_mid_tx``: a ``long_tx``; waits for "paused inside the transaction";
  SIGSTOP. ``thaw`` then sends ``continue`` so it tries to commit.
- ``freeze_mid_reap``: a ``reap`` op paused at ``locked`` (or ``scanned``) by the
  worker's reaper; SIGSTOP; ``thaw`` sends ``continue``.
- ``socket_reset`` of a started op, once its statement runs on the server:
  ``reset_peer`` (a downstream ``reset_peer`` toxic: fires when the result comes
  back; removed at the worker's first query error or the op's end) or
  ``disable`` (the proxy disabled, which closes at once while the server is
  silent, then enabled again).
- ``ack_lost``: a downstream ``timeout`` toxic (``timeout_ms``, 300 by default)
  added BEFORE a write is sent, so the server commits and the answer never
  arrives; removed (``heal``) when the op ends.
- ``latency``, ``bandwidth``, ``proxy_down``/``proxy_up`` on one worker's proxy;
  ``pg_restart`` (immediate); ``terminate_backend`` of a worker's current backend
  from an admin session.
- ``heal``: remove every toxic of the live workers' proxies and enable them all
  (a reclaimed worker's zombie stays until a reaper or the teardown ends it).

Freezes, thaws and reclaims at rest are the fleet's own (``Fleet.freeze``,
``Fleet.thaw``, ``Fleet.reclaim``): they are Lambda's life as much as faults.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg.conninfo import make_conninfo

from harness.errors import FleetError, FleetTimeout, PauseNotReached
from harness.fleet.pending import OpResult, Pending
from harness.fleet.protocol import PausePoint, Skew
from harness.history import LockProbeEvent
from harness.wait import poll

if TYPE_CHECKING:
    from harness.fleet.core import Fleet

ResetMode = Literal["reset_peer", "disable"]


class Nemesis:
    """The faults of one fleet."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    # ------------------------------------------------------------------ mid-operation

    def freeze_mid_query(
        self,
        *,
        worker: str | None = None,
        seconds: float = 5.0,
        blackhole: bool = False,
        timeout: float | None = None,
    ) -> Pending:
        """Start a ``slow_read`` and freeze its worker while the server runs it."""
        fleet = self.fleet
        pending = fleet.start("slow_read", worker=worker, seconds=seconds)
        started = fleet.log.wait_query_started(pending.worker, after=pending.since, timeout=timeout)
        self.wait_backend_active(started.backend_pid, "pg_sleep", timeout, since=started.wall)
        fleet.freeze(
            pending.worker,
            f="freeze_mid_query",
            value={"op": pending.op},
            blackhole=blackhole,
            during=pending,
        )
        return pending

    def freeze_mid_tx(
        self, *, worker: str | None = None, blackhole: bool = False, timeout: float | None = None
    ) -> Pending:
        """Start a ``long_tx`` and freeze its worker inside the open transaction."""
        fleet = self.fleet
        pending = fleet.start("long_tx", worker=worker)
        self._pause_point(pending, "tx", timeout)
        fleet.freeze(
            pending.worker,
            f="freeze_mid_tx",
            value={"op": pending.op},
            blackhole=blackhole,
            during=pending,
        )
        return pending

    def freeze_mid_reap(
        self,
        *,
        worker: str | None = None,
        pause_at: Literal["locked", "scanned"] = "locked",
        blackhole: bool = False,
        timeout: float | None = None,
    ) -> Pending:
        """Start a ``reap`` op and freeze its worker at ``pause_at`` (holding the leader lock)."""
        fleet = self.fleet
        pending = fleet.start("reap", worker=worker, pause_at=pause_at)
        self._pause_point(pending, pause_at, timeout)
        fleet.freeze(
            pending.worker,
            f="freeze_mid_reap",
            value={"op": pending.op},
            blackhole=blackhole,
            during=pending,
        )
        return pending

    def probe_lock(self, worker: str, namespace: int, tag: str) -> bool:
        """Try ``pg_try_advisory_xact_lock(namespace, hashtext(tag))`` on the application
        database from a session of the harness's own (released at once), while
        ``worker``'s reaper pass is frozen; record what it found; True: the key was free."""
        fleet = self.fleet
        dsn = make_conninfo(fleet.pg.app_dsn, application_name=PROBE_APP)
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (namespace, tag)
            ).fetchone()
        got = bool(row and row[0])
        fleet.history.append(
            LockProbeEvent(
                worker=worker,
                namespace=namespace,
                tag=tag,
                got=got,
                time=time.monotonic(),
                wall=time.time(),
            )
        )
        return got

    def socket_reset(
        self, pending: Pending, *, mode: ResetMode = "reset_peer", timeout: float | None = None
    ) -> None:
        """Cut the socket of a started op once its statement runs on the server."""
        fleet = self.fleet
        started = fleet.log.wait_query_started(pending.worker, after=pending.since, timeout=timeout)
        self.wait_backend_active(started.backend_pid, None, timeout, since=started.wall)
        link = fleet.link(pending.worker)
        fleet.record_fault("socket_reset", pending.worker, {"mode": mode, "op": pending.op})
        if mode == "reset_peer":
            link.add("reset_peer", name="reset_peer_downstream", stream="downstream", timeout=0)
            self._undo_at_first_error(pending, "reset_peer_downstream", "socket_reset")
        elif mode == "disable":
            link.disable()
            link.enable()
        else:
            raise FleetError(f"unknown socket_reset mode {mode!r}")

    def ack_lost(
        self,
        *,
        f: Literal["write", "write_once"] = "write",
        amount: int = 1,
        worker: str | None = None,
        timeout_ms: int = 300,
        timeout: float | None = None,
        heal_at_error: bool = True,
    ) -> OpResult:
        """A write whose answer is lost: the server commits, the client never hears.

        ``write``: the answer to the autocommit statement (the downstream toxic goes in
        before it is sent). ``write_once``: the answer to its COMMIT — the worker pauses
        just before its client sends COMMIT, the toxic goes in, COMMIT goes out (the
        earlier statements' answers arrive). Either way the toxic goes at the worker's
        first error, so a retry finds the link healthy, or at the op's end (only then,
        without ``heal_at_error``: every retry meets a silent server).
        :class:`PauseNotReached` (``write_once``): the op ended without a COMMIT the
        harness could see (a client that reports no ``on_query_start``); nothing was
        injected."""
        fleet = self.fleet
        name = fleet.acquire(worker)
        op = fleet.new_op_id()
        link = fleet.link(name)
        at_commit = f == "write_once"

        def inject() -> None:
            fleet.record_fault("ack_lost", name, {"op": op, "timeout_ms": timeout_ms, "f": f})
            link.add("timeout", name="ack_lost_downstream", stream="downstream", timeout=timeout_ms)

        if not at_commit:
            try:
                inject()
            except BaseException:
                fleet.release(name)
                raise
        args: dict[str, Any] = {"amount": amount}
        if at_commit:
            args["pause_at"] = "commit"
        pending = fleet.send(name, f, args, op=op)
        if at_commit:
            self._pause_point(pending, "commit", timeout)
            try:
                inject()
                self._undo_ack_lost(pending, heal_at_error)
            finally:
                fleet.resume(name)  # a transaction paused for good would be the harness's
        else:
            self._undo_ack_lost(pending, heal_at_error)
        return pending.wait(timeout)

    def _undo_ack_lost(self, pending: Pending, at_error: bool) -> None:
        if at_error:
            self._undo_at_first_error(pending, "ack_lost_downstream", "ack_lost")
            return
        fleet, worker = self.fleet, pending.worker

        def undo(_: OpResult) -> None:
            fleet.record_fault("heal", worker, {"undo": "ack_lost", "op": pending.op})
            link = fleet.link(worker)
            if not link.deleted:
                link.remove("ack_lost_downstream")

        pending.on_done(undo)

    # ------------------------------------------------------------------ network

    def latency(
        self, worker: str, latency_ms: int, *, jitter_ms: int = 0, stream: str = "downstream"
    ) -> None:
        link = self.fleet.link(worker)
        self.fleet.record_fault(
            "latency", worker, {"latency_ms": latency_ms, "jitter_ms": jitter_ms, "stream": stream}
        )
        link.add(
            "latency", name=f"latency_{stream}", stream=stream, latency=latency_ms, jitter=jitter_ms
        )

    def bandwidth(self, worker: str, rate_kb: int, *, stream: str = "downstream") -> None:
        link = self.fleet.link(worker)
        self.fleet.record_fault("bandwidth", worker, {"rate_kb": rate_kb, "stream": stream})
        link.add("bandwidth", name=f"bandwidth_{stream}", stream=stream, rate=rate_kb)

    def proxy_down(self, worker: str) -> None:
        link = self.fleet.link(worker)
        self.fleet.record_fault("proxy_down", worker)
        link.disable()

    def proxy_up(self, worker: str) -> None:
        link = self.fleet.link(worker)
        self.fleet.record_fault("proxy_up", worker)
        link.enable()

    def clock_skew(self, worker: str, seconds: float) -> None:
        """The worker's lease clock becomes ``time.time() + seconds`` (applied when it next
        reads its commands: at once if idle or paused, after the running op otherwise)."""
        self.fleet.record_fault("clock_skew", worker, {"seconds": seconds})
        self.fleet.command(worker, Skew(seconds=float(seconds)))

    def heal(self) -> None:
        """Every live worker's link without toxics and enabled (see ``Fleet.heal_links``)."""
        self.fleet.record_fault("heal", None, {"undo": "all"})
        self.fleet.heal_links()

    # ------------------------------------------------------------------ server side

    def pg_restart(self) -> None:
        """Restart PostgreSQL with ``-m immediate`` (every backend dies, no checkpoint)."""
        self.fleet.record_fault("pg_restart", None, {"mode": "immediate"})
        self.fleet.pg.restart("immediate")

    def terminate_backend(self, worker: str) -> int | None:
        """``pg_terminate_backend`` of the worker's current backend from an admin session;
        the pid (None if the worker had none)."""
        fleet = self.fleet
        pid = fleet.worker(worker).backend_pid
        fleet.record_fault("terminate_backend", worker, {"backend_pid": pid})
        if pid is not None:
            with psycopg.connect(_admin_dsn(fleet), autocommit=True) as conn:
                # wait=true (timeout in ms): returns once the backend has exited, so the
                # worker's socket already holds the FATAL and the EOF when it next looks.
                conn.execute(
                    "SELECT pg_terminate_backend(%s, %s)",
                    (pid, int(fleet.config.signal_timeout * 1000)),
                )
        return pid

    def wait_backend_active(
        self,
        pid: int | None,
        query_contains: str | None,
        timeout: float | None = None,
        *,
        since: float | None = None,
    ) -> int:
        """Wait until ``pg_stat_activity`` shows backend ``pid`` active (running a query
        containing ``query_contains``): the statement really reached the server. The pid
        it was seen on.

        A driver behind a pooler (PgBouncer) cannot name the server backend its statement
        runs on (``pid`` None, or PgBouncer's made-up key, not a server pid): then any
        client backend of the database active in such a query that started at or after
        ``since`` (wall seconds: the worker's query start) is the one."""
        limit = self.fleet.config.op_timeout if timeout is None else timeout
        last: list[object] = [None]
        db = self.fleet.pg.app_db
        with psycopg.connect(_admin_dsn(self.fleet), autocommit=True) as conn:

            def server_pid() -> bool:
                if pid is None:
                    return False
                row = conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
                return row.fetchone() is not None

            exact = server_pid()

            def active() -> int | None:
                if exact:
                    row = conn.execute(
                        "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)
                    ).fetchone()
                    last[0] = None if row is None else (row[0], row[1])
                    hit = (
                        row is not None
                        and row[0] == "active"
                        and (query_contains is None or query_contains in (row[1] or ""))
                    )
                    return pid if hit else None
                rows = conn.execute(
                    "SELECT pid, query FROM pg_stat_activity WHERE datname = %s"
                    " AND state = 'active' AND backend_type = 'client backend'"
                    " AND pid <> pg_backend_pid() AND query_start >= to_timestamp(%s)"
                    " AND query LIKE %s",
                    (db, (since or 0.0) - 0.2, f"%{query_contains or ''}%"),
                ).fetchall()
                last[0] = rows
                return int(rows[0][0]) if rows else None

            found: int = poll(
                active,
                timeout=limit,
                what=f"backend {pid} active on the server"
                if exact
                else f"a backend active in {query_contains or 'a query'} (the driver's pid"
                f" {pid} is not a server backend)",
                error=FleetTimeout,
                describe=lambda: last[0],
            )
            return found

    # ------------------------------------------------------------------ helpers

    def _pause_point(self, pending: Pending, at: PausePoint, timeout: float | None) -> None:
        """Wait until ``pending`` is paused at ``at``; :class:`PauseNotReached` if it ended
        first (e.g. a reaper that found the leader lock held by a frozen one)."""
        paused = self.fleet.log.wait_paused(
            pending.worker, at, after=pending.since, timeout=timeout, op=pending.op
        )
        if paused is None:
            result = pending.wait()
            raise PauseNotReached(
                f"{pending.f} op {pending.op} ended {result.type} before pausing at {at!r}"
            )

    def _undo_at_first_error(self, pending: Pending, toxic: str, fault: str) -> None:
        """Remove ``toxic`` at the worker's first query error or the op's end (once)."""
        fleet, worker = self.fleet, pending.worker
        done: list[bool] = []

        def undo(*_: Any) -> None:
            if done:
                return
            done.append(True)
            fleet.record_fault("heal", worker, {"undo": fault, "op": pending.op})
            link = fleet.link(worker)
            if not link.deleted:
                link.remove(toxic)

        fleet.on_next_error(worker, undo)
        pending.on_done(undo)


PROBE_APP = "thawproof lock probe"
"""The application_name of the harness's lock-probe session (never a lease)."""


def _admin_dsn(fleet: Fleet) -> str:
    """A superuser DSN where the server has one, else the app role's."""
    try:
        return fleet.pg.admin_dsn
    except NotImplementedError:
        return fleet.pg.app_dsn
