"""``pool``: psycopg_pool's ConnectionPool at module scope, configured as its documentation
advises for connections that may have died while nobody looked.

``max_size=1`` (one invocation at a time per sandbox), ``min_size=0`` so that
``max_idle`` can close the idle connection (the pool only shrinks above
``min_size``), and ``check=ConnectionPool.check_connection`` so that a
connection is tested before it is handed out ("Connection quality" in
psycopg's pool documentation): a connection killed while the sandbox was
frozen is discarded and replaced, not handed to the handler. The pool's own
threads are frozen with the sandbox, so ``max_idle`` acts only while it is
thawed.

Options: ``application_name``, ``max_idle`` (seconds), ``prepare_threshold``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from harness.drivers._hooks import Hooks, Statements, call, sqlstate

T = TypeVar("T")


class PoolDriver(Statements):
    """The driver: ``execute``, ``transaction``, ``backend_pid``, ``close``."""

    def __init__(self, conninfo: str, options: Mapping[str, Any], hooks: Hooks) -> None:
        self._hooks = hooks
        self._app = str(options.get("application_name") or "thawproof-svc")
        self._pid: int | None = None
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "application_name": self._app,
            "connect_timeout": 5,
        }
        if "prepare_threshold" in options:
            kwargs["prepare_threshold"] = options["prepare_threshold"]
        self.pool = ConnectionPool(
            conninfo,
            min_size=0,
            max_size=1,
            max_idle=float(options.get("max_idle", 1.0)),
            check=ConnectionPool.check_connection,
            configure=self._configured,
            kwargs=kwargs,
            timeout=10.0,
            open=True,
        )

    def _configured(self, conn: psycopg.Connection[Any]) -> None:
        """A new connection of the pool: the backend the worker is on now."""
        self._pid = conn.info.backend_pid
        call(self._hooks, "on_connect", backend_pid=self._pid, application_name=self._app)

    @property
    def backend_pid(self) -> int | None:
        return self._pid

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        with self.pool.connection() as conn:
            pid = conn.info.backend_pid
            if pid != self._pid:
                self._pid = pid
            call(self._hooks, "on_query_start", backend_pid=pid)
            try:
                return fn(conn)
            except psycopg.Error as exc:
                call(
                    self._hooks,
                    "on_query_error",
                    backend_pid=pid,
                    sqlstate=sqlstate(exc),
                    error=str(exc),
                )
                raise

    def close(self) -> None:
        self.pool.close(timeout=1.0)
