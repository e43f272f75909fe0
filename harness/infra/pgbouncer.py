"""A real PgBouncer for the harness: Debian's ``pgbouncer`` (1.18), started and stopped
like the cluster.

:class:`PgBouncer` writes a config into a temp dir, starts ``pgbouncer`` in the
foreground in a session of its own (a terminal's Ctrl-C is the harness's to
handle), on a free 127.0.0.1 port, in ``transaction`` pooling mode by default,
and waits until a real query passes through it. Its process and its directory
are recorded with :func:`harness.infra.owned.owned` the moment they exist and
released when it is stopped, on every exit path (context manager, ``atexit``,
an idempotent :meth:`PgBouncer.stop`). As root it runs as Debian's ``postgres``
account (PgBouncer refuses to run as root).

Clients authenticate to it with ``trust`` (it listens on 127.0.0.1 only); it
logs in to the server with the application role's password, given in its
``[databases]`` line. The server it points at can be a proxy in front of
PostgreSQL, so its own link can be cut too.

``scripts/ensure-pgbouncer.sh`` installs Debian's package when it is missing.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
from psycopg.conninfo import make_conninfo

from harness.errors import SetupError, WaitTimeout
from harness.infra.owned import owned, signals_held, unblock_in_child
from harness.infra.ports import free_port
from harness.wait import poll

_START_TIMEOUT_S = 15.0
_ACCOUNT = "postgres"


_unblock_signals = unblock_in_child


def find_pgbouncer() -> Path | None:
    """The ``pgbouncer`` binary: ``PGBOUNCER`` if set, else on PATH or in /usr/sbin."""
    explicit = os.environ.get("PGBOUNCER")
    if explicit:
        return Path(explicit) if os.access(explicit, os.X_OK) else None
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    return Path(found) if found else None


class PgBouncer:
    """One PgBouncer in front of ``upstream``, for one database and one role."""

    def __init__(
        self,
        *,
        upstream: tuple[str, int],
        dbname: str,
        user: str,
        password: str,
        pool_size: int,
        pool_mode: str = "transaction",
        settings: Mapping[str, str | int] | None = None,
    ) -> None:
        binary = find_pgbouncer()
        if binary is None:
            raise SetupError("pgbouncer not found: run scripts/ensure-pgbouncer.sh")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = 0
        self.upstream = upstream
        self.dbname, self.user, self._password = dbname, user, password
        self.pool_size, self.pool_mode = pool_size, pool_mode
        self.settings = dict(settings or {})
        self.root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir_record: str | None = None
        self._proc_record: str | None = None
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    # -- paths and config

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "pgbouncer.log"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def dsn(self, **extra: str | int) -> str:
        """A DSN for the application role through PgBouncer."""
        params: dict[str, str | int] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            "connect_timeout": 5,
            **extra,
        }
        return make_conninfo(**params)  # type: ignore[arg-type]

    def _config(self) -> str:
        assert self.root is not None
        host, port = self.upstream
        server = make_conninfo(
            host=host, port=port, dbname=self.dbname, user=self.user, password=self._password
        )
        pgb: dict[str, str | int] = {
            "listen_addr": self.host,
            "listen_port": self.port,
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": str(self.root / "userlist.txt"),
            "pool_mode": self.pool_mode,
            "default_pool_size": self.pool_size,
            "max_client_conn": 200,
            "ignore_startup_parameters": "extra_float_digits",
            "server_login_retry": 1,
            "logfile": str(self.log_path),
            "log_connections": 1,
            "log_disconnections": 1,
            "admin_users": "",
            **self.settings,
        }
        lines = ["[databases]", f"{self.dbname} = {server}", "", "[pgbouncer]"]
        lines += [f"{k} = {v}" for k, v in pgb.items()]
        return "\n".join(lines) + "\n"

    # -- lifecycle

    def _start(self) -> None:
        records = owned()
        with signals_held():
            self.root = Path(tempfile.mkdtemp(prefix="thawproof-pgbouncer-"))
            self._dir_record = records.directory(self.root, "PgBouncer")
        (self.root / "userlist.txt").write_text(f'"{self.user}" ""\n')
        as_root = os.geteuid() == 0
        for attempt in range(5):
            self.port = free_port(self.host)
            (self.root / "pgbouncer.ini").write_text(self._config())
            cmd = [str(self.binary)]
            kwargs: dict[str, object] = {}
            if as_root:
                entry = pwd.getpwnam(_ACCOUNT)
                for p in self.root.iterdir():
                    os.chown(p, entry.pw_uid, entry.pw_gid)
                os.chown(self.root, entry.pw_uid, entry.pw_gid)
                kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            cmd.append(str(self.root / "pgbouncer.ini"))
            with signals_held():
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=str(self.root),
                    start_new_session=True,
                    # signals_held() blocks SIGINT/SIGTERM here, and a child inherits
                    # the mask: unblocked again, or PgBouncer would ignore SIGTERM
                    preexec_fn=_unblock_signals,
                    **kwargs,  # type: ignore[call-overload]
                )
                self._proc_record = records.process(self._proc.pid, "PgBouncer")
            try:
                self._wait_ready()
                return
            except SetupError:
                self._kill()
                if attempt == 4 or "Address already in use" not in self.read_log():
                    raise

    def _wait_ready(self) -> None:
        def through() -> bool | None:
            if self._proc is not None and self._proc.poll() is not None:
                raise SetupError(
                    f"pgbouncer exited with status {self._proc.returncode}: {self._log_tail()}"
                )
            try:
                with psycopg.connect(self.dsn(connect_timeout=2), autocommit=True) as conn:
                    conn.prepare_threshold = None
                    conn.execute("SELECT 1")
            except psycopg.Error:
                return None
            return True

        try:
            poll(
                through,
                timeout=_START_TIMEOUT_S,
                what=f"a query through PgBouncer on port {self.port}",
                describe=self._log_tail,
            )
        except WaitTimeout as exc:
            raise SetupError(str(exc)) from exc

    def _log_tail(self) -> str:
        lines = self.read_log().strip().splitlines()[-3:]
        return " / ".join(lines) if lines else "(no log)"

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._proc = None
        if self._proc_record is not None:
            owned().release(self._proc_record)
            self._proc_record = None

    def stop(self) -> None:
        """Stop PgBouncer and remove its directory. Idempotent."""
        self._kill()
        root, self.root = self.root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        if self._dir_record is not None:
            owned().release(self._dir_record)
            self._dir_record = None
        atexit.unregister(self.stop)

    def read_log(self) -> str:
        if self.root is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PgBouncer(port={self.port}, upstream={self.upstream}, mode={self.pool_mode})"


__all__ = ["PgBouncer", "find_pgbouncer"]
