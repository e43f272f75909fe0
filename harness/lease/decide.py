"""The reaper's decision: which backends to terminate, from one snapshot. Pure.

``decide(rows, now, config)`` takes rows of ``pg_stat_activity`` (already narrowed by
the scan, but trusted for nothing), the reaper's clock and the config, and returns
the kill candidates, oldest expiry first, at most ``max_kills``. A row is a
candidate only if ALL hold:

- its state is known and non-active (``state_ok``): NULL state or NULL state_change
  (another role's row seen without ``pg_read_all_stats``) is never a candidate;
- it carries this service's lease with a valid signature (``lease_of``);
- the lease expired more than ``reaper_grace`` ago by the reaper's clock
  (``lease_expired``);
- it has been idle at least ``min_idle``, as measured by the server (``idle_long_enough``);
- it is not a superuser session of another role (``protected``).

Each rule is one method of :class:`Rules`, which :class:`harness.lease.reaper.Reaper`
inherits, so a deliberately broken reaper (the bug zoo) overrides exactly one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.lease import token
from harness.lease.config import LeaseConfig
from harness.lease.token import Lease

IDLE_STATES: tuple[str, ...] = ("idle", "idle in transaction", "idle in transaction (aborted)")


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """What the reaper knows of one backend (one row of its scan)."""

    pid: int
    application_name: str | None
    state: str | None
    state_change: dt.datetime | None
    idle_for: float | None
    """Seconds since state_change, measured by the server at scan time."""
    superuser: bool = False
    """The backend's role is a superuser."""
    same_role: bool = False
    """The backend runs as the reaper's own role."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A row chosen for termination, with its verified lease."""

    row: ActivityRow
    lease: Lease


class Rules:
    """The reaper's predicates over one row; each a seam for the bug zoo.

    Seams: ``idle_states`` (#1, the state filter, used by the scan SQL, by
    :meth:`state_ok` and by the kill-time re-check), :meth:`lease_expired` (#2),
    :meth:`lease_of` (#3, the signature check).
    """

    idle_states: tuple[str, ...] = IDLE_STATES

    def __init__(self, config: LeaseConfig) -> None:
        self.config = config

    def state_ok(self, row: ActivityRow) -> bool:
        """Known, non-active state with a known state_change. Unknown is not idle."""
        return (
            row.state is not None and row.state_change is not None and row.state in self.idle_states
        )

    def lease_of(self, row: ActivityRow) -> Lease | None:
        """The row's lease if it is this service's and correctly signed."""
        return token.verify(row.application_name, self.config.service, self.config.secret_bytes)

    def lease_expired(self, lease: Lease, now: float) -> bool:
        """Expired by more than the grace, by the reaper's clock."""
        return lease.expiry + self.config.reaper_grace < now

    def idle_long_enough(self, row: ActivityRow) -> bool:
        return row.idle_for is not None and row.idle_for >= self.config.min_idle

    def protected(self, row: ActivityRow) -> bool:
        """Superuser sessions of another role are never ours to kill."""
        return row.superuser and not row.same_role

    def candidate(self, row: ActivityRow, now: float) -> Candidate | None:
        if self.protected(row) or not self.state_ok(row):
            return None
        lease = self.lease_of(row)
        if lease is None or not self.lease_expired(lease, now):
            return None
        if not self.idle_long_enough(row):
            return None
        return Candidate(row, lease)

    def decide(self, rows: Iterable[ActivityRow], now: float) -> list[Candidate]:
        """Candidates among ``rows``, oldest expiry first, at most ``max_kills``."""
        found = [c for row in rows if (c := self.candidate(row, now)) is not None]
        found.sort(key=lambda c: (c.lease.expiry_ms, c.row.pid))
        return found[: self.config.max_kills]


def decide(rows: Sequence[ActivityRow], now: float, config: LeaseConfig) -> list[Candidate]:
    """The correct reaper's decision over a snapshot (see the module docstring)."""
    return Rules(config).decide(rows, now)
