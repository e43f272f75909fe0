"""PostgreSQL in a container through testcontainers, for users with a Docker engine.

Never the default (``LocalCluster`` is): use it when you want a particular
server image (``postgres:16``, a managed-service lookalike, ...). It needs the
``containers`` extra (``pip install thawproof[containers]``) and a Docker engine
that answers; ``docker_available()`` says whether one does.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from harness.errors import SetupError
from harness.infra.postgres import (
    APP_DB,
    APP_ROLE,
    PostgresServer,
    RestartMode,
    create_app_role,
)


def _engine_address(env: dict[str, str]) -> tuple[int, Any]:
    host = env.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        return socket.AF_UNIX, host[len("unix://") :]
    if host.startswith("tcp://"):
        name, _, port = host[len("tcp://") :].rstrip("/").rpartition(":")
        return socket.AF_INET, (name, int(port))
    raise ValueError(f"unsupported DOCKER_HOST {host!r}")


def docker_available() -> str | None:
    """None when a Docker engine answers ``/_ping``, else the reason it cannot be used.

    Asked with a raw socket: the docker library leaks its socket when no
    engine answers, which the test suite (warnings as errors) rightly refuses.
    """
    try:
        import testcontainers  # noqa: F401
    except ImportError:
        return "the testcontainers package is not installed (extra 'containers')"
    try:
        family, address = _engine_address(dict(os.environ))
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(address)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = s.recv(4096)
    except (OSError, ValueError) as e:
        where = os.environ.get("DOCKER_HOST", "/var/run/docker.sock")
        return f"no Docker engine answers at {where} ({e})"
    if not answer.startswith(b"HTTP/1.") or b" 200 " not in answer.split(b"\r\n", 1)[0]:
        return f"the Docker engine answered /_ping with {answer[:40]!r}"
    return None


class ContainerPostgres(PostgresServer):
    """A PostgreSQL container with the same app role and privileges as ``LocalCluster``."""

    supports_restart = True

    def __init__(self, image: str = "postgres:15", *, max_connections: int = 50) -> None:
        super().__init__()
        reason = docker_available()
        if reason:
            raise SetupError(f"ContainerPostgres unavailable: {reason}")
        from testcontainers.postgres import PostgresContainer

        self._container: Any = PostgresContainer(
            image, username="thawproof_admin", password="thawproof_admin", dbname="postgres"
        ).with_command(
            f"postgres -c max_connections={max_connections} "
            "-c log_connections=on -c log_disconnections=on -c fsync=off"
        )
        self._container.start()
        self.host = self._container.get_container_host_ip()
        self.port = int(self._container.get_exposed_port(5432))
        self.app_role = APP_ROLE
        self.app_db = APP_DB
        self._passwords["thawproof_admin"] = "thawproof_admin"
        self._passwords[APP_ROLE] = "thawproof_app_pw"
        create_app_role(self.admin_dsn, "thawproof_app_pw")

    @property
    def admin_dsn(self) -> str:
        return self.dsn(role="thawproof_admin", dbname="postgres")

    def restart(self, mode: RestartMode = "immediate") -> None:
        # The container's main process is the postmaster: restarting the container
        # is the closest to pg_ctl restart; "immediate" kills it first.
        wrapped = self._container.get_wrapped_container()
        if mode == "immediate":
            wrapped.kill(signal="SIGKILL")
            wrapped.start()
        else:
            wrapped.restart()
        self.port = int(self._container.get_exposed_port(5432))

    def stop(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            container.stop()

    def read_log(self) -> str:
        if self._container is None:
            return ""
        out, err = self._container.get_logs()
        return str((out + err).decode(errors="replace"))
