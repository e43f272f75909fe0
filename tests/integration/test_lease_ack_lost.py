"""A lost acknowledgement: the server commits, the answer never arrives.

A downstream ``timeout`` toxic (timeout 0) added before a write drops everything the
server sends; removing it closes the connection. The client then gets an
OperationalError with no SQLSTATE after the write may have reached the server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import Proxy, ToxiproxyServer
from harness.lease import LeaseClient, OutcomeUnknown
from tests.integration.lease_support import Recorder, config, service_name, wait_for


@pytest.fixture
def proxy(pg: PostgresServer, toxiproxy: ToxiproxyServer) -> Proxy:
    return toxiproxy.create_proxy(f"lease-{service_name('ack')}", (pg.host, pg.port))


@pytest.fixture
def admin(pg: PostgresServer) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        yield conn


def count(admin: psycopg.Connection[Any], table: str) -> int:
    row = admin.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def test_lost_ack_raises_outcome_unknown_and_never_writes_twice(
    pg: PostgresServer, proxy: Proxy, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("acklost")
    table = f"a_{svc.replace('-', '_')}"
    admin.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY)")
    rec = Recorder()
    client = LeaseClient(
        pg.dsn(host=proxy.host, port=proxy.port),
        config(svc, lease_ttl=60.0),
        rec.hooks("on_query_retry", "on_query_error"),
    )
    errors: list[BaseException] = []
    try:
        client.connect()
        proxy.add_toxic("timeout", stream="downstream", timeout=0)

        def write() -> None:
            try:
                client.execute(f"INSERT INTO {table} DEFAULT VALUES")
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=write)
        t.start()
        wait_for(lambda: count(admin, table) == 1, "the server to commit the INSERT")
        proxy.remove_toxic("timeout_downstream")  # closes the connection
        t.join(30)
        (err,) = errors
        assert isinstance(err, OutcomeUnknown)
        assert isinstance(err.__cause__, psycopg.OperationalError)
        assert err.sqlstate is None
        assert rec.of("on_query_retry") == [], "a write whose outcome is unknown is not re-run"
        (qerr,) = rec.of("on_query_error")
        assert qerr["sqlstate"] is None and qerr["lost"]
        assert count(admin, table) == 1  # 0 or 1, never 2: here the server did commit
        assert client.execute("SELECT 1") == [(1,)]  # and the client carries on
    finally:
        if "timeout_downstream" in proxy.toxics():
            proxy.remove_toxic("timeout_downstream")
        client.close()


def test_lost_ack_through_execute_once_writes_once_and_returns_the_original_result(
    pg: PostgresServer, proxy: Proxy, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("ackonce")
    table = f"b_{svc.replace('-', '_')}"
    dedup = f"dedup_{table}"
    admin.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, note text)")
    rec = Recorder()
    client = LeaseClient(
        pg.dsn(host=proxy.host, port=proxy.port),
        config(svc, lease_ttl=60.0, dedup_table=dedup),
        rec.hooks("on_query_retry", "on_query_start"),
    )
    results: list[object] = []
    cut = threading.Event()

    def cut_before_commit(payload: dict[str, Any]) -> None:
        # The deterministic point: the transaction's COMMIT is about to be sent.
        if payload["kind"] == "COMMIT" and not cut.is_set():
            proxy.add_toxic("timeout", stream="downstream", timeout=0)
            cut.set()

    try:
        client.ensure_schema()
        rec.on["on_query_start"] = cut_before_commit

        def write() -> None:
            try:
                results.append(
                    client.execute_once(
                        "op-1", f"INSERT INTO {table} (note) VALUES ('x') RETURNING id, note"
                    )
                )
            except BaseException as exc:
                results.append(exc)

        t = threading.Thread(target=write)
        t.start()
        wait_for(lambda: count(admin, dedup) == 1, "the write and its key to commit")
        assert cut.is_set()
        proxy.remove_toxic("timeout_downstream")
        t.join(30)
        rows = admin.execute(f"SELECT id, note FROM {table}").fetchall()
        assert len(rows) == 1
        assert results == [rows], "the retry returns the original result"
        assert [e["op"] for e in rec.of("on_query_retry")] == ["execute_once"]
    finally:
        if "timeout_downstream" in proxy.toxics():
            proxy.remove_toxic("timeout_downstream")  # unblock the writer before closing
        client.close()


def test_execute_once_that_gives_up_after_a_lost_commit_says_unknown_not_failed(
    pg: PostgresServer, proxy: Proxy, admin: psycopg.Connection[Any]
) -> None:
    """The COMMIT's answer is lost, then the link stays down until the retries run out:
    the write did happen, so the client must not report "nothing applied"."""
    svc = service_name("ackgive")
    table = f"c_{svc.replace('-', '_')}"
    dedup = f"dedup_{table}"
    admin.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, note text)")
    rec = Recorder()
    client = LeaseClient(
        pg.dsn(host=proxy.host, port=proxy.port),
        config(svc, lease_ttl=60.0, dedup_table=dedup, retry_budget=1.0),
        rec.hooks("on_query_start"),
    )
    results: list[object] = []
    cut = threading.Event()

    def cut_before_commit(payload: dict[str, Any]) -> None:
        if payload["kind"] == "COMMIT" and not cut.is_set():
            proxy.add_toxic("timeout", stream="downstream", timeout=0)
            cut.set()

    try:
        client.ensure_schema()
        rec.on["on_query_start"] = cut_before_commit

        def write() -> None:
            try:
                results.append(
                    client.execute_once(
                        "op-1", f"INSERT INTO {table} (note) VALUES ('x') RETURNING id, note"
                    )
                )
            except BaseException as exc:
                results.append(exc)

        t = threading.Thread(target=write)
        t.start()
        wait_for(lambda: count(admin, dedup) == 1, "the write and its key to commit")
        proxy.disable()  # cuts the connection and refuses every retry until enabled
        t.join(30)
        (err,) = results
        assert isinstance(err, OutcomeUnknown), repr(err)
        assert count(admin, table) == 1
        proxy.enable()
        proxy.remove_toxic("timeout_downstream")
        again = client.execute_once(
            "op-1", f"INSERT INTO {table} (note) VALUES ('x') RETURNING id, note"
        )
        assert again == admin.execute(f"SELECT id, note FROM {table}").fetchall()
        assert count(admin, table) == 1
    finally:
        proxy.enable()
        if "timeout_downstream" in proxy.toxics():
            proxy.remove_toxic("timeout_downstream")
        client.close()
