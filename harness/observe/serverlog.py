"""The server log: its record of terminations, to cross-check the reaper's ledger.

:func:`terminations_from_log` reads the server log for backends that ended
with "terminating connection due to administrator command", the trace every
``pg_terminate_backend`` leaves; :func:`cross_check_kills` compares that with
the reaper's ledger, so a kill the ledger forgot (or invented) shows up.

:func:`terminations` reads every termination the server performed — by
``pg_terminate_backend`` from any session, or by its own idle timeouts — and
attributes each kill to the session whose logged statement called
``pg_terminate_backend`` (PostgreSQL 15 logs nothing in the killer's session by
itself: the harness sets ``log_statement = 'all'`` for the application role, so
the kill statement and its parameters are in the log). What PostgreSQL 15
really logs, measured: the victim's ``FATAL: terminating connection due to
administrator command`` (57P01) in the same millisecond as the killer's
statement, ``FATAL: terminating connection due to idle-session timeout``
(57P05), ``FATAL: terminating connection due to idle-in-transaction timeout``
(25P03), then ``disconnection``; an immediate restart logs only ``received
immediate shutdown request``, nothing per backend.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from harness.history import ConnectionEvent, RefusalEvent, TerminationCause, TerminationEvent

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


# ---------------------------------------------------------------- every termination, attributed

_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (?P<tz>\S+) \[(?P<pid>\d+)\] "
    r"(?:(?P<user>\S*)@(?P<db>\S*) app=(?P<app>.*?) )?"
    r"(?P<level>LOG|FATAL|DETAIL|ERROR|WARNING|STATEMENT|HINT|CONTEXT|PANIC):  (?P<msg>.*)$"
)
_CAUSES: dict[str, TerminationCause] = {
    "terminating connection due to administrator command": "terminate_backend",
    "terminating connection due to idle-session timeout": "idle_session_timeout",
    "terminating connection due to idle-in-transaction timeout": "idle_in_transaction_timeout",
}
_STATEMENT = re.compile(r"^(?:statement: |execute [^:]*: )(?P<sql>.*)$", re.S)
KILL_WINDOW_S = 5.0
"""How long before a victim's FATAL line a kill statement may have started."""


@dataclass(frozen=True)
class LogLine:
    """One line of the server log in the harness's ``log_line_prefix``."""

    wall: float
    pid: int
    user: str | None
    db: str | None
    app: str | None
    level: str
    message: str


def _none(v: str | None) -> str | None:
    return None if v in (None, "", "[unknown]") else v


def parse_log(text: str) -> list[LogLine]:
    """The entries of ``text`` that carry the harness's prefix (``%m [%p] %q%u@%d app=%a``),
    each with its continuation lines (a multi-line statement goes on in lines that start
    with a tab) joined to its message; entries stamped in another zone than UTC/GMT are
    skipped."""
    out: list[LogLine] = []
    current: LogLine | None = None
    for raw in text.splitlines():
        m = _LINE.match(raw)
        if m is None:
            if current is not None and raw.startswith("\t"):
                current = replace(current, message=f"{current.message}\n{raw[1:]}")
                out[-1] = current
            continue
        if m.group("tz") not in ("UTC", "GMT"):
            current = None
            continue
        when = _dt.datetime.strptime(m.group("ts"), "%Y-%m-%d %H:%M:%S.%f")
        current = LogLine(
            wall=when.replace(tzinfo=_dt.UTC).timestamp(),
            pid=int(m.group("pid")),
            user=_none(m.group("user")),
            db=_none(m.group("db")),
            app=_none(m.group("app")),
            level=m.group("level"),
            message=m.group("msg"),
        )
        out.append(current)
    return out


@dataclass(frozen=True)
class _Kill:
    line: LogLine
    text: str


def _kill_statements(lines: list[LogLine]) -> list[_Kill]:
    """Logged statements that call ``pg_terminate_backend``, with their parameters."""
    kills: list[_Kill] = []
    last: dict[int, int] = {}  # pid -> index in kills of its latest kill statement
    for ln in lines:
        if ln.level == "LOG" and (m := _STATEMENT.match(ln.message)):
            if "pg_terminate_backend" in m.group("sql").lower():
                last[ln.pid] = len(kills)
                kills.append(_Kill(ln, m.group("sql")))
            else:
                last.pop(ln.pid, None)
        elif ln.level == "DETAIL" and ln.message.startswith("parameters:") and ln.pid in last:
            i = last.pop(ln.pid)
            kills[i] = _Kill(kills[i].line, f"{kills[i].text} -- {ln.message}")
    return kills


