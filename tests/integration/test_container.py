"""ContainerPostgres against a real Docker engine: roles, privileges, queries,
restart, teardown; and the one clear error where no engine answers.

Which images: ``THAWPROOF_CONTAINER_IMAGES`` (comma-separated), by default the
image ``scripts/build-postgres-image.sh`` builds (``make test-containers`` builds
it and starts an engine). Networking: host (``THAWPROOF_CONTAINER_NETWORK=host``,
the default; this project's engines have no bridge) or ``bridge`` (port mapping).
Where no engine answers the tests skip and say why; ``THAWPROOF_REQUIRE_DOCKER=1``
(set by ``make test-containers``) turns that skip into a failure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.errors import SetupError
from harness.infra.container import ContainerPostgres, docker_available
from harness.observe import terminations_from_log
from harness.wait import poll

LOCAL_IMAGE = "thawproof/postgres:15-bookworm"  # what scripts/build-postgres-image.sh builds
IMAGES = [i.strip() for i in os.environ.get("THAWPROOF_CONTAINER_IMAGES", LOCAL_IMAGE).split(",")]
HOST_NETWORK = os.environ.get("THAWPROOF_CONTAINER_NETWORK", "host") == "host"
WAIT_S = 10.0


def _unusable(image: str) -> str | None:
    """Why ``image`` cannot be run here, or None."""
    reason = docker_available()
    if reason:
        return f"testcontainers backend not exercised: {reason}"
    if image == LOCAL_IMAGE:
        from docker.errors import ImageNotFound
        from testcontainers.core.docker_client import DockerClient

        client = DockerClient()
        try:
            client.client.images.get(image)
        except ImageNotFound:
            return (
                f"testcontainers backend not exercised: image {image} is not in the engine "
                "(`make test-containers` builds it; or name pullable images in "
                "THAWPROOF_CONTAINER_IMAGES)"
            )
        finally:
            client.client.close()
    return None


def _require(image: str) -> None:
    reason = _unusable(image)
    if reason is None:
        return
    if os.environ.get("THAWPROOF_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} [THAWPROOF_REQUIRE_DOCKER=1]")
    pytest.skip(reason)


@pytest.fixture(scope="module", params=IMAGES)
def image(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    _require(name)
    return name


@pytest.fixture(scope="module")
def engine(image: str) -> Iterator[Any]:
    """The docker library's client, to look at containers from outside the harness."""
    from testcontainers.core.docker_client import DockerClient

    client = DockerClient().client
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def server(image: str) -> Iterator[ContainerPostgres]:
    with ContainerPostgres(image, host_network=HOST_NETWORK, max_connections=20) as pg:
        yield pg


def _container_gone(engine: Any, container_id: str) -> bool:
    from docker.errors import NotFound

    try:
        engine.containers.get(container_id)
    except NotFound:
        return True
    return False


