"""``LeaseClient``: one psycopg 3 connection that carries a signed, expiring lease.

What it promises (LEASE_SPEC.md):

- The lease is set in the startup packet (``application_name``): no extra round trip.
- Before every statement, with the client's own clock (:mod:`harness.lease.fence`):
  within ``fence_margin`` of expiry the connection is discarded unused and a new one
  opened; within ``heartbeat_margin`` (or if the statement's ``expected_duration`` is
  longer than what is left) the lease is renewed first with
  ``SELECT set_config('application_name', %s, false)``, and the local expiry moves
  only after the server confirmed it.
- A socket that died while the connection was idle (frozen, reaped, server restarted)
  is found by a non-blocking check before sending; it never raises: the connection is
  dropped (``on_client_dead``) and a new one opened.
- A statement is re-run only when it is known not to have taken effect, or when the
  caller said it is idempotent; a connection that died after a non-idempotent
  statement or a COMMIT may have reached the server raises ``OutcomeUnknown``.
- The reaper runs on this client's own connection, when a pass is due (probability,
  cooldown) right after connecting and right after a lease renewal; a connect that
  outlasted the heartbeat margin renews the lease first. It never raises
  into the caller: any failure is logged and reported through ``on_reap``.

No background thread: everything happens on the caller's thread, in the calls it
makes, which is what a frozen-and-thawed Lambda sandbox needs.

The hot path (``execute`` with a connection whose lease is far from its end and no
query hook listening) inlines those checks: lock, clock against ``expiry -
heartbeat_margin``, libpq status, ``poll(0)`` on the socket; whatever it finds goes
the general way, which repeats every check. Each connection has one cursor that
every statement reuses (psycopg's ``conn.execute`` makes a cursor per call, ~2.4 us);
a result of more than 256 rows replaces it so that the cursor does not keep that
result alive.

Bug-zoo seams (override one to break one thing): ``fence_action`` (#5),
``statement_outcome`` (#6), ``handle_idle_socket_error`` (#7), ``reaper_class`` (a
broken :class:`~harness.lease.reaper.Reaper`: #1-#4, #9); the config's
``reaper_enabled`` (#8).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg
from psycopg import pq
from psycopg.types.json import Jsonb

from harness.lease import dedup, token
from harness.lease.config import LeaseConfig
from harness.lease.errors import (
    ConnectFailed,
    ConnectionDead,
    LeaseError,
    LeaseExpired,
    OutcomeUnknown,
    RetriesExhausted,
)
from harness.lease.fence import FenceAction, fence_action
from harness.lease.hooks import Hook, Hooks
from harness.lease.reaper import Reaper
from harness.lease.retry import (
    Backoff,
    Budget,
    Outcome,
    connect_retryable,
    connection_lost,
    sqlstate_of,
    statement_outcome,
    transaction_outcome,
)
from harness.lease.schedule import ReapSchedule

log = logging.getLogger("harness.lease")

T = TypeVar("T")
Conn = psycopg.Connection[Any]
Rows = list[tuple[Any, ...]]
Params = Any

_HEARTBEAT_SQL = "SELECT set_config('application_name', %s, false)"
_MAX_PRE_SEND_ROUNDS = 8
_CLOSE_WAIT = 2.0
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_CONN_OK = pq.ConnStatus.OK
_POLL_MASK = select.POLLIN | select.POLLERR | select.POLLHUP
_QUERY_HOOKS = ("on_query_start", "on_query_end", "on_query_error")
_KEEP_CURSOR_ROWS = 256
"""A result with more rows than this is not kept alive by the reused cursor until the
next statement: the cursor is replaced (its libpq result freed) right away."""


class _ConnCache:
    """What the hot path needs of the current connection, looked up once per connection:
    its libpq handle, a poll object registered on its socket, and one cursor reused by
    every statement (``conn.execute`` makes a new cursor each time: ~2.4 us)."""

    __slots__ = ("conn", "cursor", "pgconn", "poll")

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.poll = select.poll()
        self.poll.register(self.pgconn.socket, _POLL_MASK)
        self.cursor: psycopg.Cursor[Any] = conn.cursor()


class Tx:
    """The handle a ``transaction`` function gets: ``tx.execute(sql, params) -> rows``."""

    def __init__(self, client: LeaseClient, conn: Conn) -> None:
        self._client = client
        self._conn = conn
        self.closed = False

    @property
    def backend_pid(self) -> int:
        return self._conn.info.backend_pid

    def execute(self, query: Any, params: Params = None, *, expected_duration: float = 0.0) -> Rows:
        if self.closed:
            raise psycopg.InterfaceError("the transaction is over")
        self._client._fence_in_transaction(self._conn, expected_duration)
        return self._client._run_statement(self._conn, query, params, op="transaction")


class LeaseClient:
    """A lease-carrying PostgreSQL client for one service (one per process)."""

    reaper_class: type[Reaper] = Reaper
    """Seam: the reaper this client runs (bug-zoo reapers plug in here)."""

    def __init__(
        self,
        conninfo: str,
        config: LeaseConfig,
        hooks: Mapping[str, Hook] | None = None,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._conninfo = conninfo
        self._hooks = Hooks(hooks, config.clock)
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._monotonic = monotonic
        self.instance = token.new_instance()
        self.reaper = self.reaper_class(config, self._hooks)
        self.schedule = ReapSchedule(config, self._rng)
        self._connect_backoff = Backoff(config.backoff_base, config.backoff_cap, self._rng)
        self._query_backoff = Backoff(config.backoff_base, config.backoff_cap, self._rng)
        self._conn: Conn | None = None
        self._expiry: float | None = None
        self._app: str | None = None
        self._connects = 0
        self._cache: _ConnCache | None = None
        self._fast_fence = type(self).fence_action is LeaseClient.fence_action
        self._observe_queries = self._hooks.wants_any(_QUERY_HOOKS)
        # execute()'s inlined path: fencing not overridden and no query hook listening.
        self._fast_execute = self._fast_fence and not self._observe_queries
        self._clock = config.clock
        self._heartbeat_margin = config.heartbeat_margin
        self._lock = threading.RLock()

    # -- public state ----------------------------------------------------------------

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return conn.info.backend_pid if conn is not None and not conn.closed else None

    @property
    def lease_expiry(self) -> float | None:
        """Expiry of the current lease (Unix seconds), as confirmed by the server."""
        return self._expiry

    @property
    def application_name(self) -> str | None:
        return self._app

    def __repr__(self) -> str:
        return (
            f"LeaseClient(service={self.config.service!r}, instance={self.instance!r}, "
            f"backend_pid={self.backend_pid})"
        )

    # -- public operations -----------------------------------------------------------

    def connect(self) -> None:
        """Make sure a usable connection is open (connecting is otherwise lazy)."""
        with self._lock:
            self._usable()

    def execute(
        self,
        query: Any,
        params: Params = None,
        *,
        idempotent: bool = False,
        expected_duration: float = 0.0,
    ) -> Rows:
        """Run one autocommit statement; its rows (``[]`` if none).

        Re-run on a new connection only if it is known not to have been sent, or if
        ``idempotent``. Raises ``OutcomeUnknown`` when the connection died after it may
        have reached the server; a server error reply is raised as the driver's error.
        """
        with self._lock:
            # The hot path: _usable's SEND case and _alive's checks, inlined. Anything
            # else (no connection yet, lease near its end, expected_duration, status not
            # OK, data waiting on the idle socket, an error) goes the general way, which
            # repeats every check and handles what it finds.
            cache = self._cache
            expiry = self._expiry
            if (
                self._fast_execute
                and cache is not None
                and cache.conn is self._conn
                and expiry is not None
                and expected_duration <= 0.0
                and self._clock() < expiry - self._heartbeat_margin
                and cache.pgconn.status == _CONN_OK
                and not cache.poll.poll(0)
            ):
                cur = cache.cursor
                try:
                    cur.execute(query, params)
                    res = cur.pgresult  # cheaper than building cur.description
                    if res is None or res.status != _TUPLES_OK:
                        rows: Rows = []
                    else:
                        rows = cur.fetchall()
                        if res.ntuples > _KEEP_CURSOR_ROWS:
                            cache.cursor = cache.conn.cursor()
                except psycopg.Error as exc:
                    return self._execute(
                        query, params, idempotent, expected_duration, (cache.conn, exc)
                    )
                self._query_backoff.reset()
                return rows
            return self._execute(query, params, idempotent, expected_duration, None)

    def _execute(
        self,
        query: Any,
        params: Params,
        idempotent: bool,
        expected_duration: float,
        failed: tuple[Conn, psycopg.Error] | None,
    ) -> Rows:
        """``execute`` the general way. ``failed``: the hot path already sent it on that
        connection and got that error; it is judged exactly as a failure here is."""
        budget: Budget | None = None  # made on the first failure
        while True:
            if failed is None:
                conn = self._usable(expected_duration)
                try:
                    rows = self._run_statement(
                        conn, query, params, op="execute", idempotent=idempotent
                    )
                except psycopg.Error as sent_error:
                    error = sent_error
                else:
                    self._query_backoff.reset()
                    return rows
            else:
                (conn, error), failed = failed, None
            lost = self._lost(error, conn)
            outcome = self.statement_outcome(error, sent=True, lost=lost, idempotent=idempotent)
            budget = budget or self._budget()
            self._after_failure(error, conn, lost, outcome, budget, op="execute")

    def transaction(
        self,
        fn: Callable[[Tx], T],
        *,
        retryable: bool = False,
        expected_duration: float = 0.0,
    ) -> T:
        """Run ``fn(tx)`` between BEGIN and COMMIT; its return value.

        ``retryable=True``: ``fn`` may be run again, as a whole, after a serialization
        failure or deadlock (40001/40P01) or a connection lost before COMMIT was sent
        (nothing was applied). A connection lost after COMMIT was sent raises
        ``OutcomeUnknown``; before it, without ``retryable``, ``ConnectionDead``.
        """
        with self._lock:
            budget = self._budget()
            while True:
                conn = self._usable(expected_duration)
                tx = Tx(self, conn)
                saved_expiry, saved_app = self._expiry, self._app
                commit_sent = began = False
                try:
                    self._run_statement(conn, "BEGIN", None, op="transaction")
                    began = True
                    result = fn(tx)
                    if conn.info.transaction_status == pq.TransactionStatus.INERROR:
                        raise psycopg.errors.InFailedSqlTransaction(
                            "a statement inside the transaction failed; rolled back"
                        )
                    self._fence_in_transaction(conn, 0.0, commit=True)
                    commit_sent = True
                    self._run_statement(conn, "COMMIT", None, op="transaction")
                except LeaseExpired as exc:
                    self._drop(conn, "fenced inside a transaction", None, dead=False)
                    if not retryable:
                        raise
                    self._retry_or_give_up(exc, budget, op="transaction")
                    continue
                except psycopg.Error as exc:
                    lost = self._lost(exc, conn)
                    if not lost:
                        self._rollback(conn)
                        self._expiry, self._app = saved_expiry, saved_app
                    # Lost on BEGIN itself: fn never ran, nothing can have applied.
                    outcome = self.transaction_outcome(
                        exc, commit_sent=commit_sent, lost=lost, retryable=retryable or not began
                    )
                    self._after_failure(exc, conn, lost, outcome, budget, op="transaction")
                    continue
                except BaseException:
                    if conn is self._conn and not self._lost_quiet(conn):
                        self._rollback(conn)
                        self._expiry, self._app = saved_expiry, saved_app
                    raise
                finally:
                    tx.closed = True
                self._query_backoff.reset()
                return result

    def execute_once(self, key: str, query: Any, params: Params = None) -> Rows:
        """Run a write exactly once per ``key``, even across lost acknowledgements.

        The write and the key's row in the dedup table commit together; every attempt
        first claims the key, so a retry after an unknown outcome returns the ORIGINAL
        result instead of writing again. Needs the table (``ensure_schema``).
        """
        table = self.config.dedup_table

        def body(tx: Tx) -> Rows:
            if tx.execute(dedup.claim(table), (key,)):
                rows = tx.execute(query, params)
                tx.execute(dedup.store(table), (Jsonb(dedup.encode_rows(rows)), key))
                return rows
            stored = tx.execute(dedup.lookup(table), (key,))
            return dedup.decode_rows(stored[0][0] if stored else None)

        with self._lock:
            budget = self._budget()
            uncertain: OutcomeUnknown | None = None
            while True:
                try:
                    return self.transaction(body, retryable=True)
                except OutcomeUnknown as exc:
                    # Safe to retry: the next attempt claims the key first.
                    uncertain = exc
                    try:
                        self._retry_or_give_up(exc, budget, op="execute_once")
                    except RetriesExhausted as gave_up:
                        raise self._still_unknown(key, gave_up) from exc
                except Exception as exc:
                    # Once an attempt may have applied, no later failure proves otherwise.
                    if uncertain is not None:
                        raise self._still_unknown(key, exc) from uncertain
                    raise

    @staticmethod
    def _still_unknown(key: str, last: BaseException) -> OutcomeUnknown:
        return OutcomeUnknown(
            f"execute_once({key!r}): an earlier attempt may have been applied and the "
            f"retries ended with {type(last).__name__}; calling again with the same key "
            "returns the original result if it was"
        )

    def ensure_schema(self) -> None:
        """Create the ``execute_once`` dedup table if missing (DDL in harness.lease.dedup)."""
        with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            self.execute(dedup.ddl(self.config.dedup_table), idempotent=True)

    def reap_now(self) -> list[dict[str, Any]]:
        """One reaper pass now, on this client's connection, ignoring probability and
        cooldown (not ``reaper_enabled=False``); its ledger entries."""
        with self._lock:
            if not self.config.reaper_enabled:
                return []
            conn = self._usable()
            return self._reap_on(conn)

    def close(self) -> None:
        """Close the connection (never raises). The client may be used again later.

        If another thread is stuck in a statement (e.g. on a blackholed link), its
        socket is shut down first so that it fails and lets go, instead of close()
        waiting forever behind it."""
        if not self._lock.acquire(timeout=_CLOSE_WAIT):
            conn = self._conn
            if conn is not None:
                _shutdown_socket(conn)
            if not self._lock.acquire(timeout=_CLOSE_WAIT):
                log.warning("close(): another thread still holds the client; not closed")
                return
        try:
            conn, self._conn = self._conn, None
            self._expiry = self._app = None
            self._cache = None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        finally:
            self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- seams -----------------------------------------------------------------------

    def fence_action(self, now: float, expected_duration: float) -> FenceAction:
        """Seam #5: may a statement be sent on the current connection now?"""
        assert self._expiry is not None
        return fence_action(
            self._expiry,
            now,
            heartbeat_margin=self.config.heartbeat_margin,
            fence_margin=self.config.fence_margin,
            expected_duration=expected_duration,
        )

    def statement_outcome(
        self, exc: BaseException, *, sent: bool, lost: bool, idempotent: bool
    ) -> Outcome:
        """Seam #6: what a failed autocommit statement means (retry, fail, unknown)."""
        return statement_outcome(exc, sent=sent, lost=lost, idempotent=idempotent)

    def transaction_outcome(
        self, exc: BaseException, *, commit_sent: bool, lost: bool, retryable: bool
    ) -> Outcome:
        """What a failed transaction means (see :func:`harness.lease.retry.transaction_outcome`)."""
        return transaction_outcome(exc, commit_sent=commit_sent, lost=lost, retryable=retryable)

    def handle_idle_socket_error(self, exc: BaseException) -> None:
        """Seam #7: the idle connection's socket was found dead before a send.

        Correct behaviour: drop the connection; the caller's statement, not yet sent,
        goes on a new one. Never raises.
        """
        conn = self._conn
        if conn is not None:
            self._drop(conn, "socket died while idle", exc, dead=True)

    # -- connections -----------------------------------------------------------------

    def _usable(self, expected_duration: float = 0.0) -> Conn:
        """A connection on which a statement may be sent now (fenced, renewed, alive).

        Everything here happens before the caller's statement is sent, so a failure
        here only ever means "reconnect"."""
        conn, expiry = self._conn, self._expiry
        if (
            self._fast_fence  # fence_action not overridden: its SEND case, inlined
            and conn is not None
            and expiry is not None
            and expected_duration <= 0.0
            and self.config.clock() < expiry - self.config.heartbeat_margin
            and self._alive(conn)
        ):
            return conn
        for _ in range(_MAX_PRE_SEND_ROUNDS):
            conn = self._conn
            if conn is None:
                conn = self._open()
                if conn is None:
                    continue
            if not self._alive(conn):
                continue
            action = self.fence_action(self.config.clock(), expected_duration)
            if action is FenceAction.DISCARD:
                self._drop(conn, "fenced: lease within the safety margin", None, dead=False)
                continue
            if action is FenceAction.RENEW and not self._heartbeat(conn):
                continue
            return conn
        raise RetriesExhausted(
            "could not get a usable connection "
            f"in {_MAX_PRE_SEND_ROUNDS} rounds (fencing or dying connections)",
            attempts=_MAX_PRE_SEND_ROUNDS,
            elapsed=0.0,
        )

    def _open(self) -> Conn | None:
        """Connect, with retries for retryable failures; then maybe reap."""
        cfg = self.config
        budget = self._budget()
        while True:
            expiry, app = self._new_lease()
            try:
                conn = psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name=app,
                    connect_timeout=max(2, math.ceil(cfg.connect_timeout)),
                )
            except (psycopg.Error, OSError) as exc:
                if not connect_retryable(exc):
                    raise ConnectFailed(
                        f"cannot connect ({type(exc).__name__}, sqlstate {sqlstate_of(exc)})"
                    ) from exc
                self._retry_or_give_up(exc, budget, op="connect", backoff=self._connect_backoff)
                continue
            self._connect_backoff.reset()
            break
        reported = conn.info.parameter_status("application_name")
        if reported != app:
            log.warning("server reports application_name %r, sent %r", reported, app)
        self._conn, self._expiry, self._app = conn, expiry, app
        self._connects += 1
        payload = {
            "backend_pid": conn.info.backend_pid,
            "application_name": reported,
            "lease_expiry": expiry,
            "connects": self._connects,
            "reconnect": self._connects > 1,
        }
        self._hooks.emit("on_connect", dict(payload))
        if self._connects > 1:
            self._hooks.emit("on_reconnect", dict(payload))
        if cfg.clock() >= expiry - cfg.heartbeat_margin:
            # The connect took most of the lease (refused attempts, a starved process):
            # renew before the reaper pass, whose open transaction another reaper would
            # otherwise find expired and idle, and kill. Found at 100 sandboxes.
            return conn if self._heartbeat(conn) else None
        self._maybe_reap(conn)
        return self._conn

    def _alive(self, conn: Conn) -> bool:
        """Non-blocking check of an idle connection before sending on it."""
        try:
            pgconn = conn.pgconn
            if pgconn.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError("the connection is closed or broken")
            if self._cache_of(conn).poll.poll(0):
                # Nothing is owed to an idle connection: data now means the server is
                # closing it (FATAL 57P01, 57P02, 25P03...) or EOF. Read it to say why.
                pgconn.consume_input()
                raise psycopg.OperationalError(
                    "unsolicited data on an idle connection: the server is closing it"
                )
        except (psycopg.Error, OSError, ValueError) as exc:
            self.handle_idle_socket_error(exc)
            return self._conn is conn
        return True

    def _cache_of(self, conn: Conn) -> _ConnCache:
        cache = self._cache
        if cache is None or cache.conn is not conn:
            cache = self._cache = _ConnCache(conn)
        return cache

    def _heartbeat(self, conn: Conn) -> bool:
        """Renew the lease on an autocommit connection; False: dropped, reconnect."""
        try:
            self._renew(conn)
        except psycopg.Error as exc:
            self._drop(conn, "heartbeat failed", exc, dead=True)
            return False
        if conn.info.transaction_status == pq.TransactionStatus.IDLE:
            self._maybe_reap(conn)
        return self._conn is conn

    def _renew(self, conn: Conn) -> None:
        expiry, app = self._new_lease()
        try:
            row = conn.execute(_HEARTBEAT_SQL, (app,)).fetchone()
            if row is None or row[0] != app:
                raise psycopg.OperationalError("the server did not confirm the renewed lease")
        except psycopg.Error as exc:
            self._hooks.emit(
                "on_heartbeat_fail",
                {
                    "backend_pid": conn.info.backend_pid,
                    "error": type(exc).__name__,
                    "sqlstate": sqlstate_of(exc),
                },
            )
            raise
        previous, self._expiry, self._app = self._expiry, expiry, app
        self._hooks.emit(
            "on_heartbeat",
            {
                "backend_pid": conn.info.backend_pid,
                "application_name": app,
                "lease_expiry": expiry,
                "previous_expiry": previous,
            },
        )

    def _new_lease(self) -> tuple[float, str]:
        """A lease from now; the local expiry is exactly the token's (whole ms)."""
        cfg = self.config
        expiry_ms = int((cfg.clock() + cfg.lease_ttl) * 1000)
        return expiry_ms / 1000, token.encode(
            cfg.service, self.instance, expiry_ms, cfg.secret_bytes
        )

    def _fence_in_transaction(self, conn: Conn, expected: float, *, commit: bool = False) -> None:
        """Fencing inside an open transaction: the connection cannot be swapped, so a
        lease within the safety margin abandons the transaction (``LeaseExpired``)."""
        if conn is not self._conn or conn.closed or conn.broken:
            raise ConnectionDead("the transaction's connection was dropped")
        action = self.fence_action(self.config.clock(), expected)
        if action is FenceAction.DISCARD:
            raise LeaseExpired(
                "lease within the safety margin inside a transaction "
                f"({'before COMMIT' if commit else 'before a statement'}); not committed"
            )
        if action is FenceAction.RENEW:
            # set_config inside a transaction is undone by a rollback: the caller
            # restores the previous expiry if the transaction does not commit.
            self._renew(conn)

    def _drop(self, conn: Conn, reason: str, exc: BaseException | None, *, dead: bool) -> None:
        """Forget and close ``conn`` without waiting on its socket; ``on_client_dead``.

        ``dead`` says the connection broke; otherwise it was discarded on purpose
        (fencing): the payload's ``deliberate`` tells them apart."""
        pid = None
        with contextlib.suppress(Exception):
            pid = conn.info.backend_pid
        with contextlib.suppress(Exception):
            conn.close()
        if conn is self._conn:
            self._conn, self._expiry, self._app = None, None, None
        if self._cache is not None and self._cache.conn is conn:
            self._cache = None
        self._hooks.emit(
            "on_client_dead",
            {
                "backend_pid": pid,
                "reason": reason,
                "deliberate": not dead,
                "error": type(exc).__name__ if exc is not None else None,
                "sqlstate": sqlstate_of(exc) if exc is not None else None,
            },
        )

    def _rollback(self, conn: Conn) -> None:
        try:
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error as exc:
            self._drop(conn, "rollback failed", exc, dead=True)

    # -- statements and retries ------------------------------------------------------

    def _run_statement(
        self, conn: Conn, query: Any, params: Params, *, op: str, idempotent: bool = False
    ) -> Rows:
        if not self._observe_queries:  # nobody listens
            return self._fetch(conn, query, params)
        hooks = self._hooks
        kind = _sql_kind(query)
        pid = conn.info.backend_pid
        if hooks.wants("on_query_start"):
            hooks.emit(
                "on_query_start",
                {
                    "op": op,
                    "kind": kind,
                    "backend_pid": pid,
                    "lease_expiry": self._expiry,
                    "idempotent": idempotent,
                },
            )
        t0 = self._monotonic()
        try:
            rows = self._fetch(conn, query, params)
        except BaseException as exc:
            if hooks.wants("on_query_error"):
                hooks.emit(
                    "on_query_error",
                    {
                        "op": op,
                        "kind": kind,
                        "backend_pid": pid,
                        "sqlstate": getattr(exc, "sqlstate", None),
                        "error": type(exc).__name__,
                        "lost": isinstance(exc, psycopg.Error) and self._lost_quiet(conn, exc),
                    },
                )
            raise
        if hooks.wants("on_query_end"):
            hooks.emit(
                "on_query_end",
                {
                    "op": op,
                    "kind": kind,
                    "backend_pid": pid,
                    "rows": len(rows),
                    "duration": self._monotonic() - t0,
                },
            )
        return rows

    def _fetch(self, conn: Conn, query: Any, params: Params) -> Rows:
        """Run one statement on ``conn``'s reused cursor; its rows (``[]`` if none)."""
        cache = self._cache_of(conn)
        cur = cache.cursor
        cur.execute(query, params)
        res = cur.pgresult  # cheaper than building cur.description
        if res is None or res.status != _TUPLES_OK:
            return []
        rows = cur.fetchall()
        if res.ntuples > _KEEP_CURSOR_ROWS:
            cache.cursor = conn.cursor()
        return rows

    def _after_failure(
        self,
        exc: psycopg.Error,
        conn: Conn,
        lost: bool,
        outcome: Outcome,
        budget: Budget,
        *,
        op: str,
    ) -> None:
        """Apply an outcome: raise, or sleep before the caller's loop retries."""
        if lost:
            self._drop(conn, f"connection lost during {op}", exc, dead=True)
        if outcome is Outcome.FAIL:
            raise exc
        if outcome is Outcome.UNKNOWN:
            raise OutcomeUnknown(
                f"{op}: the connection died after the statement may have reached the "
                f"server ({type(exc).__name__}); not re-run"
            ) from exc
        if outcome is Outcome.DEAD:
            raise ConnectionDead(
                f"{op}: the connection died before COMMIT; nothing was applied "
                f"({type(exc).__name__})"
            ) from exc
        self._retry_or_give_up(exc, budget, op=op)

    def _retry_or_give_up(
        self, exc: BaseException, budget: Budget, *, op: str, backoff: Backoff | None = None
    ) -> None:
        backoff = backoff or self._query_backoff
        delay = backoff.next()
        if not budget.allows(delay):
            raise RetriesExhausted(
                f"{op}: gave up after {budget.used} retries in {budget.elapsed:.2f}s "
                f"({type(exc).__name__})",
                attempts=budget.used + 1,
                elapsed=budget.elapsed,
            ) from exc
        budget.spend()
        self._hooks.emit(
            "on_query_retry",
            {
                "op": op,
                "attempt": budget.used,
                "delay": delay,
                "error": type(exc).__name__,
                "sqlstate": sqlstate_of(exc),
            },
        )
        self._sleep(delay)

    def _budget(self) -> Budget:
        return Budget(self.config.retries, self.config.retry_budget, self._monotonic)

    def _lost(self, exc: BaseException, conn: Conn) -> bool:
        return connection_lost(exc, broken=conn.closed or conn.broken)

    def _lost_quiet(self, conn: Conn, exc: BaseException | None = None) -> bool:
        try:
            if exc is None:
                return conn.closed or conn.broken
            return self._lost(exc, conn)
        except Exception:
            return True

    # -- the reaper ------------------------------------------------------------------

    def _maybe_reap(self, conn: Conn) -> None:
        if self.schedule.due(self.config.clock()):
            self._reap_on(conn)

    def _reap_on(self, conn: Conn) -> list[dict[str, Any]]:
        """Run a pass on ``conn``; never raises (a failure is logged and reported)."""
        started = self.config.clock()
        try:
            result = self.reaper.run_pass(conn)
        except Exception as exc:
            self.schedule.done(started, busy=False)
            log.warning(
                "reaper pass failed: %s (sqlstate %s)", type(exc).__name__, sqlstate_of(exc)
            )
            self._hooks.emit(
                "on_reap",
                {
                    "event": "error",
                    "error": type(exc).__name__,
                    "sqlstate": sqlstate_of(exc),
                    "service": self.config.service,
                },
            )
            if (
                self._lost_quiet(conn, exc)
                or conn.info.transaction_status != pq.TransactionStatus.IDLE
            ):
                self._drop(conn, "reaper pass broke the connection", exc, dead=True)
            return []
        self.schedule.done(started, busy=result.status == "busy")
        return result.ledger


def _shutdown_socket(conn: Conn) -> None:
    """Shut the socket down without freeing anything another thread may be using."""
    with contextlib.suppress(Exception):
        dup = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()


def _sql_kind(query: Any) -> str:
    """The statement's first keyword, upper case (``INSERT``, ``SELECT``...)."""
    if isinstance(query, bytes):
        text = query.decode("utf-8", "replace")
    elif isinstance(query, str):
        text = query
    else:
        try:
            text = query.as_string(None)
        except Exception:
            return type(query).__name__.upper()
    words = text.lstrip(" \t\r\n(").split(None, 1)
    return words[0].upper().rstrip(";") if words else ""


__all__ = ["LeaseClient", "LeaseError", "Tx"]
