"""LocalCluster against the real PostgreSQL binaries: roles, restart, teardown, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import psycopg
import pytest

from harness.errors import PostgresBinariesNotFound
from harness.infra.postgres import LocalCluster, PostgresServer, find_pg_bin


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; an exited process that nobody reaped yet (a zombie,
    since the postmaster is daemonised onto PID 1) counts as ended."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_app_role_is_not_superuser_and_has_signal_and_stats(pg: PostgresServer) -> None:
    with psycopg.connect(pg.app_dsn) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert superuser.fetchone() == (False,)
        assert conn.execute("SELECT pg_has_role('pg_signal_backend', 'MEMBER')").fetchone() == (
            True,
        )
        assert conn.execute("SELECT pg_has_role('pg_read_all_stats', 'MEMBER')").fetchone() == (
            True,
        )


def test_created_role_connects_without_grants(pg: PostgresServer) -> None:
    dsn = pg.create_role("plain_role")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("plain_role",)
        assert conn.execute("SELECT pg_has_role('pg_signal_backend', 'MEMBER')").fetchone() == (
            False,
        )


def test_restart_keeps_data_and_ends_backends(tmp_path: Path) -> None:
    with LocalCluster(max_connections=10) as cluster:
        with psycopg.connect(cluster.app_dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept(x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        held = psycopg.connect(cluster.app_dsn, autocommit=True)
        for mode in ("immediate", "fast"):
            cluster.restart(mode)
            with psycopg.connect(cluster.app_dsn) as conn:
                assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
        held.close()


def test_teardown_leaves_no_process_and_no_directory() -> None:
    with LocalCluster(max_connections=10) as cluster:
        root = cluster.root
        pid = cluster.postmaster_pid()
        assert root is not None
        assert root.exists()
        assert pid is not None
        assert _pid_alive(pid)
    assert not root.exists()
    assert not _pid_alive(pid)


def test_teardown_on_exception_path() -> None:
    cluster = LocalCluster(max_connections=10)
    pid = cluster.postmaster_pid()
    with pytest.raises(RuntimeError, match="boom"), cluster:
        raise RuntimeError("boom")
    assert cluster.root is None
    assert pid is not None
    assert not _pid_alive(pid)


def test_teardown_at_interpreter_exit() -> None:
    """A script that never stops its cluster: the atexit backstop does."""
    script = (
        "import sys\n"
        "from harness.infra.postgres import LocalCluster\n"
        "c = LocalCluster(max_connections=10)\n"
        "print(c.postmaster_pid(), c.root, flush=True)\n"
        "sys.exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    pid, root = int(out[0]), Path(out[1])
    assert not _pid_alive(pid)
    assert not root.exists()


def test_missing_binaries_give_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(PostgresBinariesNotFound, match=r"has no initdb, pg_ctl, postgres"):
        find_pg_bin({"PG_BIN": str(tmp_path)})
    nowhere = str(tmp_path / "nothing" / "*" / "bin")
    with pytest.raises(PostgresBinariesNotFound, match=r"apt-get install -y postgresql"):
        find_pg_bin({"PATH": str(tmp_path)}, debian_glob=nowhere)


def test_root_runs_server_as_unprivileged_account() -> None:
    if os.geteuid() != 0:
        pytest.skip("only meaningful when the harness runs as root")
    with LocalCluster(max_connections=10) as cluster:
        pid = cluster.postmaster_pid()
        assert pid is not None
        uid = os.stat(f"/proc/{pid}").st_uid
        assert uid != 0
        assert os.stat(cluster.data_dir).st_uid == uid


def _unprivileged_python() -> tuple[list[str], dict[str, str]] | str:
    """A command prefix running this interpreter's code as the unprivileged account,
    or the reason there is none. The venv's interpreter may live under /root (mode
    700); the system interpreter of the same version, given the venv's packages on
    PYTHONPATH, runs the same code."""
    repo = str(Path(__file__).parents[2])
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, *sorted(paths)])}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    reasons = []
    for python in filter(None, candidates):
        cmd = ["runuser", "-u", "postgres", "--", python]
        probe = subprocess.run(
            [*cmd, "-c", "import harness.infra.postgres, psycopg"],
            capture_output=True,
            text=True,
            cwd=repo,
            env=env,
        )
        if probe.returncode == 0:
            return cmd, env
        reasons.append((probe.stderr.strip().splitlines() or ["no detail"])[-1])
    return "; ".join(reasons)


def test_runs_as_non_root_user() -> None:
    """The non-root path: the harness itself runs as an unprivileged user."""
    if os.geteuid() == 0:
        found = _unprivileged_python()
        if isinstance(found, str):
            pytest.skip(f"no interpreter runs this code as the 'postgres' account ({found})")
        cmd, env = found
    else:
        cmd, env = [sys.executable], dict(os.environ)
    script = (
        "import os, psycopg\n"
        "from harness.infra.postgres import LocalCluster\n"
        "assert os.geteuid() != 0\n"
        "with LocalCluster(max_connections=10) as c:\n"
        "    assert c.run_as is None\n"
        "    print(psycopg.connect(c.app_dsn).execute('select 1').fetchone()[0])\n"
    )
    out = subprocess.run(
        [*cmd, "-c", script], capture_output=True, text=True, timeout=120, cwd="/tmp", env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
