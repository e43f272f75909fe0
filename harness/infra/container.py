"""PostgreSQL in a container through testcontainers, for users with a Docker engine.

Never the default (``LocalCluster`` is): use it for a particular server image.
It needs the ``containers`` extra (testcontainers >= 4.15, whose modules live
under ``testcontainers.community``) and a Docker engine that answers;
``docker_available()`` says whether one does. The server gets what
``LocalCluster`` gives: the harness's settings (``SERVER_SETTINGS``, so
``harness.observe`` can read its log), an admin superuser, and the application
role (not a superuser; ``pg_signal_backend`` and ``pg_read_all_stats``) with its
own database.

Images (``kind``):

- ``"official"``: the official ``postgres:*`` images' conventions (and images
  built on them): a ``docker-entrypoint.sh`` entrypoint that reads
  ``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB``, initialises
  ``PGDATA`` on first start and runs the command (``postgres ...``) as the
  ``postgres`` account. Started through testcontainers' ``PostgresContainer``.
- ``"binaries"``: an image that only has PostgreSQL server binaries and an
  account to run them (``run_as``, ``postgres`` by default), such as the one
  ``scripts/build-postgres-image.sh`` builds from Debian packages. The harness
  replaces the entrypoint: inside the container, as that account, it runs
  ``initdb`` (first start only) and then ``postgres``. Binaries are found at
  ``$PG_BIN`` in the image, else the newest ``/usr/lib/postgresql/*/bin``, else
  ``initdb`` on the image's ``PATH``. Needs ``sh`` in the image.
- ``"auto"`` (default): ``"official"`` when the image's entrypoint is a
  ``docker-entrypoint.sh``, else ``"binaries"``.

Networking:

- default: testcontainers' usual port mapping (the server listens on 5432 in
  the container's network; the harness uses the mapped port on the engine's
  host).
- ``host_network=True``: the container shares the host's network, so no
  mapping exists: the harness picks a free 127.0.0.1 port and the server
  listens there only. Use it where the engine has no bridge network (this
  project's machines run ``dockerd --bridge=none``).

testcontainers' reaper container (Ryuk) is not needed: ``stop()`` removes the
container, on every exit path (context manager, ``atexit``). Where its image
cannot be pulled, set ``TESTCONTAINERS_RYUK_DISABLED=true``.
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from harness.errors import SetupError, UsageError, WaitTimeout
from harness.infra.ports import free_port
from harness.infra.postgres import (
    ADMIN_ROLE,
    APP_DB,
    APP_ROLE,
    SERVER_SETTINGS,
    PostgresServer,
    RestartMode,
    create_app_role,
)
from harness.wait import poll

if TYPE_CHECKING:
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.container import DockerContainer

ImageKind = Literal["auto", "official", "binaries"]

_CONTAINER_PORT = 5432
_START_TIMEOUT_S = 60.0
_BIND_ATTEMPTS = 5
_POLL_S = 0.05
# The signal pg_ctl sends the postmaster for each shutdown mode.
_STOP_SIGNALS: Mapping[RestartMode, str] = {
    "immediate": "SIGQUIT",
    "fast": "SIGINT",
    "smart": "SIGTERM",
}
_BINARIES_PGDATA = "/tmp/thawproof-pgdata"

# Run by `sh -c` as the container's entrypoint for kind "binaries"; the server's
# arguments follow. initdb runs on the first start only, so a restarted
# container keeps its data.
_BINARIES_ENTRYPOINT = f"""set -eu
bin="${{PG_BIN:-}}"
if [ -z "$bin" ]; then
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5n); do
    if [ -x "$d/initdb" ]; then bin=$d; fi
  done