@pytest.mark.docker
def test_app_role_is_not_superuser_and_has_signal_and_stats(server: ContainerPostgres) -> None:
    with psycopg.connect(server.app_dsn) as conn:
        row = conn.execute(
            "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb,"
            " pg_has_role('pg_signal_backend', 'MEMBER'),"
            " pg_has_role('pg_read_all_stats', 'MEMBER'),"
            " (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database())"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row == ("thawproof_app", False, False, False, True, True, "thawproof_app")


@pytest.mark.docker
def test_query_through_psycopg(server: ContainerPostgres) -> None:
    with psycopg.connect(server.app_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t_query (id int PRIMARY KEY, v text)")
        conn.execute("TRUNCATE t_query")
        conn.execute("INSERT INTO t_query SELECT g, 'v' || g FROM generate_series(1, 100) g")
        total = conn.execute("SELECT count(*), sum(id) FROM t_query").fetchone()
        assert total == (100, 5050)
        where = conn.execute(
            "SELECT host(inet_server_addr()), current_setting('port')::int"
        ).fetchone()
    assert where is not None
    assert where[1] == (server.port if HOST_NETWORK else 5432)
    if HOST_NETWORK:
        assert where[0] == "127.0.0.1"


@pytest.mark.docker
def test_server_is_configured_like_local_cluster(server: ContainerPostgres) -> None:
    with psycopg.connect(server.admin_dsn) as conn:
        names = (
            "max_connections",
            "superuser_reserved_connections",
            "fsync",
            "log_connections",
            "log_disconnections",
        )
        got = {n: conn.execute(f"SHOW {n}").fetchone() for n in names}
        listen = conn.execute("SHOW listen_addresses").fetchone()
    assert got == {
        "max_connections": ("20",),
        "superuser_reserved_connections": ("3",),
        "fsync": ("off",),
        "log_connections": ("on",),
        "log_disconnections": ("on",),
    }
    assert listen == (("127.0.0.1",) if HOST_NETWORK else ("*",))


@pytest.mark.docker
def test_privileges_reach_other_backends_and_the_log_records_it(
    server: ContainerPostgres,
) -> None:
    """What the reaper relies on: the app role sees another role's query text
    (pg_read_all_stats) and may terminate a non-superuser's backend
    (pg_signal_backend) but not a superuser's; the server log names the victim."""
    other_dsn = server.create_role("other_app")
    with (
        psycopg.connect(server.app_dsn, autocommit=True) as app,
        psycopg.connect(other_dsn, autocommit=True, application_name="victim") as victim,
        psycopg.connect(server.admin_dsn, autocommit=True, application_name="boss") as boss,
    ):
        victim.execute("SELECT 'marker-42'")
        victim_pid = victim.info.backend_pid
        seen = app.execute(
            "SELECT query FROM pg_stat_activity WHERE pid = %s", (victim_pid,)
        ).fetchone()
        assert seen == ("SELECT 'marker-42'",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT pg_terminate_backend(%s)", (boss.info.backend_pid,))
        assert app.execute("SELECT pg_terminate_backend(%s)", (victim_pid,)).fetchone() == (True,)
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")
    poll(
        lambda: True if victim_pid in terminations_from_log(server.read_log()) else None,
        timeout=WAIT_S,
        what=f"the termination of {victim_pid} in the server log",
    )


@pytest.mark.docker
def test_host_network_has_no_port_mapping(server: ContainerPostgres, engine: Any) -> None:
    if not HOST_NETWORK:
        pytest.skip("THAWPROOF_CONTAINER_NETWORK is not 'host'")
    attrs = engine.containers.get(server.container_id).attrs
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    assert not attrs["HostConfig"].get("PortBindings")
    assert not attrs["NetworkSettings"].get("Ports")


@pytest.mark.docker
def test_restart_keeps_data_and_ends_backends(image: str) -> None:
    with ContainerPostgres(image, host_network=HOST_NETWORK, max_connections=10) as pg:
        with psycopg.connect(pg.app_dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept(x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
            started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        with psycopg.connect(pg.app_dsn, autocommit=True) as held:
            for mode in ("immediate", "fast", "smart"):
                pg.restart(mode)
                with psycopg.connect(pg.app_dsn) as conn:
                    assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
                    now = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
                assert now != started, f"{mode}: the postmaster was not restarted"
                started = now
            with pytest.raises(psycopg.OperationalError):
                held.execute("SELECT 1")


@pytest.mark.docker
def test_stop_removes_the_container(image: str, engine: Any) -> None:
    with ContainerPostgres(image, host_network=HOST_NETWORK, max_connections=10) as pg:
        container_id = pg.container_id
        assert container_id is not None
        assert engine.containers.get(container_id).status == "running"
        dsn = pg.app_dsn
    assert pg.container_id is None
    assert _container_gone(engine, container_id)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2).close()
    pg.stop()  # idempotent


@pytest.mark.docker
def test_stop_on_the_exception_path(image: str, engine: Any) -> None:
    pg = ContainerPostgres(image, host_network=HOST_NETWORK, max_connections=10)
    container_id = pg.container_id
    assert container_id is not None
    with pytest.raises(RuntimeError, match="boom"), pg:
        raise RuntimeError("boom")
    assert _container_gone(engine, container_id)


@pytest.mark.docker
def test_a_server_that_cannot_start_is_a_setup_error_and_leaves_nothing(
    image: str, engine: Any
) -> None:
    """A setting the server rejects: it exits at once; the error carries its log
    line and the container is removed."""
    before = {c.id for c in engine.containers.list(all=True)}
    with pytest.raises(SetupError, match=r"did not start.*no_such_setting"):
        ContainerPostgres(image, host_network=HOST_NETWORK, settings={"no_such_setting": "1"})
    assert {c.id for c in engine.containers.list(all=True)} == before


def test_no_engine_is_one_setup_error_naming_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs everywhere: an engine address where nothing listens."""
    where = f"unix://{tmp_path}/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", where)
    expected = re.escape(f"ContainerPostgres unavailable: no Docker engine answers at {where}")
    with pytest.raises(SetupError, match=expected):
        ContainerPostgres(LOCAL_IMAGE)
