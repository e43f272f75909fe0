"""What is recorded beside the history: ``pg_stat_activity`` samples and the final state.

Plain frozen dataclasses; :mod:`harness.history.codec` reads and writes them
from their fields, like the events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One ``pg_stat_activity`` row of a sample. Wall-clock fields are server seconds."""

    pid: int
    application_name: str | None = None
    state: str | None = None
    state_change: float | None = None
    backend_start: float | None = None
    xact_start: float | None = None
    usename: str | None = None
    backend_type: str | None = None
    superuser: bool | None = None
    """The backend's role is a superuser (``pg_roles.rolsuper``; None: not recorded)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One snapshot of ``pg_stat_activity``, taken at harness ``time``/``wall``."""

    time: float
    wall: float
    rows: tuple[ActivityRow, ...] = ()

    def pids(self) -> frozenset[int]:
        return frozenset(r.pid for r in self.rows)

    def row(self, pid: int) -> ActivityRow | None:
        return next((r for r in self.rows if r.pid == pid), None)


@dataclass(frozen=True, slots=True)
class FinalState:
    """The database at the end of the run: ledger rows per op_id, the counter, the row total."""

    ledger_counts: Mapping[str, int]
    counter: int
    ledger_rows: int