fi
if [ -z "$bin" ] && found=$(command -v initdb); then bin=${{found%/*}}; fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/postgres" ]; then
  echo "thawproof: no PostgreSQL server binaries (initdb, postgres) in this image; set PG_BIN" >&2
  exit 127
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  pwfile=$(mktemp)
  printf '%s\\n' "$THAWPROOF_ADMIN_PASSWORD" >"$pwfile"
  "$bin/initdb" -D "$PGDATA" -U {ADMIN_ROLE} --pwfile="$pwfile" --auth-local=trust \\
    --auth-host=scram-sha-256 -E UTF8 --no-instructions --no-sync
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
fi
exec "$bin/postgres" -D "$PGDATA" "$@"
"""


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
        import testcontainers.community.postgres  # noqa: F401
    except ImportError:
        return "testcontainers >= 4.15 is not installed (extra 'containers')"
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


def server_arguments(settings: Mapping[str, str | int]) -> list[str]:
    """``-c name=value`` arguments for ``postgres`` from postgresql.conf-style
    settings: a value quoted for the config file is passed unquoted, since the
    command line takes values literally."""
    args: list[str] = []
    for name, value in settings.items():
        text = str(value)
        if len(text) >= 2 and text[0] == text[-1] == "'":
            text = text[1:-1].replace("''", "'")
        args += ["-c", f"{name}={text}"]
    return args


def image_kind(entrypoint: list[str] | str | None) -> Literal["official", "binaries"]:
    """``"official"`` when an image's entrypoint follows the official postgres
    image (``docker-entrypoint.sh``), else ``"binaries"``."""
    parts = [entrypoint] if isinstance(entrypoint, str) else list(entrypoint or [])
    official = any(os.path.basename(p) == "docker-entrypoint.sh" for p in parts)
    return "official" if official else "binaries"


def _official_container_class() -> type[PostgresContainer]:
    """testcontainers' ``PostgresContainer`` without its own readiness wait.

    Its wait (``psql`` run in the container, polled) does not notice the
    container exiting and waits out its whole timeout (120 s) when the server
    refuses its settings; ``ContainerPostgres._await_ready`` judges readiness
    instead, by the admin role connecting over TCP, which the entrypoint's
    temporary init-time server (no TCP listener) cannot fake.
    """
    from testcontainers.community.postgres import PostgresContainer as Base

    class _OfficialPostgresContainer(Base):
        def _connect(self) -> None:
            return None

    return _OfficialPostgresContainer


class ContainerPostgres(PostgresServer):
    """A PostgreSQL server in a container, owned by this object: the same
    settings, admin role and app role as ``LocalCluster``; removed by ``stop()``."""

    supports_restart = True

    def __init__(
        self,
        image: str = "postgres:15",
        *,
        kind: ImageKind = "auto",
        host_network: bool = False,
        max_connections: int = 50,
        settings: Mapping[str, str | int] | None = None,
        run_as: str = "postgres",
        start_timeout: float = _START_TIMEOUT_S,
    ) -> None:
        super().__init__()
        if max_connections < 5:
            raise UsageError(f"max_connections must be at least 5, got {max_connections}")
        if kind not in ("auto", "official", "binaries"):
            raise UsageError(f"kind must be auto, official or binaries, got {kind!r}")
        reason = docker_available()
        if reason:
            raise SetupError(f"ContainerPostgres unavailable: {reason}")
        self.image = image
        self.host_network = host_network
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.run_as = run_as
        self.start_timeout = start_timeout
        self.app_role = APP_ROLE
        self.app_db = APP_DB
        self.host = "127.0.0.1"
        self.port = 0
        self.ready_seconds: float | None = None
        self._container: DockerContainer | None = None
        self._admin_password = secrets.token_urlsafe(16)
        self._passwords[ADMIN_ROLE] = self._admin_password
        self._app_password = secrets.token_urlsafe(16)
        self._passwords[APP_ROLE] = self._app_password
        atexit.register(self.stop)
        try:
            self.kind = self._resolve_kind(kind)
            self._start()
            create_app_role(self.admin_dsn, self._app_password)
        except BaseException:
            self.stop()
            raise

    @property
    def admin_dsn(self) -> str:
        return self.dsn(role=ADMIN_ROLE, dbname="postgres")

    @property
    def container_id(self) -> str | None:
        """The engine's id of the container while this object owns one."""
        from testcontainers.core.exceptions import ContainerStartException

        if self._container is None:
            return None
        try:
            return self._container.get_container_id()
        except ContainerStartException:
            return None

    # -- starting ---------------------------------------------------------------
    def _resolve_kind(self, kind: ImageKind) -> Literal["official", "binaries"]:
        """The image's kind; pulls the image when the engine does not have it."""
        if kind != "auto":
            return kind
        from docker.errors import DockerException, ImageNotFound
        from testcontainers.core.docker_client import DockerClient

        client = DockerClient()
        try:
            try:
                found = client.client.images.get(self.image)
            except ImageNotFound:
                found = client.client.images.pull(self.image)
        except DockerException as e:
            raise SetupError(
                f"image {self.image} is not in the engine and could not be pulled: {e}"
            ) from e
        finally:
            client.client.close()
        return image_kind(found.attrs.get("Config", {}).get("Entrypoint"))

    def _settings(self, port: int) -> dict[str, str | int]:
        conf: dict[str, str | int] = {
            "port": port,
            "max_connections": self.max_connections,
            "log_timezone": "UTC",
            **SERVER_SETTINGS,
        }
        if self.host_network:
            # The host's network: listen where LocalCluster does, nowhere else.
            conf["listen_addresses"] = "127.0.0.1"
        else:
            conf["listen_addresses"] = "*"
        conf.update(self.settings)
        return conf

    def _make_container(self, port: int) -> DockerContainer:
        args = server_arguments(self._settings(port))
        docker_kwargs: dict[str, Any] = {}
        if self.host_network:
            docker_kwargs["network_mode"] = "host"
        env = {"PGPORT": str(port)}
        container: DockerContainer
        if self.kind == "official":
            # The official entrypoint's way to give initdb arguments; UTF8 as LocalCluster.
            env["POSTGRES_INITDB_ARGS"] = "-E UTF8"
            container = _official_container_class()(
                self.image,
                port=port,
                username=ADMIN_ROLE,
                password=self._admin_password,
                dbname="postgres",
                driver=None,
                **docker_kwargs,
            ).with_command(["postgres", *args])
        else:
            from testcontainers.core.container import DockerContainer

            container = (
                DockerContainer(
                    self.image,
                    entrypoint=["sh", "-c", _BINARIES_ENTRYPOINT, "thawproof-postgres"],
                    user=self.run_as,
                    **docker_kwargs,
                )
                .with_command(args)
                .with_env("PGDATA", _BINARIES_PGDATA)
                .with_env("LC_ALL", "C")
                .with_env("THAWPROOF_ADMIN_PASSWORD", self._admin_password)
                .with_exposed_ports(port)
            )
        for key, value in env.items():
            container.with_env(key, value)
        if self.host_network:
            container.ports.clear()  # host networking: nothing to map
        return container

    def _start(self) -> None:
        from docker.errors import DockerException

        attempts = _BIND_ATTEMPTS if self.host_network else 1
        for attempt in range(attempts):
            port = free_port("127.0.0.1") if self.host_network else _CONTAINER_PORT
            container = self._container = self._make_container(port)
            began = time.monotonic()
            try:
                container.start()
            except (DockerException, TimeoutError) as e:
                raise SetupError(self._start_failure(e)) from e
            if self.host_network:
                self.host, self.port = "127.0.0.1", port
            else:
                self.host = container.get_container_host_ip()
                self.port = container.get_exposed_port(_CONTAINER_PORT)
            try:
                self._await_ready(began)
                return
            except SetupError:
                if attempt == attempts - 1 or "could not bind" not in self.read_log():
                    raise
                self._remove_container()

    def _start_failure(self, e: BaseException) -> str:
        hint = ""
        if "ryuk" in str(e).lower():
            hint = " (testcontainers' Ryuk image: set TESTCONTAINERS_RYUK_DISABLED=true)"
        tail = " / ".join(self.read_log().strip().splitlines()[-3:])
        log = f" | log: {tail}" if tail else ""
        return f"ContainerPostgres({self.image}) did not start: {e}{hint}{log}"

    def _await_ready(self, began: float) -> None:
        """Wait until the admin role connects over TCP, as the harness will; the
        container exiting first, or the timeout, is a ``SetupError`` with the log."""
        deadline = began + self.start_timeout
        last: Exception | None = None
        while True:
            try:
                with psycopg.connect(self.admin_dsn, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                self.ready_seconds = time.monotonic() - began
                return
            except psycopg.OperationalError as e:
                last = e
            status = self._status()
            if status not in ("created", "running"):
                raise SetupError(self._start_failure(RuntimeError(f"container {status}")))
            if time.monotonic() >= deadline:
                raise SetupError(
                    self._start_failure(
                        TimeoutError(f"no connection within {self.start_timeout:.0f} s: {last}")
                    )
                )
            time.sleep(_POLL_S)

    def _wrapped(self) -> Any:
        """The docker library's container object (untyped)."""
        from testcontainers.core.exceptions import ContainerStartException

        if self._container is None:
            raise SetupError("the container is not running")
        try:
            return self._container.get_wrapped_container()
        except ContainerStartException as e:  # never created
            raise SetupError("the container was not created") from e

    def _status(self) -> str:
        wrapped = self._wrapped()
        wrapped.reload()
        return str(wrapped.status)

    # -- lifecycle ----------------------------------------------------------------
    def restart(self, mode: RestartMode = "immediate") -> None:
        """Stop the postmaster the way ``pg_ctl stop -m <mode>`` does (its signal),
        wait for the container to exit, start it again: every backend ends,
        data stays (the container keeps its file system)."""
        if mode not in _STOP_SIGNALS:
            raise UsageError(f"restart mode must be immediate, fast or smart, got {mode!r}")
        wrapped = self._wrapped()
        wrapped.kill(signal=_STOP_SIGNALS[mode])
        try:
            poll(
                lambda: None if self._status() == "running" else True,
                timeout=self.start_timeout,
                what=f"the server to stop ({mode})",
                interval=_POLL_S,
                max_interval=_POLL_S,
            )
        except WaitTimeout as e:
            raise SetupError(str(e)) from None
        began = time.monotonic()
        wrapped.start()
        if not self.host_network and self._container is not None:
            self.port = self._container.get_exposed_port(_CONTAINER_PORT)
        self._await_ready(began)

    def _remove_container(self) -> None:
        container, self._container = self._container, None
        if container is None:
            return
        from docker.errors import NotFound

        try:
            container.stop()  # removes it (force, with its volumes) and closes the client
        except NotFound:
            container.get_docker_client().client.close()

    def stop(self) -> None:
        """Remove the container (and its data). Idempotent."""
        try:
            self._remove_container()
        finally:
            atexit.unregister(self.stop)

    def read_log(self) -> str:
        """The server's log (the container's output), entrypoint messages included."""
        if self._container is None:
            return ""
        from docker.errors import DockerException

        try:
            logs = self._wrapped().logs()
        except (DockerException, SetupError):
            return ""
        return bytes(logs).decode(errors="replace")

    def __repr__(self) -> str:
        return (
            f"ContainerPostgres(image={self.image!r}, kind={getattr(self, 'kind', None)!r}, "
            f"port={self.port}, container={self.container_id!r})"
        )
