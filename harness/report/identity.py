"""A run's identity: when, from which commit, and with which real components it ran.

:func:`run_identity` is called by the CLI once the servers are up (or with none
when they never came up); what it cannot learn it says in words, it never
raises. Nothing secret goes in: no DSN, no password, no lease secret.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer

REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: Path = REPO) -> str:
    """The checkout's commit (``+dirty`` when it has uncommitted changes), or why not."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({type(e).__name__})"
    return f"{head}+dirty" if dirty else head


def postgres_version(pg: PostgresServer) -> str:
    """``SELECT version()`` on the server, or why it could not be asked."""
    try:
        with psycopg.connect(pg.admin_dsn, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT version()").fetchone()
    except psycopg.Error as e:
        return f"unknown ({type(e).__name__})"
    return str(row[0]) if row else "unknown"


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def run_identity(
    pg: PostgresServer | None = None, proxies: ToxiproxyServer | None = None
) -> dict[str, Any]:
    """The identity of a run, as ``summary.json`` and ``report.html`` show it."""
    now = datetime.datetime.now(datetime.UTC)
    return {
        "utc_date": now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git_commit": git_commit(),
        "python": f"{platform.python_implementation()} {platform.python_version()}"
        f" ({sys.executable})",
        "postgresql": postgres_version(pg) if pg is not None else "not started",
        "toxiproxy_server": f"{proxies.kind} {proxies.version}".strip()
        if proxies is not None
        else "not started",
        "toxiproxy_python": package_version("toxiproxy-python"),
        "platform": platform.platform(),
    }


__all__ = ["git_commit", "package_version", "postgres_version", "run_identity"]
