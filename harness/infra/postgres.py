"""Real PostgreSQL servers for the harness: a throwaway local cluster, or one the user brings.

``PostgresServer`` is what the rest of the harness sees: DSNs for an
application role and an admin role, role creation, restart and stop.

- ``LocalCluster``: ``initdb`` into a temp dir, ``pg_ctl start`` on a free
  127.0.0.1 port, socket dir inside the temp dir, ``fsync=off`` (an OS crash
  is not a fault we inject), small
  ``max_connections``, connection logging to a file the harness reads. When the
  harness runs as root it runs the server binaries as an unprivileged account
  (Debian's ``postgres``), because PostgreSQL refuses to run as root. The
  cluster is stopped and its directory removed on every exit path: the context
  manager, an ``atexit`` backstop, and ``stop()`` being idempotent.
- ``ExternalPostgres``: a server at ``THAWPROOF_DSN`` (optionally
  ``THAWPROOF_ADMIN_DSN``); the harness never restarts it.
- ``ContainerPostgres`` lives in ``harness.infra.container`` (testcontainers).

The application role is *not* a superuser and is a member of
``pg_signal_backend`` and ``pg_read_all_stats``, as a service would be on
managed PostgreSQL (LEASE_SPEC.md, "Privileges").
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness.errors import PostgresBinariesNotFound, SetupError, UsageError
from harness.infra.owned import owned, signals_held
from harness.infra.ports import free_port

RestartMode = Literal["immediate", "fast", "smart"]

APP_ROLE = "thawproof_app"
APP_DB = "thawproof"
ADMIN_ROLE = "thawproof_admin"
_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
_UNPRIVILEGED_ACCOUNT = "postgres"
_START_TIMEOUT_S = 60


# What every server the harness starts is configured with (postgresql.conf syntax),
# besides where it listens and max_connections; ``ContainerPostgres`` uses it too.
SERVER_SETTINGS: Mapping[str, str | int] = {
    "superuser_reserved_connections": 3,
    "fsync": "off",
    # synchronous_commit stays on: with it off, `restart -m immediate`
    # loses rows the client saw committed, which would fake P3 verdicts.
    "full_page_writes": "off",
    "log_connections": "on",
    "log_disconnections": "on",
    # harness.observe reads terminations from the log by this prefix.
    "log_line_prefix": "'%m [%p] %q%u@%d app=%a '",
    "log_min_messages": "warning",
    "shared_buffers": "'32MB'",
    "max_wal_size": "'256MB'",
}


def _has_server_binaries(path: Path) -> bool:
    return all(os.access(path / b, os.X_OK) for b in _SERVER_BINARIES)


def _version_key(path: str) -> tuple[int, ...]:
    m = re.search(r"/postgresql/([\d.]+)/bin$", path)
    return tuple(int(p) for p in m.group(1).split(".")) if m else (0,)


DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def find_pg_bin(env: Mapping[str, str] | None = None, debian_glob: str = DEBIAN_BIN_GLOB) -> Path:
    """Where initdb, pg_ctl and postgres are: ``PG_BIN``, ``pg_config --bindir``,
    then Debian's versioned folders, newest first.

    Raises ``PostgresBinariesNotFound`` naming what is missing and how to get it.
    """
    env = os.environ if env is None else env
    explicit = env.get("PG_BIN")
    if explicit:
        path = Path(explicit)
        if _has_server_binaries(path):
            return path
        missing = [b for b in _SERVER_BINARIES if not os.access(path / b, os.X_OK)]
        raise PostgresBinariesNotFound(f"PG_BIN={explicit} has no {', '.join(missing)}")
    pg_config = shutil.which("pg_config", path=env.get("PATH"))
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out and _has_server_binaries(Path(out)):
                return Path(out)
    for candidate in sorted(glob.glob(debian_glob), key=_version_key, reverse=True):
        if _has_server_binaries(Path(candidate)):
            return Path(candidate)
    raise PostgresBinariesNotFound(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: "
        "install Debian's 'postgresql' package (apt-get install -y postgresql) or set PG_BIN"
    )


def create_app_role(admin_dsn: str, password: str) -> None:
    """The application role (not a superuser; ``pg_signal_backend`` and
    ``pg_read_all_stats``, as on managed PostgreSQL) and its own database."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER PASSWORD {}").format(
                sql.Identifier(APP_ROLE), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("GRANT pg_signal_backend, pg_read_all_stats TO {}").format(
                sql.Identifier(APP_ROLE)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(APP_DB), sql.Identifier(APP_ROLE)
            )
        )


