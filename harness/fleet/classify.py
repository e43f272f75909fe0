"""How a worker turns an operation's exception into ``fail`` or ``info``. Pure.

This decides P3, so the rule is strict:

- ``OutcomeUnknown``: ``info`` (the client says it cannot know).
- ``ConnectionDead`` (and its ``LeaseExpired``), ``RetriesExhausted``,
  ``ConnectFailed``: ``fail`` (the client guarantees nothing was applied).
- A driver error the *server answered* with a definite SQLSTATE (a unique
  violation, a syntax error, 57014 canceled, or 53300 / 57P03 at connect):
  ``fail`` (the statement was rolled back, or never started).
- Idempotent operations (reads): any other error is ``fail`` too; nothing
  they do can be duplicated.
- Non-idempotent operations: ANY other exception (a raw
  ``psycopg.OperationalError`` that escaped the client, a bare ``OSError``, an
  unknown ``LeaseError`` subclass) is ``info``: the write may have reached the
  server. Its class is recorded so P4 can flag the escape.
"""

from __future__ import annotations

from typing import Literal

from harness.history import ErrorInfo
from harness.lease.errors import (
    ConnectFailed,
    ConnectionDead,
    LeaseError,
    OutcomeUnknown,
    RetriesExhausted,
)
from harness.lease.retry import sqlstate_of

IDEMPOTENT_FS: frozenset[str] = frozenset({"read", "slow_read", "burst", "reap"})
"""Operations whose error can never hide an applied write."""

DEFINITELY_NOT_APPLIED = (ConnectionDead, RetriesExhausted, ConnectFailed)

_AMBIGUOUS_CLASSES = frozenset({"08", "XX", "58"})
"""Connection exceptions, internal and system errors: the session may have died after
the statement committed."""
_AMBIGUOUS_STATES = frozenset({"57P01", "57P02", "57P04", "57P05", "25P03"})
"""FATAL terminations: they end the session and can follow a commit."""

_MESSAGE_LIMIT = 500


def sqlstate_in_chain(exc: BaseException) -> str | None:
    """The first SQLSTATE found on ``exc`` or its causes (``__cause__``, then ``__context__``)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        state = sqlstate_of(cur)
        if state:
            return state
        cur = cur.__cause__ or cur.__context__
    return None


def definite_sqlstate(state: str | None) -> bool:
    """Does this SQLSTATE prove the statement did not take effect?"""
    if not state:
        return False
    return state[:2] not in _AMBIGUOUS_CLASSES and state not in _AMBIGUOUS_STATES


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of ``exc``'s chain (``__cause__``, then ``__context__``)."""
    seen: set[int] = set()
    cur = exc
    while id(cur) not in seen:
        seen.add(id(cur))
        nxt = cur.__cause__ or cur.__context__
        if nxt is None:
            break
        cur = nxt
    return cur


def error_info(exc: BaseException) -> ErrorInfo:
    """The ``error`` of a history completion: the class the caller saw, and its message
    with the root cause's (a refused connection must be visible behind a retry)."""
    message = str(exc)
    cause = root_cause(exc)
    if cause is not exc:
        message += f" | root cause: {type(cause).__name__}: {cause}"
    return ErrorInfo(sqlstate_in_chain(exc), type(exc).__name__, message[:_MESSAGE_LIMIT])


def classify(f: str, exc: BaseException) -> Literal["fail", "info"]:
    """``fail`` if ``exc`` proves operation ``f`` did not take effect, else ``info``."""
    if isinstance(exc, OutcomeUnknown):
        return "info"
    if isinstance(exc, DEFINITELY_NOT_APPLIED):
        return "fail"
    if f in IDEMPOTENT_FS:
        return "fail"
    if isinstance(exc, LeaseError):
        # An unknown subclass is no guarantee, whatever its chained cause says.
        return "info"
    if definite_sqlstate(sqlstate_of(exc)):
        return "fail"
    return "info"
