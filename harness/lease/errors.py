"""Errors the lease client raises on purpose.

    LeaseError                  base of everything below
    ├── ConfigError             a bad option (also a ValueError); names the field and range
    ├── ConnectFailed           could not connect, and retrying would not help (bad password,
    │                           unknown database...); the driver's error is in __cause__
    ├── RetriesExhausted        a retryable failure outlived the retry budget (count or total
    │                           time); nothing was applied; the last failure is in __cause__
    ├── ConnectionDead          the connection broke where the outcome is KNOWN: nothing was
    │                           applied (e.g. a transaction not marked retryable lost its
    │                           connection before COMMIT was sent)
    │   └── LeaseExpired        fencing refused to go on inside an open transaction because
    │                           the lease ran out (e.g. the worker was frozen mid-transaction);
    │                           the transaction was abandoned, never committed
    └── OutcomeUnknown          the connection died after a non-idempotent statement or a
                                COMMIT may have reached the server: it may or may not have
                                been applied, and it is NOT re-run; cause in __cause__

Whose fault: ``ConnectionDead``/``LeaseExpired`` mean "something outside broke it,
and it definitely did not happen"; ``OutcomeUnknown`` means "we cannot know" (Jepsen's
``:info``). Definite errors answered by the server (a syntax error, a unique
violation...) are not wrapped: the driver's ``psycopg.Error`` is raised as is, with
its ``sqlstate``.

No message of these errors ever contains the coordination secret.
"""

from __future__ import annotations


class LeaseError(Exception):
    """Base of every error the lease client raises on purpose."""

    @property
    def sqlstate(self) -> str | None:
        """SQLSTATE of the chained driver error, if the server sent one."""
        cause = self.__cause__
        state = getattr(cause, "sqlstate", None)
        return state if isinstance(state, str) else None


class ConfigError(LeaseError, ValueError):
    """An option is out of range; the message names the field and the allowed range."""


class ConnectFailed(LeaseError):
    """Connecting failed for a reason that retrying cannot fix."""


class RetriesExhausted(LeaseError):
    """The retry budget ran out; the operation was not applied."""

    def __init__(self, message: str, *, attempts: int, elapsed: float) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.elapsed = elapsed


class ConnectionDead(LeaseError):
    """The connection broke and the operation definitely did not take effect."""


class LeaseExpired(ConnectionDead):
    """The lease ran out inside an open transaction; the transaction was abandoned."""


class OutcomeUnknown(LeaseError):
    """The connection died after the statement may have reached the server; not re-run."""
