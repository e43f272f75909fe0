"""PostgreSQL traffic through the session's Toxiproxy server (faultproxy or the real one).

Each fault is checked as a client sees it (psycopg 3). Nothing sleeps to
synchronise: a query is known to be in flight when ``pg_stat_activity`` (read
from an admin connection) says so, and every wait has a deadline that fails
loudly. Timing assertions are one-sided and implied by the toxic itself (a
100 ms latency makes a round trip take at least 100 ms).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import Proxy, ToxiproxyServer

WAIT = 15.0


def wait_for(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    pause = 0.005
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class Background:
    """Runs one query on a connection in a thread; records its result or its exception."""

    def __init__(self, conn: psycopg.Connection[Any], sql: str) -> None:
        self.error: BaseException | None = None
        self.rows: list[Any] | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(conn, sql), daemon=True)
        self._thread.start()

    def _run(self, conn: psycopg.Connection[Any], sql: str) -> None:
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                self.rows = cur.fetchall()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def finished(self, timeout: float = WAIT) -> BaseException | None:
        if not self.done.wait(timeout):
            pytest.fail(f"query still blocked after {timeout}s")
        self._thread.join(timeout)
        return self.error


@pytest.fixture
def pg_proxy(pg: PostgresServer, toxiproxy: ToxiproxyServer) -> Proxy:
    return toxiproxy.create_proxy(f"pg_{uuid.uuid4().hex[:10]}", (pg.host, pg.port))


@pytest.fixture
def admin(pg: PostgresServer) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def app_name() -> str:
    return f"proxytest_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def proxied(
    pg: PostgresServer, pg_proxy: Proxy, app_name: str
) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(
        pg.dsn(host=pg_proxy.host, port=pg_proxy.port, application_name=app_name),
        autocommit=True,
    )
    try:
        yield conn
    finally:
        conn.close()


def backend_state(admin: psycopg.Connection[Any], app_name: str) -> str | None:
    row = admin.execute(
        "SELECT state FROM pg_stat_activity WHERE application_name = %s", (app_name,)
    ).fetchone()
    return None if row is None else str(row[0])


def wait_active(admin: psycopg.Connection[Any], app_name: str) -> None:
    wait_for(lambda: backend_state(admin, app_name) == "active", f"{app_name} to be active")


def terminate(admin: psycopg.Connection[Any], app_name: str) -> None:
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (app_name,),
    )


def round_trips(conn: psycopg.Connection[Any], n: int) -> list[float]:
    times = []
    with conn.cursor() as cur:
        for _ in range(n):
            start = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchone()
            times.append(time.perf_counter() - start)
    return times


def test_select_through_proxy(proxied: psycopg.Connection[Any]) -> None:
    assert proxied.execute("SELECT 41 + 1").fetchone() == (42,)


def test_latency_is_added_and_measurable(
    pg: PostgresServer, pg_proxy: Proxy, proxied: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(pg.app_dsn, autocommit=True) as direct:
        direct_median = statistics.median(round_trips(direct, 10))
        pg_proxy.add_toxic("latency", latency=100)
        slowed = round_trips(proxied, 5)
        assert min(slowed) >= 0.1
        assert statistics.median(slowed) > direct_median
        pg_proxy.remove_toxic("latency_downstream")
        assert min(round_trips(proxied, 5)) < min(slowed)


def test_reset_peer_during_pg_sleep_is_a_connection_error(
    pg_proxy: Proxy,
    proxied: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    app_name: str,
) -> None:
    query = Background(proxied, "SELECT pg_sleep(1)")
    wait_active(admin, app_name)
    pg_proxy.add_toxic("reset_peer", timeout=0)
    error = query.finished()
    assert isinstance(error, psycopg.OperationalError), repr(error)
    assert proxied.closed or proxied.broken


def test_downstream_timeout_zero_holds_until_removed_then_closes(
    pg_proxy: Proxy,
    proxied: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    app_name: str,
) -> None:
    pg_proxy.add_toxic("timeout", timeout=0)
    query = Background(proxied, "SELECT pg_sleep(0.2), 1")
    wait_active(admin, app_name)
    # The server finishes the statement and answers; the answer is swallowed.
    wait_for(lambda: backend_state(admin, app_name) == "idle", "the statement to end")
    assert not query.done.wait(0.3), "the client got an answer through a timeout toxic"
    pg_proxy.remove_toxic("timeout_downstream")
    error = query.finished()
    assert isinstance(error, psycopg.OperationalError), repr(error)


def test_limit_data_cuts_a_large_result(pg_proxy: Proxy, proxied: psycopg.Connection[Any]) -> None:
    pg_proxy.add_toxic("limit_data", bytes=100_000)
    with pytest.raises(psycopg.OperationalError):
        proxied.execute("SELECT repeat('x', 1000) FROM generate_series(1, 5000)").fetchall()


def test_disabling_the_proxy_closes_a_silent_connection_at_once(
    pg_proxy: Proxy,
    proxied: psycopg.Connection[Any],
    admin: psycopg.Connection[Any],
    app_name: str,
) -> None:
    query = Background(proxied, "SELECT pg_sleep(60)")
    wait_active(admin, app_name)
    try:
        pg_proxy.disable()
        error = query.finished()
        assert isinstance(error, psycopg.OperationalError), repr(error)
    finally:
        terminate(admin, app_name)
    pg_proxy.enable()


def test_bandwidth_slows_a_large_result(pg_proxy: Proxy, proxied: psycopg.Connection[Any]) -> None:
    sql = "SELECT repeat('x', 1000) FROM generate_series(1, 500)"  # ~0.5 MB on the wire

    def fetch_seconds() -> float:
        start = time.perf_counter()
        rows = proxied.execute(sql).fetchall()
        assert len(rows) == 500
        return time.perf_counter() - start

    without = fetch_seconds()
    pg_proxy.add_toxic("bandwidth", rate=500)  # KB/s
    with_toxic = fetch_seconds()
    assert with_toxic >= 0.5
    assert with_toxic > without