def _names(pid: int, text: str) -> bool:
    return re.search(rf"(?<![\d.]){pid}(?![\d.])", text) is not None


_ONE_PID = re.compile(r"pg_terminate_backend\(\s*(\d+)\s*[,)]|\bpid\s*=\s*(\d+)\b")


def _aims_elsewhere(pid: int, text: str) -> bool:
    """The kill statement names the one backend it may end, and that is not ``pid``
    (a reaper's ``... WHERE a.pid = 123``): it cannot have ended ``pid``."""
    aimed = {int(a or b) for a, b in _ONE_PID.findall(text)}
    return bool(aimed) and pid not in aimed


def terminations(
    text: str, *, since_wall: float = -math.inf, monotonic_offset: float = 0.0
) -> list[TerminationEvent]:
    """Every backend the server log says was ended by a ``pg_terminate_backend`` or by
    the server's idle timeouts, at or after ``since_wall``, as history events
    (``time`` = log wall time - ``monotonic_offset``, the run's ``wall - time``).

    A ``terminate_backend`` is attributed to the kill statement (another backend's
    ``pg_terminate_backend`` call, logged when the role's ``log_statement`` is ``all``)
    that names the victim's pid in its text or parameters, else to the latest one that
    began within :data:`KILL_WINDOW_S` before the victim's line and does not aim at one
    other backend by pid (a reaper's kill of another zombie in the same instant is not
    the killer: measured, an operator's kill was blamed on one); with none, the killer
    is unknown (the harness's own admin sessions are not logged)."""
    lines = parse_log(text)
    kills = _kill_statements(lines)
    out: list[TerminationEvent] = []
    for ln in lines:
        cause = _CAUSES.get(ln.message) if ln.level == "FATAL" else None
        if cause is None or ln.wall < since_wall:
            continue
        killer: _Kill | None = None
        if cause == "terminate_backend":
            window = [
                k
                for k in kills
                if k.line.pid != ln.pid
                and ln.wall - KILL_WINDOW_S <= k.line.wall <= ln.wall
                and not _aims_elsewhere(ln.pid, k.text)
            ]
            named = [k for k in window if _names(ln.pid, k.text)]
            pick = named or window
            killer = pick[-1] if pick else None
        out.append(
            TerminationEvent(
                pid=ln.pid,
                cause=cause,
                application_name=ln.app,
                user=ln.user,
                time=ln.wall - monotonic_offset,
                wall=ln.wall,
                killer_pid=None if killer is None else killer.line.pid,
                killer_application_name=None if killer is None else killer.line.app,
                killer_user=None if killer is None else killer.line.user,
                statement=None if killer is None else killer.text[:500],
            )
        )
    return out


REFUSALS: tuple[str, ...] = (
    "sorry, too many clients already",
    "remaining connection slots are reserved for non-replication superuser connections",
    "too many connections for role",
    "too many connections for database",
)
"""The FATAL messages of a connection refused for want of a slot (SQLSTATE 53300)."""


def refusals(text: str, *, since_wall: float = -math.inf) -> int:
    """How many connection attempts the server refused with 53300 at or after
    ``since_wall``: every attempt, retries included (the client sees only the last)."""
    return len(refusal_events(text, since_wall=since_wall))


def refusal_events(
    text: str, *, since_wall: float = -math.inf, monotonic_offset: float = 0.0
) -> list[RefusalEvent]:
    """The refusals of :func:`refusals`, as history events (times as in :func:`terminations`)."""
    return [
        RefusalEvent(time=ln.wall - monotonic_offset, wall=ln.wall, application_name=ln.app)
        for ln in parse_log(text)
        if ln.level == "FATAL" and ln.wall >= since_wall and ln.message.startswith(REFUSALS)
    ]


_AUTHORIZED = re.compile(
    r"^connection authorized: user=(?P<user>\S+) database=(?P<db>\S+)"
    r"(?: application_name=(?P<app>.*?))?(?: SSL enabled.*)?$"
)


def connection_events(
    text: str, *, since_wall: float = -math.inf, monotonic_offset: float = 0.0
) -> list[ConnectionEvent]:
    """Every connection the server authorized at or after ``since_wall``, with the
    application_name it began with (times as in :func:`terminations`)."""
    out = []
    for ln in parse_log(text):
        if ln.level != "LOG" or ln.wall < since_wall:
            continue
        m = _AUTHORIZED.match(ln.message)
        if m is None:
            continue
        out.append(
            ConnectionEvent(
                pid=ln.pid,
                user=m["user"],
                database=m["db"],
                application_name=m["app"] or None,
                time=ln.wall - monotonic_offset,
                wall=ln.wall,
            )
        )
    return out