class PostgresServer:
    """What the harness needs of a PostgreSQL server, whoever runs it."""

    host: str
    port: int
    app_role: str
    app_db: str
    supports_restart: bool = False

    def __init__(self) -> None:
        self._passwords: dict[str, str | None] = {}

    # -- connection strings -------------------------------------------------
    def dsn(
        self,
        role: str | None = None,
        dbname: str | None = None,
        host: str | None = None,
        port: int | None = None,
        **extra: str | int,
    ) -> str:
        """A DSN for ``role`` (the app role by default) on ``dbname`` (the app
        database by default); ``host``/``port`` override the server's, so a
        client can be pointed at a proxy in front of it."""
        role = role or self.app_role
        params: dict[str, str | int] = {
            "host": host or self.host,
            "port": port or self.port,
            "user": role,
            "dbname": dbname or self.app_db,
            "connect_timeout": 10,
        }
        password = self._passwords.get(role)
        if password:
            params["password"] = password
        params.update(extra)
        return make_conninfo(**params)  # type: ignore[arg-type]

    @property
    def app_dsn(self) -> str:
        return self.dsn()

    @property
    def admin_dsn(self) -> str:
        raise NotImplementedError

    # -- roles ----------------------------------------------------------------
    def create_role(
        self,
        name: str,
        *,
        password: str | None = None,
        superuser: bool = False,
        member_of: Iterable[str] = (),
    ) -> str:
        """Create a login role (idempotent) that may connect to the app database;
        return its DSN."""
        password = password or secrets.token_urlsafe(12)
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN {} PASSWORD {}").format(
                    sql.SQL(verb),
                    sql.Identifier(name),
                    sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER"),
                    sql.Literal(password),
                )
            )
            for group in member_of:
                conn.execute(
                    sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(name))
                )
            conn.execute(
                sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                    sql.Identifier(self.app_db), sql.Identifier(name)
                )
            )
        with psycopg.connect(self.dsn(dbname=self.app_db, role=None), autocommit=True) as conn:
            conn.execute(
                sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(sql.Identifier(name))
            )
        self._passwords[name] = password
        return self.dsn(role=name)

    # -- lifecycle ---------------------------------------------------------------
    def restart(self, mode: RestartMode = "immediate") -> None:
        raise SetupError(f"{type(self).__name__} cannot be restarted by the harness")

    def stop(self) -> None:
        """Release what the harness owns (nothing, for a server it did not start)."""

    def read_log(self) -> str:
        """The server log, where the harness can read it; empty otherwise."""
        return ""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalCluster(PostgresServer):
    """A throwaway PostgreSQL cluster on 127.0.0.1, owned by this object."""

    supports_restart = True

    def __init__(
        self,
        *,
        max_connections: int = 50,
        settings: Mapping[str, str | int] | None = None,
        bin_dir: Path | str | None = None,
        run_as: str | None = None,
        base_dir: Path | str | None = None,
    ) -> None:
        super().__init__()
        if max_connections < 5:
            raise UsageError(f"max_connections must be at least 5, got {max_connections}")
        self.bin_dir = Path(bin_dir) if bin_dir else find_pg_bin()
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.host = "127.0.0.1"
        self.port = 0
        self.app_role = APP_ROLE
        self.app_db = APP_DB
        if run_as is None and os.geteuid() == 0:
            run_as = _UNPRIVILEGED_ACCOUNT
        self.run_as = run_as
        self._base_dir = base_dir
        self.root: Path | None = None
        self._running = False
        self._dir_record: str | None = None
        self._cluster_record: str | None = None
        self._admin_password = secrets.token_urlsafe(16)
        self._passwords[ADMIN_ROLE] = self._admin_password
        self._app_password = secrets.token_urlsafe(16)
        self._passwords[APP_ROLE] = self._app_password
        self._start()

    # -- paths ------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root / "sock"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    @property
    def admin_dsn(self) -> str:
        return self.dsn(role=ADMIN_ROLE, dbname="postgres")

    # -- running the binaries -------------------------------------------------
    def _run(self, *args: str, timeout: float = _START_TIMEOUT_S) -> str:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        kwargs: dict[str, object] = {}
        if self.run_as is not None and os.geteuid() == 0:
            kwargs["user"] = self.run_as
            kwargs["group"] = pwd.getpwnam(self.run_as).pw_gid
            kwargs["extra_groups"] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        with subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(self.root),
            # the postmaster pg_ctl launches must not die of the terminal's Ctrl-C
            # before the harness has torn the run down
            start_new_session=True,
            **kwargs,  # type: ignore[call-overload]
        ) as child:
            try:
                stdout, stderr = child.communicate(timeout=timeout)
            except BaseException as e:
                # The whole group: initdb's own postgres children go on writing into
                # the directory after initdb alone is killed (measured: a SIGINT during
                # start-up left the directory behind).
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, 9)
                child.communicate()
                if isinstance(e, subprocess.TimeoutExpired):
                    raise SetupError(f"{args[0]} did not finish in {timeout:.0f} s") from e
                raise
        proc = subprocess.CompletedProcess(cmd, child.returncode, stdout, stderr)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            last = detail[-1] if detail else f"exit status {proc.returncode}"
            log_tail = ""
            if self.root is not None and self.log_path.exists():
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                log_tail = " | log: " + " / ".join(tail) if tail else ""
            raise SetupError(f"{args[0]} failed: {last}{log_tail}")
        return str(proc.stdout)

    def _chown(self, path: Path) -> None:
        if self.run_as is None or os.geteuid() != 0:
            return
        entry = pwd.getpwnam(self.run_as)
        for dirpath, dirnames, filenames in os.walk(path):
            os.chown(dirpath, entry.pw_uid, entry.pw_gid)
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)

    def _start(self) -> None:
        atexit.register(self.stop)
        records = owned()
        try:
            with signals_held():  # the directory exists only once it is recorded
                self.root = Path(tempfile.mkdtemp(prefix="thawproof-pg-", dir=self._base_dir))
                self._dir_record = records.directory(self.root, "PostgreSQL cluster")
                self._cluster_record = records.cluster(self.data_dir, "PostgreSQL cluster")
            self.root.chmod(0o755)
            self.socket_dir.mkdir()
            pwfile = self.root / "pwfile"
            pwfile.write_text(self._admin_password + "\n")
            self._chown(self.root)
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                ADMIN_ROLE,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
                "--no-sync",
            )
            pwfile.unlink()
            for attempt in range(5):
                self.port = free_port(self.host)
                self._write_config()
                try:
                    self._run(
                        "pg_ctl",
                        "start",
                        "-w",
                        "-t",
                        str(_START_TIMEOUT_S),
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.log_path),
                    )
                    break
                except SetupError:
                    if attempt == 4 or "could not bind" not in self.read_log():
                        raise
            self._running = True
            self._create_app_role()
        except BaseException:
            self.stop()
            raise

    def _write_config(self) -> None:
        conf: dict[str, str | int] = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": self.max_connections,
            **SERVER_SETTINGS,
        }
        conf.update(self.settings)
        body = "\n".join(f"{k} = {v}" for k, v in conf.items()) + "\n"
        (self.data_dir / "thawproof.conf").write_text(body)
        main_conf = self.data_dir / "postgresql.conf"
        text = main_conf.read_text()
        include = "include 'thawproof.conf'"
        if include not in text:
            main_conf.write_text(text + f"\n{include}\n")
        self._chown(self.data_dir)

    def _create_app_role(self) -> None:
        create_app_role(self.admin_dsn, self._app_password)

    # -- lifecycle ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    def postmaster_pid(self) -> int | None:
        """The postmaster's pid while it runs (from postmaster.pid)."""
        if self.root is None:
            return None
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first_line)
        except (OSError, ValueError):
            return None

    def restart(self, mode: RestartMode = "immediate") -> None:
        """``pg_ctl restart -m <mode>``: every backend ends; data stays."""
        if not self._running:
            raise SetupError("the cluster is not running")
        self._run(
            "pg_ctl",
            "restart",
            "-w",
            "-t",
            str(_START_TIMEOUT_S),
            "-m",
            mode,
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
        )

    def stop(self) -> None:
        """Stop the server (immediate) and remove its directory. Idempotent."""
        root = self.root
        if root is None:
            return
        try:
            if self._running or (self.data_dir / "postmaster.pid").exists():
                self._running = False
                try:
                    self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data_dir))
                except SetupError:
                    pid = self.postmaster_pid()
                    if pid:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, 9)
        finally:
            self.root = None
            shutil.rmtree(root, ignore_errors=True)
            atexit.unregister(self.stop)
            records = owned()
            for key in (self._cluster_record, self._dir_record):
                if key is not None:
                    records.release(key)
            self._cluster_record = self._dir_record = None

    def read_log(self) -> str:
        if self.root is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def __repr__(self) -> str:
        return f"LocalCluster(port={self.port}, root={str(self.root)!r}, running={self._running})"


