"""The lease client against a real PostgreSQL: leases, heartbeat, fencing, crash safety."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from harness.infra.postgres import LocalCluster, PostgresServer
from harness.lease import (
    ConnectFailed,
    ConnectionDead,
    LeaseClient,
    OutcomeUnknown,
    RetriesExhausted,
    token,
)
from tests.integration.lease_support import (
    SECRET,
    Recorder,
    backend_alive,
    config,
    service_name,
    wait_for,
    wait_gone,
    wait_idle,
)


class FakeClock:
    """The client's wall clock, moved by the test (a freeze is a jump)."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def admin(pg: PostgresServer) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        yield conn


def app_name_of(admin: psycopg.Connection[Any], pid: int) -> str | None:
    row = admin.execute(
        "SELECT application_name FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return row[0] if row else None


def test_lease_travels_in_the_startup_packet(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("startup")
    rec = Recorder()
    with LeaseClient(
        pg.app_dsn, config(svc, lease_ttl=60.0), rec.hooks("on_connect", "on_query_start")
    ) as client:
        client.connect()
        (connect,) = rec.of("on_connect")
        pid = client.backend_pid
        assert pid is not None
        assert connect["backend_pid"] == pid
        # no statement was needed to set it
        assert rec.of("on_query_start") == []
        name = app_name_of(admin, pid)
        assert name == connect["application_name"] == client.application_name
        lease = token.verify(name, svc, SECRET)
        assert lease is not None
        assert lease.expiry == pytest.approx(connect["lease_expiry"], abs=1e-3)
        assert client.lease_expiry == connect["lease_expiry"]


def test_heartbeat_renews_the_lease_seen_by_the_server(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("beat")
    clock = FakeClock()
    rec = Recorder()
    cfg = config(svc, lease_ttl=90.0, clock=clock)  # heartbeat at 30 s left, fence at 10 s
    with LeaseClient(pg.app_dsn, cfg, rec.hooks("on_heartbeat", "on_connect")) as client:
        client.execute("SELECT 1")
        pid, first = client.backend_pid, client.lease_expiry
        assert pid is not None
        assert first is not None
        clock.now += 50  # 40 s left: nothing to do
        client.execute("SELECT 1")
        assert rec.of("on_heartbeat") == []
        assert client.lease_expiry == first
        clock.now += 15  # 25 s left: renew before the statement
        client.execute("SELECT 1")
        assert client.backend_pid == pid, "renewal keeps the connection"
        (beat,) = rec.of("on_heartbeat")
        assert beat["previous_expiry"] == first
        assert client.lease_expiry == beat["lease_expiry"] == pytest.approx(clock.now + 90)
        lease = token.verify(app_name_of(admin, pid), svc, SECRET)
        assert lease is not None
        assert lease.expiry == pytest.approx(client.lease_expiry, abs=1e-3)
        assert len(rec.of("on_connect")) == 1


def test_a_connect_that_outlasted_the_lease_renews_before_its_reaper_pass(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    """Found at 100 sandboxes: a connect held up by refusals came up with a lease
    already spent, and its reaper pass (an open transaction) was killed by another
    reaper as an expired idle-in-transaction backend. The lease is renewed first."""
    svc = service_name("slowconnect")
    clock = FakeClock()
    rec = Recorder()
    seen: dict[str, Any] = {}

    payload_pid: list[int] = []

    def connect_took_long(payload: dict[str, Any]) -> None:
        payload_pid.append(payload["backend_pid"])
        clock.now += 85  # minted at connect start; 5 s of 90 left when it came up

    def at_pass(payload: dict[str, Any]) -> None:
        if "expiry" not in seen:  # the first pass: what the server shows then
            seen["expiry"] = client.lease_expiry
            seen["name"] = app_name_of(admin, payload_pid[0])

    rec.on["on_connect"] = connect_took_long
    rec.on["on_reap"] = at_pass
    cfg = config(svc, lease_ttl=90.0, clock=clock, reap_probability=1.0, cooldown=0.0)
    with LeaseClient(pg.app_dsn, cfg, rec.hooks("on_connect", "on_heartbeat", "on_reap")) as client:
        client.execute("SELECT 1")
        (beat,) = rec.of("on_heartbeat")
        assert beat["lease_expiry"] == pytest.approx(clock.now + 90)
        assert rec.of("on_reap"), "no reaper pass ran"
        assert seen["expiry"] == beat["lease_expiry"], "the pass ran before the renewal"
        lease = token.verify(seen["name"], svc, SECRET)
        assert lease is not None
        assert lease.expiry > clock.now + 80, "the server saw a spent lease during the pass"
        assert len(rec.of("on_connect")) == 1, "renewed, not reconnected"


def test_long_statement_renews_first(pg: PostgresServer) -> None:
    svc = service_name("long")
    clock = FakeClock()
    rec = Recorder()
    with LeaseClient(
        pg.app_dsn, config(svc, lease_ttl=90.0, clock=clock), rec.hooks("on_heartbeat")
    ) as client:
        client.execute("SELECT 1")
        clock.now += 20  # 70 s left, 60 s above the fence
        client.execute("SELECT 1", expected_duration=30.0)
        assert rec.of("on_heartbeat") == []
        client.execute("SELECT 1", expected_duration=65.0)
        assert len(rec.of("on_heartbeat")) == 1


def test_thawed_client_with_expired_lease_reconnects_instead_of_using_the_old_connection(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("thaw")
    clock = FakeClock()
    rec = Recorder()
    with LeaseClient(
        pg.app_dsn,
        config(svc, lease_ttl=90.0, clock=clock),
        rec.hooks("on_client_dead", "on_reconnect", "on_heartbeat", "on_query_start"),
    ) as client:
        client.execute("SELECT 1")
        old = client.backend_pid
        assert old is not None
        clock.now += 3600  # frozen for an hour
        rec.events.clear()
        assert client.execute("SELECT 2") == [(2,)]
        assert client.backend_pid != old
        (dead,) = rec.of("on_client_dead")
        assert dead["backend_pid"] == old
        assert dead["deliberate"]
        assert rec.of("on_heartbeat") == [], "must not renew an expired lease in place"
        (start,) = rec.of("on_query_start")
        assert start["backend_pid"] == client.backend_pid
        assert len(rec.of("on_reconnect")) == 1
        wait_gone(admin, old)


def test_heartbeat_in_a_rolled_back_transaction_is_forgotten(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    """set_config(..., false) inside a transaction is undone by ROLLBACK (measured):
    the client must not keep believing in the renewed lease."""
    svc = service_name("txbeat")
    clock = FakeClock()
    with LeaseClient(pg.app_dsn, config(svc, lease_ttl=90.0, clock=clock)) as client:
        client.execute("SELECT 1")
        before, pid = client.lease_expiry, client.backend_pid
        assert pid is not None

        def fn(tx: Any) -> None:
            clock.now += 65  # 25 s left, inside the transaction
            tx.execute("SELECT 1")  # so this renews inside the transaction
            assert client.lease_expiry != before
            raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            client.transaction(fn)
        assert client.lease_expiry == before
        lease = token.verify(app_name_of(admin, pid), svc, SECRET)
        assert lease is not None
        assert lease.expiry == pytest.approx(before, abs=1e-3)


def test_backend_terminated_while_idle_reconnects_and_runs_the_write_once(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("term")
    table = f"t_{svc.replace('-', '_')}"
    rec = Recorder()
    with LeaseClient(
        pg.app_dsn, config(svc, lease_ttl=60.0), rec.hooks("on_client_dead", "on_query_error")
    ) as client:
        client.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY)")
        pid = client.backend_pid
        assert pid is not None
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_gone(admin, pid)
        client.execute(f"INSERT INTO {table} DEFAULT VALUES")  # not idempotent: still safe
        assert client.backend_pid != pid
        assert client.execute(f"SELECT count(*) FROM {table}") == [(1,)]
        (dead,) = rec.of("on_client_dead")
        assert dead["backend_pid"] == pid
        assert not dead["deliberate"]
        assert rec.of("on_query_error") == []


# -- the hot path: execute() with no query hook listening ---------------------------
# (The tests above that listen to on_query_* go the general way; these must not, so
# they listen to no query hook: what the hot path inlines is checked here.)


def test_hot_path_poll_finds_a_backend_terminated_while_idle(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    """The pre-send liveness poll is on the hot path: a non-idempotent write after the
    backend was killed while idle is known not sent, so it is run once on a new
    connection (without the poll it would be sent on the dead socket: OutcomeUnknown)."""
    svc = service_name("hotterm")
    table = f"h_{svc.replace('-', '_')}"
    rec = Recorder()
    with LeaseClient(pg.app_dsn, config(svc, lease_ttl=60.0), rec.hooks("on_client_dead")) as c:
        assert not c._observe_queries
        assert c._fast_execute
        c.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY)")
        for _ in range(3):
            pid = c.backend_pid
            assert pid is not None
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            wait_gone(admin, pid)
            c.execute(f"INSERT INTO {table} DEFAULT VALUES")
            assert c.backend_pid != pid
        assert c.execute(f"SELECT count(*) FROM {table}") == [(3,)]
        dead = rec.of("on_client_dead")
        assert len(dead) == 3
        assert not any(d["deliberate"] for d in dead)


def test_hot_path_fences_a_thawed_connection(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("hotthaw")
    clock = FakeClock()
    rec = Recorder()
    cfg = config(svc, lease_ttl=90.0, clock=clock)
    with LeaseClient(pg.app_dsn, cfg, rec.hooks("on_client_dead", "on_heartbeat")) as client:
        client.execute("SELECT 1")
        client.execute("SELECT 1")  # the second one goes the hot way
        old = client.backend_pid
        assert old is not None
        clock.now += 3600
        assert client.execute("SELECT 2") == [(2,)]
        assert client.backend_pid != old
        (dead,) = rec.of("on_client_dead")
        assert dead["backend_pid"] == old
        assert dead["deliberate"]
        assert rec.of("on_heartbeat") == []
        wait_gone(admin, old)
        clock.now += 61  # 29 s left: renewed before the statement, same connection
        pid = client.backend_pid
        client.execute("SELECT 3")
        assert client.backend_pid == pid
        assert len(rec.of("on_heartbeat")) == 1


def test_reused_cursor_keeps_every_result_apart(pg: PostgresServer) -> None:
    """One cursor serves every statement of a connection: each call still returns its
    own rows, a statement without rows returns [], an error leaves it usable, and a
    large result is not kept alive by it."""
    svc = service_name("cursor")
    with LeaseClient(pg.app_dsn, config(svc, lease_ttl=60.0)) as client:
        first = client.execute("SELECT 1")
        assert first == [(1,)]
        cache = client._cache
        assert cache is not None
        cur = cache.cursor
        second = client.execute("SELECT 2")
        assert (first, second) == ([(1,)], [(2,)])
        assert first is not second
        assert cache.cursor is cur, "small results reuse the cursor"
        assert client.execute("SET work_mem = '4MB'") == []
        assert client.execute("SELECT %s::int + 1", (41,)) == [(42,)]
        with pytest.raises(psycopg.errors.DivisionByZero):
            client.execute("SELECT 1 / 0")
        assert client.execute("SELECT 3") == [(3,)]
        pid = client.backend_pid
        big = client.execute("SELECT g FROM generate_series(1, 1000) g")
        assert [r[0] for r in big] == list(range(1, 1001))
        assert cache.cursor is not cur, "the cursor that held 1000 rows was let go"
        assert client.execute("SELECT 4") == [(4,)]
        assert client.backend_pid == pid
        assert client.execute("DO $$ BEGIN END $$") == []


def test_hooks_that_raise_change_nothing(
    pg: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    svc = service_name("hooks")
    calls: list[str] = []

    def boom(payload: dict[str, Any]) -> None:
        calls.append(payload["hook"])
        raise ValueError("hook failure")

    names = [
        "on_connect",
        "on_reconnect",
        "on_query_retry",
        "on_heartbeat",
        "on_heartbeat_fail",
        "on_reap",
        "on_client_dead",
        "on_query_start",
        "on_query_end",
        "on_query_error",
    ]
    with LeaseClient(
        pg.app_dsn, config(svc, reap_probability=1.0), dict.fromkeys(names, boom)
    ) as client:
        assert client.execute("SELECT 1") == [(1,)]
        with pytest.raises(psycopg.errors.UndefinedTable):
            client.execute("SELECT * FROM no_such_table_here")
        assert client.execute("SELECT 2") == [(2,)]
        assert client.reap_now() == []
    assert {"on_connect", "on_reap", "on_query_start", "on_query_end", "on_query_error"} <= set(
        calls
    )
    assert any("hook" in r.getMessage() for r in caplog.records)


def test_unknown_hook_name_is_refused(pg: PostgresServer) -> None:
    with pytest.raises(ValueError, match="unknown hook 'on_conect'"):
        LeaseClient(pg.app_dsn, config(service_name()), {"on_conect": print})


def test_connect_failures_are_classified(pg: PostgresServer) -> None:
    bad_password = pg.dsn(password="certainly-wrong")
    with (
        LeaseClient(bad_password, config(service_name())) as client,
        pytest.raises(ConnectFailed) as info,
    ):
        client.execute("SELECT 1")
    assert "certainly-wrong" not in str(info.value)
    refused = pg.dsn(port=1)
    rec = Recorder()
    with (
        LeaseClient(
            refused,
            config(service_name(), retries=2, backoff_base=0.01, backoff_cap=0.02),
            rec.hooks("on_query_retry"),
        ) as client,
        pytest.raises(RetriesExhausted) as exhausted,
    ):
        client.execute("SELECT 1")
    assert exhausted.value.attempts == 3
    assert [e["op"] for e in rec.of("on_query_retry")] == ["connect", "connect"]


def test_transaction_and_serialization_retry(pg: PostgresServer) -> None:
    svc = service_name("serial")
    table = f"s_{svc.replace('-', '_')}"
    with (
        LeaseClient(pg.app_dsn, config(svc)) as client,
        psycopg.connect(pg.app_dsn, autocommit=True) as other,
    ):
        client.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, n int)")
        client.execute(f"INSERT INTO {table} VALUES (1, 0)")
        runs: list[int] = []

        def fn(tx: Any) -> int:
            runs.append(1)
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            (n,) = tx.execute(f"SELECT n FROM {table} WHERE id = 1")[0]
            if len(runs) == 1:  # a concurrent writer commits in between
                other.execute(f"UPDATE {table} SET n = n + 10 WHERE id = 1")
            tx.execute(f"UPDATE {table} SET n = %s WHERE id = 1", (n + 1,))
            return int(n)

        with pytest.raises(psycopg.errors.SerializationFailure):
            client.transaction(fn)
        runs.clear()
        other.execute(f"UPDATE {table} SET n = 0 WHERE id = 1")
        assert client.transaction(fn, retryable=True) == 10
        assert len(runs) == 2
        assert client.execute(f"SELECT n FROM {table}") == [(11,)]


def test_execute_once_returns_the_original_result(pg: PostgresServer) -> None:
    svc = service_name("once")
    table = f"o_{svc.replace('-', '_')}"
    with LeaseClient(pg.app_dsn, config(svc, dedup_table=f"dedup_{table}")) as client:
        client.ensure_schema()
        client.ensure_schema()  # idempotent
        client.execute(
            f"CREATE TABLE {table} (id serial PRIMARY KEY, at timestamptz, amount numeric)"
        )
        q = f"INSERT INTO {table} (at, amount) VALUES (now(), 1.25) RETURNING id, at, amount"
        first = client.execute_once("k-1", q)
        again = client.execute_once("k-1", q)
        assert again == first
        assert client.execute(f"SELECT count(*) FROM {table}") == [(1,)]
        assert client.execute_once("k-2", q) != first


# -- a cluster of our own: restarts and connection limits ---------------------------


@pytest.fixture(scope="module")
def own_pg() -> Iterator[LocalCluster]:
    with LocalCluster(max_connections=6) as cluster:
        yield cluster


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_server_restarted_while_idle_next_query_succeeds(own_pg: LocalCluster, mode: str) -> None:
    svc = service_name("restart")
    rec = Recorder()
    with LeaseClient(
        own_pg.app_dsn, config(svc, lease_ttl=60.0), rec.hooks("on_client_dead", "on_reconnect")
    ) as client:
        client.execute("CREATE TABLE IF NOT EXISTS restarted (id serial PRIMARY KEY)")
        client.execute("TRUNCATE restarted")
        old = client.backend_pid
        own_pg.restart(mode=mode)  # type: ignore[arg-type]
        client.execute("INSERT INTO restarted DEFAULT VALUES")
        assert client.backend_pid != old
        assert client.execute("SELECT count(*) FROM restarted") == [(1,)]
        assert len(rec.of("on_client_dead")) == 1
        assert len(rec.of("on_reconnect")) == 1


def test_too_many_clients_at_connect_is_retried(own_pg: LocalCluster) -> None:
    """53300 at connect: retried with backoff until a slot frees up."""
    svc = service_name("full")
    with psycopg.connect(own_pg.admin_dsn, autocommit=True) as admin:
        (limit,) = admin.execute(
            "SELECT current_setting('max_connections')::int "
            "- current_setting('superuser_reserved_connections')::int"
        ).fetchone() or (0,)
        (used,) = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND usename <> current_user"
        ).fetchone() or (0,)
    hogs = [psycopg.connect(own_pg.app_dsn) for _ in range(limit - used)]
    retried = threading.Event()
    rec = Recorder()
    rec.on["on_query_retry"] = lambda p: retried.set() if p.get("sqlstate") == "53300" else None
    result: list[object] = []
    client = LeaseClient(
        own_pg.app_dsn,
        config(svc, retries=50, backoff_base=0.02, backoff_cap=0.05),
        rec.hooks("on_query_retry"),
    )
    t = threading.Thread(target=lambda: result.append(client.execute("SELECT 1")))
    try:
        t.start()
        assert retried.wait(10), "the client should have met 53300 and retried"
        hogs.pop().close()
        t.join(10)
        assert result == [[(1,)]]
    finally:
        client.close()
        for h in hogs:
            h.close()


def test_outcome_unknown_is_not_re_run(pg: PostgresServer, admin: psycopg.Connection[Any]) -> None:
    """A backend terminated while the statement runs: the INSERT may have happened."""
    svc = service_name("unknown")
    table = f"u_{svc.replace('-', '_')}"
    with LeaseClient(pg.app_dsn, config(svc, lease_ttl=60.0)) as client:
        client.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY)")
        pid = client.backend_pid
        assert pid is not None
        errors: list[BaseException] = []

        def write() -> None:
            try:
                client.execute(f"INSERT INTO {table} SELECT FROM pg_sleep(30)")
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=write)
        t.start()
        wait_idle(admin, pid, state="active")
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        t.join(30)
        (err,) = errors
        assert isinstance(err, OutcomeUnknown)
        assert err.sqlstate == "57P01"
        assert client.execute(f"SELECT count(*) FROM {table}") == [(0,)]
        # and an idempotent statement is re-run instead
        pid2 = client.backend_pid
        assert pid2 is not None
        assert backend_alive(admin, pid2)
        results: list[object] = []
        t = threading.Thread(
            target=lambda: results.append(
                client.execute("SELECT 42 FROM pg_sleep(0.5)", idempotent=True)
            )
        )
        t.start()
        wait_idle(admin, pid2, state="active")
        admin.execute("SELECT pg_terminate_backend(%s)", (pid2,))
        t.join(30)
        assert results == [[(42,)]]
        wait_for(lambda: client.backend_pid not in (None, pid2), "a new backend")


@pytest.mark.parametrize("retryable", [False, True])
def test_connection_lost_before_commit_is_definite(
    pg: PostgresServer, admin: psycopg.Connection[Any], retryable: bool
) -> None:
    """Nothing commits without COMMIT: a transaction whose backend died before COMMIT
    was sent definitely did not apply; it is re-run only if marked retryable."""
    svc = service_name("precommit")
    table = f"p_{svc.replace('-', '_')}"
    runs: list[int] = []
    with LeaseClient(pg.app_dsn, config(svc, lease_ttl=60.0)) as client:
        client.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY)")

        def fn(tx: Any) -> None:
            runs.append(1)
            tx.execute(f"INSERT INTO {table} DEFAULT VALUES")
            if len(runs) == 1:  # killed from outside while idle in transaction
                admin.execute("SELECT pg_terminate_backend(%s)", (tx.backend_pid,))
                wait_gone(admin, tx.backend_pid)
            tx.execute("SELECT 1")

        if retryable:
            client.transaction(fn, retryable=True)
            assert len(runs) == 2
            assert client.execute(f"SELECT count(*) FROM {table}") == [(1,)]
        else:
            with pytest.raises(ConnectionDead) as info:
                client.transaction(fn)
            assert info.value.sqlstate in (None, "57P01")
            assert len(runs) == 1
            assert client.execute(f"SELECT count(*) FROM {table}") == [(0,)]
