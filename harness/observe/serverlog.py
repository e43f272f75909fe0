"""The server log: its record of terminations, to cross-check the reaper's ledger.

:func:`terminations_from_log` reads the server log for backends that ended
with "terminating connection due to administrator command", the trace every
``pg_terminate_backend`` leaves; :func:`cross_check_kills` compares that with
the reaper's ledger, so a kill the ledger forgot (or invented) shows up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_TERMINATED = re.compile(
    r"^\S+ \S+ \S+ \[(?P<pid>\d+)\] .*FATAL:\s+terminating connection due to administrator command"
)


def terminations_from_log(log_text: str) -> list[int]:
    """Backend pids that the server log says were ended by ``pg_terminate_backend``
    (or a fast shutdown), in log order. Needs the harness's ``log_line_prefix``
    (``%m [%p] ...``), which ``LocalCluster`` sets."""
    return [int(m.group("pid")) for m in map(_TERMINATED.match, log_text.splitlines()) if m]


@dataclass(frozen=True)
class KillCrossCheck:
    """Ledger kills vs. the server's own record of terminations."""

    ledger_only: tuple[int, ...]  # the ledger says killed, the server never logged it
    log_only: tuple[int, ...]  # the server logged a termination nobody accounts for

    @property
    def consistent(self) -> bool:
        return not self.ledger_only and not self.log_only


def cross_check_kills(
    ledger_kills: Iterable[int], log_terminations: Iterable[int], external: Iterable[int] = ()
) -> KillCrossCheck:
    """Compare the reaper's "killed" ledger pids with the log's terminations;
    ``external`` are pids the harness itself terminated (faults), which the
    ledger rightly does not hold."""
    ledger, logged, ext = set(ledger_kills), set(log_terminations), set(external)
    return KillCrossCheck(
        ledger_only=tuple(sorted(ledger - logged)),
        log_only=tuple(sorted(logged - ledger - ext)),
    )
