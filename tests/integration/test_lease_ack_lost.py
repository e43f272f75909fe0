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
        assert qerr["sqlstate"] is None
        assert qerr["lost"]
        assert count(admin, table) == 1  # 0 or 1, never 2: here the server did commit
        assert client.execute("SELECT 1") == [(1,)]  # and the client carries on
    finally:
        if "timeout_downstream" in proxy.toxics():
            proxy.remove_toxic("timeout_downstream")
        client.close()


class CommitCut:
    """An ``execute_once`` in a thread whose COMMIT answer is lost: a downstream
    ``timeout`` toxic is added the moment the client is about to send COMMIT."""

    def __init__(
        self,
        pg: PostgresServer,
        proxy: Proxy,
        admin: psycopg.Connection[Any],
        name: str,
        **config_kw: Any,
    ) -> None:
        svc = service_name(name)
        self.table = f"t_{svc.replace('-', '_')}"
        self.dedup = f"dedup_{self.table}"
        admin.execute(f"CREATE TABLE {self.table} (id serial PRIMARY KEY, note text)")
        self.proxy, self.admin = proxy, admin
        self.rec = Recorder()
        self.client = LeaseClient(
            pg.dsn(host=proxy.host, port=proxy.port),
            config(svc, lease_ttl=60.0, dedup_table=self.dedup, **config_kw),
            self.rec.hooks("on_query_retry", "on_query_start"),
        )
        self.results: list[object] = []
        self.cut = threading.Event()
        self.thread = threading.Thread(target=self._write)

    def insert(self) -> Any:
        return self.client.execute_once(
            "op-1", f"INSERT INTO {self.table} (note) VALUES ('x') RETURNING id, note"
        )

    def _cut_before_commit(self, payload: dict[str, Any]) -> None:
        if payload["kind"] == "COMMIT" and not self.cut.is_set():
            self.proxy.add_toxic("timeout", stream="downstream", timeout=0)
            self.cut.set()

    def _write(self) -> None:
        try:
            self.results.append(self.insert())
        except BaseException as exc:
            self.results.append(exc)

    def start_and_wait_committed(self) -> None:
        self.client.ensure_schema()
        self.rec.on["on_query_start"] = self._cut_before_commit
        self.thread.start()
        wait_for(lambda: count(self.admin, self.dedup) == 1, "the write and its key to commit")
        assert self.cut.is_set()

    def rows(self) -> list[tuple[Any, ...]]:
        return self.admin.execute(f"SELECT id, note FROM {self.table}").fetchall()

    def close(self) -> None:
        self.proxy.enable()
        if "timeout_downstream" in self.proxy.toxics():
            self.proxy.remove_toxic("timeout_downstream")  # unblock the writer first
        self.client.close()


def test_lost_ack_through_execute_once_writes_once_and_returns_the_original_result(
    pg: PostgresServer, proxy: Proxy, admin: psycopg.Connection[Any]
) -> None:
    w = CommitCut(pg, proxy, admin, "ackonce")
    try:
        w.start_and_wait_committed()
        proxy.remove_toxic("timeout_downstream")
        w.thread.join(30)
        rows = w.rows()
        assert len(rows) == 1
        assert w.results == [rows], "the retry returns the original result"
        assert [e["op"] for e in w.rec.of("on_query_retry")] == ["execute_once"]
    finally:
        w.close()


def test_execute_once_that_gives_up_after_a_lost_commit_says_unknown_not_failed(
    pg: PostgresServer, proxy: Proxy, admin: psycopg.Connection[Any]
) -> None:
    """The COMMIT's answer is lost, then the link stays down until the retries run out:
    the write did happen, so the client must not report "nothing applied"."""
    w = CommitCut(pg, proxy, admin, "ackgive", retry_budget=1.0)
    try:
        w.start_and_wait_committed()
        proxy.disable()  # cuts the connection and refuses every retry until enabled
        w.thread.join(30)
        (err,) = w.results
        assert isinstance(err, OutcomeUnknown), repr(err)
        assert len(w.rows()) == 1
        proxy.enable()
        proxy.remove_toxic("timeout_downstream")
        assert w.insert() == w.rows(), "a call with the same key returns the original result"
        assert len(w.rows()) == 1
    finally:
        w.close()