class ExternalPostgres(PostgresServer):
    """A server the user runs, from ``THAWPROOF_DSN`` (app role) and optionally
    ``THAWPROOF_ADMIN_DSN`` (a role that may create roles; defaults to the same)."""

    def __init__(self, dsn: str, admin_dsn: str | None = None) -> None:
        super().__init__()
        params = conninfo_to_dict(dsn)
        self._dsn = dsn
        self._admin = admin_dsn or dsn
        self.host = str(params.get("host") or "127.0.0.1")
        self.port = int(params.get("port") or 5432)
        self.app_role = str(params.get("user") or os.environ.get("USER", "postgres"))
        self.app_db = str(params.get("dbname") or self.app_role)
        pw = params.get("password")
        self._passwords[self.app_role] = str(pw) if pw is not None else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExternalPostgres | None:
        env = os.environ if env is None else env
        dsn = env.get("THAWPROOF_DSN")
        return cls(dsn, env.get("THAWPROOF_ADMIN_DSN")) if dsn else None

    @property
    def admin_dsn(self) -> str:
        return self._admin

    def check_reachable(self, timeout: int = 5) -> None:
        """:class:`SetupError` naming the real cause unless both DSNs connect."""
        for name, dsn in (("THAWPROOF_DSN", self._dsn), ("THAWPROOF_ADMIN_DSN", self._admin)):
            try:
                psycopg.connect(dsn, connect_timeout=timeout).close()
            except psycopg.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise SetupError(f"{name} cannot be reached: {first}") from None

    def __repr__(self) -> str:
        return f"ExternalPostgres(host={self.host!r}, port={self.port})"


def open_server(
    *, max_connections: int = 50, settings: Mapping[str, str | int] | None = None
) -> PostgresServer:
    """The server a run uses: ``THAWPROOF_DSN`` when set, else a ``LocalCluster``."""
    external = ExternalPostgres.from_env()
    if external is not None:
        external.check_reachable()
        return external
    return LocalCluster(max_connections=max_connections, settings=settings)
