"""What a Python driver tells the worker, in the hooks' words (shared by the shipped drivers)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg

Hooks = Mapping[str, Callable[[dict[str, Any]], None]]


def call(hooks: Hooks, name: str, **payload: Any) -> None:
    """Call hook ``name`` if the worker gave one; a hook never changes the driver's course."""
    hook = hooks.get(name)
    if hook is not None:
        with contextlib.suppress(Exception):
            hook(dict(payload))


def sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "diag", None), "sqlstate", None) or getattr(exc, "sqlstate", None)


T = TypeVar("T")


class Statements:
    """``execute`` and ``transaction`` on whatever connection the driver's ``_run``
    hands its function (one connection of its own, or one from a pool)."""

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        raise NotImplementedError

    def execute(
        self, query: Any, params: Any = None, *, idempotent: bool = False
    ) -> list[tuple[Any, ...]]:
        """One autocommit statement, its rows. Never re-run, idempotent or not."""

        def go(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

        return self._run(go)

    def transaction(self, body: Callable[[Any], T]) -> T:
        """``body(tx)`` between BEGIN and COMMIT; ``tx.execute(sql, params)``."""

        def go(conn: psycopg.Connection[Any]) -> T:
            with conn.transaction():
                return body(conn)

        return self._run(go)
