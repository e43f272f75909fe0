"""The harness tells its own failure from the client's: each self-check, with its fault injected.

Every test injects one fault of the harness's machinery into a real run of the
correct client — a proxy server that loses bytes, a sampler that falls behind,
a worker's proxy that vanishes, a server that will not start — and asserts the
run is unjudged (exit 2) with that reason named, and never a FAIL: a harness
fault is never reported as the client's failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.infra.toxiproxy import ToxiproxyServer
from tests.integration.runner_support import Runner

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _scenario(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scenarios", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )


def _never_the_clients_fault(code: int, out: str) -> None:
    assert code == 2, out
    assert "FAILS" not in out, out
    assert ": fail " not in out, out


def test_a_proxy_that_loses_bytes_is_caught_by_the_canary(tmp_path: Path) -> None:
    wrapper = tmp_path / "lossy-toxiproxy-server"
    wrapper.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{REPO}/tests/fixtures/lossy_faultproxy.py" "$@"\n'
    )
    wrapper.chmod(0o755)
    done = _scenario("thaw_storm", env={"TOXIPROXY_SERVER": str(wrapper), "PYTHONPATH": str(REPO)})
    out = done.stdout + done.stderr
    _never_the_clients_fault(done.returncode, out)
    assert "did not forward a stream intact" in out


def test_a_server_that_will_not_start_is_a_setup_failure(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in (tmp_path, bin_dir):  # the server runs as Debian's postgres account
        d.chmod(0o755)
    for d in tmp_path.parents:  # pytest's own dirs (and xdist's popen-gwN) are 0700
        if d == Path(tempfile.gettempdir()):
            break
        d.chmod(0o755)
    for name in ("initdb", "pg_ctl", "postgres"):
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\necho 'simulated: this server cannot start' >&2\nexit 1\n")
        tool.chmod(0o755)
    done = _scenario("thaw_storm", env={"PG_BIN": str(bin_dir)})
    out = done.stdout + done.stderr
    _never_the_clients_fault(done.returncode, out)
    assert "initdb failed: simulated: this server cannot start" in out


@pytest.fixture
def runners() -> Iterator[list[Runner]]:
    made: list[Runner] = []
    yield made
    for r in made:
        if r.proc.poll() is None:
            os.killpg(r.proc.pid, signal.SIGKILL)
        r.finish()


def _admin_socket(r: Runner) -> str:
    """A trust-authenticated admin DSN for the run's own cluster (its socket directory)."""
    cluster = next(rec for rec in r.seen.values() if rec.kind == "cluster" and rec.path)
    assert cluster.path is not None
    sock = Path(cluster.path).parent / "sock"
    port = next(sock.glob(".s.PGSQL.*[0-9]")).name.rsplit(".", 1)[1]
    return f"host={sock} port={port} user=thawproof_admin dbname=postgres"


def test_a_sampler_that_falls_behind_makes_the_run_unjudged(runners: list[Runner]) -> None:
    r = Runner(("thaw_storm",))
    runners.append(r)
    r.wait_for_line(r"step 2/")
    with psycopg.connect(_admin_socket(r), autocommit=True) as admin:
        row = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'thawproof-sampler'"
        ).fetchone()
        assert row is not None, "the sampler's backend is not there"
        os.kill(row[0], signal.SIGSTOP)  # the sampler's queries stall from here
        try:
            r.wait_for_line(r"step 6/")  # past the Age step: over a second unsampled
        finally:
            os.kill(row[0], signal.SIGCONT)
    code, out = r.finish(timeout=120)
    _never_the_clients_fault(code, out)
    assert "NOT JUDGED" in out
    assert "pg_stat_activity sample" in out


def test_a_workers_proxy_that_vanishes_is_the_harness_fault(runners: list[Runner]) -> None:
    with ToxiproxyServer(kind="faultproxy") as proxies:
        r = Runner(("thaw_storm",), env={"TOXIPROXY_URL": proxies.url})
        runners.append(r)
        r.wait_for_line(r"step 5/")  # letting leases expire: two workers live, parked
        victims = [n for n in proxies.proxy_names() if not n.startswith("thawproof-canary")]
        assert victims, "the run has no worker proxies"
        for name in victims:
            proxies.delete_proxy(name)  # behind the fleet's back: no fault says so
        code, out = r.finish(timeout=120)
    _never_the_clients_fault(code, out)
    assert "proxy" in out, out
    assert "is gone" in out or "not found" in out, out
