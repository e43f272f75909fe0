"""``plain``: one psycopg connection opened at module scope, reconnected after an error.

What most serverless guides show: connect once at cold start, outside the
handler, reuse the connection on every invocation; when a statement fails
because the connection is gone, the error goes to the caller (the statement is
never re-run: nobody knows whether it committed) and the next invocation
connects again. Nothing closes a frozen sandbox's connection: that is left to
whatever else the deployment has (``server_timeout``, ``pgbouncer``).

Options: ``application_name``; ``prepare_threshold`` (None behind PgBouncer in
transaction mode, as psycopg's documentation says: 1.18 keeps no prepared
statements across transactions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg

from harness.drivers._hooks import Hooks, Statements, call, sqlstate

T = TypeVar("T")
_UNSET = object()


class PlainDriver(Statements):
    """The driver: ``execute``, ``transaction``, ``backend_pid``, ``close``."""

    def __init__(self, conninfo: str, options: Mapping[str, Any], hooks: Hooks) -> None:
        self._conninfo = conninfo
        self._app = str(options.get("application_name") or "thawproof-svc")
        self._prepare = options.get("prepare_threshold", _UNSET)
        self._hooks = hooks
        self._conn: psycopg.Connection[Any] | None = None
        self._connect()  # at module scope, as the guides show

    # -- the connection

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._conninfo, autocommit=True, application_name=self._app, connect_timeout=5
        )
        if self._prepare is not _UNSET:
            conn.prepare_threshold = self._prepare
        self._conn = conn
        call(
            self._hooks,
            "on_connect",
            backend_pid=conn.info.backend_pid,
            application_name=self._app,
        )
        return conn

    def _usable(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            call(self._hooks, "on_client_dead", backend_pid=self._pid(conn))
            conn.close()
            self._conn = None
        return self._connect()

    @staticmethod
    def _pid(conn: psycopg.Connection[Any]) -> int | None:
        try:
            return conn.info.backend_pid
        except psycopg.Error:
            return None

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else self._pid(conn)

    # -- statements

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        conn = self._usable()
        call(self._hooks, "on_query_start", backend_pid=self._pid(conn))
        try:
            return fn(conn)
        except psycopg.Error as exc:
            call(
                self._hooks,
                "on_query_error",
                backend_pid=self._pid(conn),
                sqlstate=sqlstate(exc),
                error=str(exc),
            )
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
