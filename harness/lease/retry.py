"""When to retry, how long to wait, and what a failure means for the outcome.

Pure rules, no I/O (the client applies them):

- :class:`Backoff`: decorrelated jitter, ``sleep = min(cap, uniform(base, prev * 3))``;
  the client keeps one for connecting and one for statements, each reset on success.
- :class:`Budget`: bounds one operation's retries by count and by total time.
- :func:`connect_retryable`: refused/reset/timeouts, SQLSTATE class 08, 57P01, 57P02,
  57P03, 53300. psycopg 3 gives no SQLSTATE for a failed connection attempt (measured
  with psycopg 3.3 / PostgreSQL 15), so the server's message is classified too.
- :func:`statement_outcome` and :func:`transaction_outcome`: the outcome rules. A
  statement is re-run only when it is known not to have taken effect; a connection
  that died after a non-idempotent statement or a COMMIT may have reached the server
  means *unknown*, never a re-run.
"""

from __future__ import annotations

import enum
import random
import re
import time
from collections.abc import Callable

import psycopg

RETRYABLE_CONNECT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
"""Plus every state of class 08 (connection exception)."""

SERIALIZATION_SQLSTATES = frozenset({"40001", "40P01"})
"""Serialization failure, deadlock: retried only as a whole transaction marked retryable."""

FATAL_SESSION_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "25P03", "57P05"})
"""Errors after which the server closes the session (admin shutdown, crash, cannot
connect now, idle-in-transaction timeout, idle-session timeout)."""

# Server messages (lc_messages C/en) of failed connection attempts -> SQLSTATE.
_CONNECT_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), s)
    for p, s in (
        (r"too many clients already", "53300"),
        (r"remaining connection slots are reserved", "53300"),
        (r"too many connections for (role|database)", "53300"),
        (
            r"the database system is (starting up|shutting down|in recovery mode"
            r"|not yet accepting connections|not accepting connections)",
            "57P03",
        ),
        (r"terminating connection due to administrator command", "57P01"),
        (r"terminating connection due to (immediate|fast) shutdown", "57P01"),
        (r"terminating connection because of crash of another server process", "57P02"),
        (r"password authentication failed", "28P01"),
        (r"no pg_hba\.conf entry", "28000"),
        (r"role \".*\" does not exist", "28000"),
        (r"database \".*\" does not exist", "3D000"),
        (r"permission denied for database", "42501"),
    )
)

# Transport failures (no server message at all): retryable on connect.
_TRANSPORT = re.compile(
    r"connection refused|connection reset|timeout expired|timed out|"
    r"server closed the connection unexpectedly|could not (connect|receive|send)|"
    r"no route to host|network is unreachable|broken pipe|ssl syscall|"
    r"no such file or directory",
    re.IGNORECASE,
)


class Outcome(enum.Enum):
    """What a failed operation means, and so what the client does next."""

    RETRY = "retry"
    """Known not to have taken effect, and safe to run again: retry with backoff."""
    FAIL = "fail"
    """The server answered with a definite error: nothing applied; raised as is."""
    DEAD = "dead"
    """Connection lost, known not applied, but not re-runnable: ``ConnectionDead``."""
    UNKNOWN = "unknown"
    """Connection lost after it may have reached the server: ``OutcomeUnknown``."""


class Backoff:
    """Decorrelated jitter (AWS architecture blog): ``min(cap, uniform(base, prev*3))``."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self._rng = rng if rng is not None else random.Random()
        self._prev = base

    def next(self) -> float:
        self._prev = min(self.cap, self._rng.uniform(self.base, self._prev * 3))
        return self._prev

    def reset(self) -> None:
        self._prev = self.base


class Budget:
    """Retries allowed to one operation: at most ``retries``, within ``total`` seconds."""

    def __init__(
        self, retries: int, total: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.retries = retries
        self.total = total
        self._monotonic = monotonic
        self._start = monotonic()
        self.used = 0

    @property
    def elapsed(self) -> float:
        return self._monotonic() - self._start

    def allows(self, delay: float) -> bool:
        """May one more retry start after sleeping ``delay``?"""
        return self.used < self.retries and self.elapsed + delay <= self.total

    def spend(self) -> None:
        self.used += 1


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE the server sent, else one read from a connect failure's message."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state:
        return state
    text = str(exc)
    for pattern, code in _CONNECT_MESSAGES:
        if pattern.search(text):
            return code
    return None


def connect_retryable(exc: BaseException) -> bool:
    """Is a failed connection attempt worth retrying?"""
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    state = sqlstate_of(exc)
    if state is not None:
        return state.startswith("08") or state in RETRYABLE_CONNECT_SQLSTATES
    return bool(_TRANSPORT.search(str(exc)))


def connection_lost(exc: BaseException, *, broken: bool) -> bool:
    """Did this failure take the connection with it (rather than a plain ERROR reply)?

    ``broken`` is what the driver says of the connection after the error. An
    OperationalError with no SQLSTATE is a transport failure.
    """
    if broken:
        return True
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state:
        return state.startswith("08") or state in FATAL_SESSION_SQLSTATES
    return isinstance(exc, psycopg.OperationalError | OSError)


def statement_outcome(exc: BaseException, *, sent: bool, lost: bool, idempotent: bool) -> Outcome:
    """Outcome of one autocommit statement that failed with ``exc``.

    - not sent (fencing or the pre-send check found the connection dead): RETRY;
    - connection lost after sending: RETRY if the caller said idempotent, else UNKNOWN
      (even a 57P01 may come after the commit of the statement, so it proves nothing);
    - a plain error reply: FAIL (the statement was rolled back; raised as is).
    """
    if not sent:
        return Outcome.RETRY
    if lost:
        return Outcome.RETRY if idempotent else Outcome.UNKNOWN
    return Outcome.FAIL


def transaction_outcome(
    exc: BaseException, *, commit_sent: bool, lost: bool, retryable: bool
) -> Outcome:
    """Outcome of an explicit transaction that failed with ``exc``.

    - lost after COMMIT was sent: UNKNOWN;
    - lost before COMMIT: the server rolls back, nothing applied: RETRY if the caller
      marked the transaction retryable, else DEAD;
    - an error reply of 40001/40P01: RETRY if retryable, else FAIL;
    - any other error reply: FAIL.
    """
    if lost:
        if commit_sent:
            return Outcome.UNKNOWN
        return Outcome.RETRY if retryable else Outcome.DEAD
    state = getattr(exc, "sqlstate", None)
    if retryable and state in SERIALIZATION_SQLSTATES:
        return Outcome.RETRY
    return Outcome.FAIL
