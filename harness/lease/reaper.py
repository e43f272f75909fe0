"""The reaper: leader election, scan, decision, guarded kill, ledger.

One pass on a given connection (the client's own, or a short-lived one):

1. ``leadership``: ``BEGIN; SET LOCAL idle_in_transaction_session_timeout;
   SET LOCAL statement_timeout; SELECT pg_try_advisory_xact_lock(ns, hashtext(tag))``,
   one round trip. Busy: ``on_reap {"event": "busy"}``, end. A holder frozen mid-pass
   loses its session (25P03) after ``reaper_lock_timeout``, and the lock with it.
   A leading pass also tries pg-aequor's key, ``pg_try_advisory_xact_lock(
   aequor_lock_namespace, hashtext(tag))``, in the same statement: got, pg-aequor
   reapers of the service skip until the pass commits; not got (a pg-aequor pass, or
   a frozen pg-aequor leader that keeps its session lock forever), the pass goes on
   anyway. ``locked`` says which (``aequor_lock``: true, false, or None when off).
   The server's clock when the lock was taken and just before it was released is
   in the ``locked`` and ``pass_end`` events (``server_at``): evidence that two passes
   never overlapped.
2. ``scan``: ``pg_stat_activity`` of the current database, state in ``idle_states``,
   ``application_name LIKE 's=<tag>;%'`` (wildcards escaped), not our own pid.
3. ``decide`` (pure, :mod:`harness.lease.decide`), then ``on_reap {"event":
   "scanned", "candidates": [...]}``: the deterministic point between scan and kill.
4. ``terminate`` per candidate, in a fresh statement that re-checks the same
   ``application_name``, a non-active state and an unchanged ``state_change``.
   PostgreSQL caches ``pg_stat_activity`` for the whole transaction (measured on 15:
   a second read in the same transaction returns the first read's rows), so each
   kill first calls ``pg_stat_clear_snapshot()``; without that the re-check would
   compare the scan with itself. Each kill runs under a savepoint so a 42501 on one
   pid neither aborts the pass nor releases the lock. One round trip per kill.
5. ``COMMIT``; ``on_reap {"event": "pass_end", "killed": n}``.

Every decision is a ledger entry (``on_reap`` with ``event: "kill"``) with the row it
acted on. ``killed`` means SIGTERM was delivered (``pg_terminate_backend`` does not
wait): a backend still exiting when the next pass scans can be signalled again, so one
(pid, application_name) may appear in two passes' ledgers; dedupe on that pair.
``skipped``: the re-check found the row changed or gone. 42501 is reported as
``result: "denied"`` and logged once per reaper.

Bug-zoo seams (override one to break one thing): ``idle_states`` (#1),
``lease_expired`` (#2), ``lease_of`` (#3), ``terminate`` (#4), ``leadership`` (#9).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq, sql

from harness.lease import token
from harness.lease.config import LeaseConfig
from harness.lease.decide import ActivityRow, Candidate, Rules
from harness.lease.hooks import Hook, Hooks

log = logging.getLogger("harness.lease")

Conn = psycopg.Connection[Any]
KillResult = Literal["killed", "skipped", "denied"]

SCAN_SQL = """\
SELECT a.pid, a.application_name, a.state, a.state_change,
       EXTRACT(EPOCH FROM (clock_timestamp() - a.state_change))::float8 AS idle_for,
       COALESCE(r.rolsuper, false) AS superuser,
       a.usename = current_user AS same_role
  FROM pg_stat_activity a
  LEFT JOIN pg_roles r ON r.oid = a.usesysid
 WHERE a.datname = current_database()
   AND a.pid <> pg_backend_pid()
   AND a.backend_type = 'client backend'
   AND a.application_name LIKE %s ESCAPE '\\'
   AND a.state = ANY(%s)"""
"""The scan. Rows whose state is NULL (another role, no pg_read_all_stats) never match."""

GUARDED_KILL_SQL = """\
SELECT pg_terminate_backend(a.pid) AS lease_killed
  FROM pg_stat_activity a
 WHERE a.pid = {pid}
   AND a.application_name = {app}
   AND a.state = ANY({states}::text[])
   AND a.state_change = {state_change}"""


@dataclass
class PassResult:
    """What one pass did. ``ledger`` holds the ``kill`` entries, in order."""

    status: Literal["done", "busy"]
    ledger: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)

    @property
    def killed(self) -> int:
        return sum(1 for e in self.ledger if e["result"] == "killed")


class Reaper(Rules):
    """Reaps expired leases of one service. Never raises 42501 to its caller."""

    def __init__(
        self, config: LeaseConfig, hooks: Hooks | Mapping[str, Hook] | None = None
    ) -> None:
        super().__init__(config)
        self.hooks = hooks if isinstance(hooks, Hooks) else Hooks(hooks, config.clock)
        self._denied_logged = False
        self.lock_server_at: float | None = None
        """Server clock (Unix s) when the last pass got the lock (None: not recorded)."""
        self.release_server_at: float | None = None
        """Server clock just before the last pass released it."""
        self.aequor_locked: bool | None = None
        """Whether the last leading pass also holds pg-aequor's key (None: not tried)."""

    # -- one pass -------------------------------------------------------------------

    def run_pass(self, conn: Conn) -> PassResult:
        """One pass on ``conn`` (autocommit, idle). Driver errors propagate after the
        pass's transaction was closed; 42501 on a kill does not (it is ``denied``)."""
        own_pid = conn.info.backend_pid
        with self.leadership(conn) as leader:
            if not leader:
                self._emit({"event": "busy", "reaper_pid": own_pid})
                return PassResult("busy")
            self._emit(
                {
                    "event": "locked",
                    "reaper_pid": own_pid,
                    "server_at": self.lock_server_at,
                    "aequor_lock": self.aequor_locked,
                }
            )
            rows = self.scan(conn)
            candidates = self.decide(rows, self.config.clock())
            result = PassResult("done", candidates=[c.row.pid for c in candidates])
            self._emit(
                {
                    "event": "scanned",
                    "candidates": list(result.candidates),
                    "scanned": len(rows),
                    "reaper_pid": own_pid,
                }
            )
            for cand in candidates:
                # Stamped before the kill is sent: the victim may see the kill before
                # terminate() returns, so "what was it doing at the kill" needs this time.
                sent_at, sent_monotonic = self.config.clock(), time.monotonic()
                outcome = self.terminate(conn, cand)
                entry = self._ledger_entry(cand, outcome, own_pid, sent_at, sent_monotonic)
                result.ledger.append(entry)
                self._emit(dict(entry))
        self._emit(
            {
                "event": "pass_end",
                "killed": result.killed,
                "reaper_pid": own_pid,
                "server_at": self.release_server_at,
            }
        )
        return result

    def run_once(self, conninfo: str, *, connect_timeout: float | None = None) -> PassResult:
        """One pass on a short-lived connection of its own (carrying a lease too, so that
        if it is frozen and left behind it can be reaped like any other)."""
        app = token.encode(
            self.config.service,
            token.new_instance(),
            int((self.config.clock() + self.config.lease_ttl) * 1000),
            self.config.secret_bytes,
        )
        timeout = connect_timeout if connect_timeout is not None else self.config.connect_timeout
        with psycopg.connect(
            conninfo,
            autocommit=True,
            application_name=app,
            connect_timeout=max(2, math.ceil(timeout)),
        ) as conn:
            return self.run_pass(conn)

    # -- the steps, each a seam ------------------------------------------------------

    @contextlib.contextmanager
    def leadership(self, conn: Conn) -> Iterator[bool]:
        """Seam #9. Yields whether this pass leads. The lock is transaction-level and the
        transaction carries timeouts, so a frozen holder cannot keep it.

        Leading needs our own key only. pg-aequor's key is tried (never waited for)
        only once we lead, and held to the end of the pass if free."""
        cfg = self.config
        tag = sql.Literal(token.service_tag(cfg.service))
        aequor: sql.Composable = sql.SQL("NULL::boolean")
        if cfg.aequor_lock_namespace is not None:
            # CASE: pg-aequor's key is taken only by a pass that leads.
            aequor = sql.SQL(
                "CASE WHEN got THEN pg_try_advisory_xact_lock({ans}, hashtext({tag})) END"
            ).format(ans=sql.Literal(cfg.aequor_lock_namespace), tag=tag)
        q = sql.SQL(
            "BEGIN; SET LOCAL idle_in_transaction_session_timeout = {idle}; "
            "SET LOCAL statement_timeout = {stmt}; "
            "SELECT got AS lease_leader, {now} AS server_at, {aequor} AS aequor FROM "
            "(SELECT pg_try_advisory_xact_lock({ns}, hashtext({tag})) AS got OFFSET 0) s"
        ).format(
            idle=sql.Literal(_ms(cfg.reaper_lock_timeout)),
            stmt=sql.Literal(_ms(cfg.reaper_statement_timeout)),
            now=_SERVER_NOW,
            aequor=aequor,
            ns=sql.Literal(cfg.lock_namespace),
            tag=tag,
        )
        self.lock_server_at = self.release_server_at = self.aequor_locked = None
        try:
            got, self.lock_server_at, aequor_got = _named_result(conn.execute(q), "lease_leader")[0]
            self.aequor_locked = aequor_got if got else None
            yield bool(got)
        except BaseException:
            _rollback_quietly(conn)
            raise
        # The server's clock just before the lock is released: with lock_server_at it
        # brackets the time this pass held the lock (evidence for "one pass at a time").
        cur = conn.execute(
            sql.SQL("SELECT {now} AS lease_released; COMMIT").format(now=_SERVER_NOW)
        )
        rows = _named_result(cur, "lease_released")
        self.release_server_at = rows[0][0] if rows else None

    def scan(self, conn: Conn) -> list[ActivityRow]:
        cur = conn.execute(
            SCAN_SQL, (token.like_pattern(self.config.service), list(self.idle_states))
        )
        return [ActivityRow(*r) for r in cur.fetchall()]

    def terminate(self, conn: Conn, cand: Candidate) -> KillResult:
        """Seam #4: the guarded kill. Fresh ``pg_stat_activity`` snapshot, re-check of
        the row, terminate, all in one statement; under a savepoint when in a transaction."""
        row = cand.row
        guarded = sql.SQL(GUARDED_KILL_SQL).format(
            pid=sql.Literal(row.pid),
            app=sql.Literal(row.application_name),
            states=sql.Literal(list(self.idle_states)),
            state_change=sql.Literal(row.state_change),
        )
        in_tx = conn.info.transaction_status == pq.TransactionStatus.INTRANS
        parts: list[sql.Composable] = [sql.SQL("SELECT pg_stat_clear_snapshot()"), guarded]
        if in_tx:
            parts = [
                sql.SQL("SAVEPOINT lease_kill"),
                *parts,
                sql.SQL("RELEASE SAVEPOINT lease_kill"),
            ]
        try:
            cur = conn.execute(sql.SQL("; ").join(parts))
        except pg_errors.InsufficientPrivilege:
            if in_tx:
                conn.execute("ROLLBACK TO SAVEPOINT lease_kill; RELEASE SAVEPOINT lease_kill")
            self._denied(row)
            return "denied"
        rows = _named_result(cur, "lease_killed")
        return "killed" if rows and rows[0][0] else "skipped"

    # -- helpers ---------------------------------------------------------------------

    def _denied(self, row: ActivityRow) -> None:
        if not self._denied_logged:
            self._denied_logged = True
            log.warning(
                "reaper of %r may not terminate backend %d (42501): its role needs "
                "pg_signal_backend to reap other roles' zombies; logged once",
                self.config.service,
                row.pid,
            )

    def _ledger_entry(
        self, cand: Candidate, outcome: KillResult, own: int, sent_at: float, sent_monotonic: float
    ) -> dict[str, Any]:
        row = cand.row
        return {
            "event": "kill",
            "pid": row.pid,
            "result": outcome,
            "application_name": row.application_name,
            "state": row.state,
            "state_change": row.state_change.isoformat() if row.state_change else None,
            "idle_for": row.idle_for,
            "lease_expiry_ms": cand.lease.expiry_ms,
            "at": sent_at,
            "sent_monotonic": sent_monotonic,
            "reaper_pid": own,
        }

    def _emit(self, payload: dict[str, Any]) -> None:
        payload.setdefault("service", self.config.service)
        self.hooks.emit("on_reap", payload)


_SERVER_NOW = sql.SQL("EXTRACT(EPOCH FROM clock_timestamp())::float8")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _named_result(cur: psycopg.Cursor[Any], column: str) -> list[tuple[Any, ...]]:
    """Rows of the result set (of a multi-statement query) whose first column is ``column``."""
    while True:
        if cur.description and cur.description[0].name == column:
            return cur.fetchall()
        if not cur.nextset():
            return []


def _rollback_quietly(conn: Conn) -> None:
    if conn.closed or conn.broken:
        return
    if conn.info.transaction_status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR):
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")
