"""Helpers of the lease integration tests: zombies, waiting for events, backend liveness."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg

from harness.lease import LeaseConfig, token

T = TypeVar("T")
SECRET = "integration-secret-0123456789"
_names = itertools.count()


def service_name(prefix: str = "svc") -> str:
    """A fresh service per test, so reapers of different tests never meet."""
    return f"{prefix}{next(_names)}-{int(time.time() * 1000) % 100000}"


def config(service: str, **kw: Any) -> LeaseConfig:
    """Compressed timings: leases of a second, no scheduled passes unless asked."""
    kw.setdefault("lease_ttl", 1.0)
    kw.setdefault("min_idle", 0.0)
    kw.setdefault("reap_probability", 0.0)
    kw.setdefault("reaper_lock_timeout", 5.0)
    kw.setdefault("retry_budget", 10.0)
    return LeaseConfig(service=service, secret=kw.pop("secret", SECRET), **kw)


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Poll ``predicate`` until it returns something truthy; fail loudly at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def lease_name(
    service: str, expires_in: float, *, secret: str = SECRET, instance: str | None = None
) -> str:
    expiry_ms = int((time.time() + expires_in) * 1000)
    return token.encode(service, instance or token.new_instance(), expiry_ms, secret)


@contextmanager
def zombie(
    dsn: str, application_name: str, *, in_transaction: bool = False
) -> Iterator[psycopg.Connection[Any]]:
    """A connection left idle (or idle in transaction) under ``application_name``."""
    conn = psycopg.connect(dsn, autocommit=True, application_name=application_name)
    try:
        if in_transaction:
            conn.execute("BEGIN")
            conn.execute("SELECT 1")
        yield conn
    finally:
        conn.close()


def backend_alive(admin: psycopg.Connection[Any], pid: int) -> bool:
    row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return bool(row and row[0])


def wait_gone(admin: psycopg.Connection[Any], pid: int, timeout: float = 10.0) -> None:
    wait_for(lambda: not backend_alive(admin, pid), f"backend {pid} to exit", timeout)


def wait_idle(admin: psycopg.Connection[Any], pid: int, state: str = "idle") -> None:
    def check() -> bool:
        row = admin.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        return bool(row and row[0] == state)

    wait_for(check, f"backend {pid} to be {state!r}")


class Recorder:
    """Collects hook payloads: ``hooks`` maps every hook name to it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.on: dict[str, Callable[[dict[str, Any]], None]] = {}

    def hooks(self, *names: str) -> dict[str, Callable[[dict[str, Any]], None]]:
        return {n: self._hook(n) for n in names}

    def _hook(self, name: str) -> Callable[[dict[str, Any]], None]:
        def record(payload: dict[str, Any]) -> None:
            self.events.append(payload)
            extra = self.on.get(name)
            if extra is not None:
                extra(payload)

        return record

    def of(self, hook: str, event: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["hook"] == hook and (event is None or e.get("event") == event)
        ]
