"""The bug zoo: nine deliberately broken lease clients, each one seam of the real one.

Each entry puts back one hole from DESIGN.md ("Why this exists"). The harness is
only as good as the bugs it catches: ``tests/detection`` runs the property
suite against every entry and asserts that the expected property fails, and
that the correct client passes the same schedules.

The classes live in ``harness`` (not ``tests``) because worker processes import
them by ``module:Class`` path when they are cold-started, and because
``make replay`` and ``make bench`` use them too. They override exactly one
documented seam of ``harness.lease`` (see ``harness/lease/README.md``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import errors as pg_errors
from psycopg import sql

from harness.lease import LeaseClient, Reaper, token
from harness.lease.client import Conn
from harness.lease.decide import ActivityRow, Candidate
from harness.lease.fence import FenceAction
from harness.lease.retry import Outcome
from harness.lease.token import Lease

# -- 1: no state filter -----------------------------------------------------------------


class NoIdleFilterReaper(Reaper):
    """Scans (and re-checks) active rows too: kills connections in the middle of a query."""

    idle_states = ("idle", "idle in transaction", "active")


class NoIdleFilterClient(LeaseClient):
    reaper_class = NoIdleFilterReaper


# -- 2: ignores lease expiry --------------------------------------------------------------


class IgnoresExpiryReaper(Reaper):
    """Treats every lease as expired: kills warm, healthy idle workers (serverless-postgres)."""

    def lease_expired(self, lease: Lease, now: float) -> bool:
        return True


class IgnoresExpiryClient(LeaseClient):
    reaper_class = IgnoresExpiryReaper


# -- 3: skips the signature check -----------------------------------------------------------


class SkipsSignatureReaper(Reaper):
    """Parses the lease but never verifies its signature: forged leases are "ours"."""

    def lease_of(self, row: ActivityRow) -> Lease | None:
        lease = token.parse(row.application_name)
        if lease is None or lease.service != token.service_tag(self.config.service):
            return None
        return lease


class SkipsSignatureClient(LeaseClient):
    reaper_class = SkipsSignatureReaper


# -- 4: kill without re-check ---------------------------------------------------------------


class NoRecheckReaper(Reaper):
    """Kills by pid from the scan: the check-then-act race of pg-aequor."""

    def terminate(self, conn: Conn, cand: Candidate) -> Any:
        try:
            row = conn.execute(
                sql.SQL("SELECT pg_terminate_backend({})").format(sql.Literal(cand.row.pid))
            ).fetchone()
        except pg_errors.InsufficientPrivilege:
            return "denied"
        return "killed" if row and row[0] else "skipped"


class NoRecheckClient(LeaseClient):
    reaper_class = NoRecheckReaper


# -- 5: no fencing ------------------------------------------------------------------------


class NoFencingClient(LeaseClient):
    """Sends on whatever connection it has, whatever its lease says (and never renews)."""

    def fence_action(self, now: float, expected_duration: float) -> FenceAction:
        return FenceAction.SEND


# -- 6: re-runs a write after the socket died -------------------------------------------------


class RerunsWritesClient(LeaseClient):
    """Retries any statement whose connection died, written or not: duplicates writes."""

    def statement_outcome(
        self, exc: BaseException, *, sent: bool, lost: bool, idempotent: bool
    ) -> Outcome:
        if lost:
            return Outcome.RETRY
        return super().statement_outcome(exc, sent=sent, lost=lost, idempotent=idempotent)

    def transaction_outcome(
        self, exc: BaseException, *, commit_sent: bool, lost: bool, retryable: bool
    ) -> Outcome:
        if lost:
            return Outcome.RETRY
        return super().transaction_outcome(
            exc, commit_sent=commit_sent, lost=lost, retryable=retryable
        )


# -- 7: the socket error escapes ---------------------------------------------------------------


class EscapingSocketErrorClient(LeaseClient):
    """Lets the error of a socket that died while idle escape into the caller."""

    def handle_idle_socket_error(self, exc: BaseException) -> None:
        raise exc


# -- 9: session-level advisory lock -------------------------------------------------------------


class SessionLockReaper(Reaper):
    """Leads with a session-level lock held across the pass: a frozen holder stalls all."""

    @contextlib.contextmanager
    def leadership(self, conn: Conn) -> Iterator[bool]:
        cfg = self.config
        key = sql.SQL("{}, hashtext({})").format(
            sql.Literal(cfg.lock_namespace), sql.Literal(token.service_tag(cfg.service))
        )
        row = conn.execute(sql.SQL("SELECT pg_try_advisory_lock({})").format(key)).fetchone()
        got = bool(row and row[0])
        try:
            yield got
        finally:
            if got and not conn.closed:
                conn.execute(sql.SQL("SELECT pg_advisory_unlock({})").format(key))


class SessionLockClient(LeaseClient):
    reaper_class = SessionLockReaper


# -- the registry ----------------------------------------------------------------------------------

CORRECT = "harness.lease:LeaseClient"


@dataclass(frozen=True)
class Bug:
    """One zoo entry: how to build the broken client, and what must catch it."""

    number: int
    name: str
    hole: str
    expected: str
    """The property that must fail (``P1`` … ``P5``)."""
    client_class: str = CORRECT
    lease_overrides: Mapping[str, Any] = field(default_factory=dict)


ZOO: tuple[Bug, ...] = (
    Bug(
        1,
        "no_idle_filter",
        "reaper without the state = 'idle' filter kills active connections",
        "P1",
        f"{__name__}:NoIdleFilterClient",
    ),
    Bug(
        2,
        "ignores_expiry",
        "reaper that ignores lease expiry kills warm idle workers",
        "P1",
        f"{__name__}:IgnoresExpiryClient",
    ),
    Bug(
        3,
        "skips_signature",
        "reaper that skips signature checks kills forged leases",
        "P5",
        f"{__name__}:SkipsSignatureClient",
    ),
    Bug(
        4,
        "no_recheck",
        "kill without re-check at kill time (check-then-act race)",
        "P1",
        f"{__name__}:NoRecheckClient",
    ),
    Bug(
        5,
        "no_fencing",
        "client without fencing keeps using a connection past its lease",
        "P1",
        f"{__name__}:NoFencingClient",
    ),
    Bug(
        6,
        "reruns_writes",
        "retry re-runs a write after the socket died: duplicates",
        "P3",
        f"{__name__}:RerunsWritesClient",
    ),
    Bug(
        7,
        "escaping_socket_error",
        "socket error escaping the idle-socket handler",
        "P4",
        f"{__name__}:EscapingSocketErrorClient",
    ),
    Bug(
        8,
        "reaper_disabled",
        "reaper disabled: zombies never converge",
        "P2",
        CORRECT,
        {"reaper_enabled": False},
    ),
    Bug(
        9,
        "session_lock",
        "session-level advisory lock held by a frozen reaper stalls reaping",
        "P2",
        f"{__name__}:SessionLockClient",
    ),
)

BY_NAME: dict[str, Bug] = {b.name: b for b in ZOO}
