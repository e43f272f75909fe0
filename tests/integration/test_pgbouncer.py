"""A real PgBouncer (Debian's 1.18) in transaction mode, as the pgbouncer drivers use it.

Measured here, on the server: in transaction pooling two clients share one server
backend, so a *session* advisory lock taken by one is "held" by the other too and
outlives its client, while a transaction-scoped lock (the lease reaper's
``pg_try_advisory_xact_lock``) ends with its transaction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from harness.infra.owned import owned
from harness.infra.pgbouncer import PgBouncer, find_pgbouncer
from harness.infra.postgres import PostgresServer

pytestmark = pytest.mark.skipif(
    find_pgbouncer() is None, reason="pgbouncer not installed (scripts/ensure-pgbouncer.sh)"
)


@pytest.fixture
def bouncer(pg: PostgresServer) -> Iterator[PgBouncer]:
    password = str(conninfo_to_dict(pg.app_dsn).get("password") or "")
    with PgBouncer(
        upstream=(pg.host, pg.port),
        dbname=pg.app_db,
        user=pg.app_role,
        password=password,
        pool_size=1,
    ) as b:
        yield b


def _connect(b: PgBouncer) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(b.dsn(), autocommit=True, prepare_threshold=None)


def test_clients_share_one_server_backend_and_the_client_pid_is_made_up(
    bouncer: PgBouncer,
) -> None:
    with _connect(bouncer) as a, _connect(bouncer) as b:
        pa = a.execute("SELECT pg_backend_pid()").fetchone()
        pb = b.execute("SELECT pg_backend_pid()").fetchone()
        assert pa is not None
        assert pa == pb  # pool of one: the same server backend
        assert a.info.backend_pid != pa[0]  # PgBouncer's own key, not a server pid


def test_a_session_lock_leaks_across_clients_an_xact_lock_does_not(
    bouncer: PgBouncer, pg: PostgresServer
) -> None:
    a, b = _connect(bouncer), _connect(bouncer)
    try:
        assert a.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)
        # another client gets it too: it is handed the same server session
        assert b.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)
        a.close()
        with psycopg.connect(pg.admin_dsn, autocommit=True) as adm:
            held = adm.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
            ).fetchone()
            assert held == (1,)  # still held after its client went away
            with b.transaction():
                got = b.execute("SELECT pg_try_advisory_xact_lock(4243)").fetchone()
                assert got == (True,)
            after = adm.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243"
            ).fetchone()
            assert after == (0,)  # ended with its transaction
        b.execute("SELECT pg_advisory_unlock_all()")
    finally:
        a.close()
        b.close()


def test_stop_ends_the_process_and_releases_its_records(pg: PostgresServer) -> None:
    password = str(conninfo_to_dict(pg.app_dsn).get("password") or "")
    b = PgBouncer(
        upstream=(pg.host, pg.port),
        dbname=pg.app_db,
        user=pg.app_role,
        password=password,
        pool_size=1,
    )
    pid, root = b.pid, b.root
    assert pid is not None
    assert root is not None
    assert root.exists()
    assert str(root) in owned().path.read_text()
    b.stop()
    b.stop()  # idempotent
    assert not os.path.exists(f"/proc/{pid}")
    assert not root.exists()
