"""Drivers on real components: every driver runs a short schedule against the real
cluster (and a real PgBouncer for the pooled ones); a Node worker is frozen, thawed
and reclaimed like a Python one; a driver program that prints garbage, crashes or
never answers is recorded as the harness should, and never hangs it.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.chaos.env import ChaosEnv
from harness.chaos.steps import Burst, Invoke, Reclaim
from harness.chaos.timings import Timings
from harness.fleet import Fleet, FleetConfig, assert_no_leftover_processes
from harness.fleet.drivers import DRIVERS, DriverSpec, driver_spec, node_driver
from harness.fleet.procs import STOPPED_STATES, alive, proc_state
from harness.history import TerminationEvent, WorkerEvent, load_history
from harness.infra.owned import owned
from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer
from tests.integration.runner_support import Runner

FIXTURES = Path(__file__).parents[1] / "fixtures" / "drivers"

pytestmark = pytest.mark.slow


def _need(driver: DriverSpec) -> None:
    why = driver.missing()
    if why is not None:
        pytest.skip(f"driver {driver.name} cannot run here: {why}")


# What each driver does to the zombie a reclaimed sandbox leaves (P2), as measured;
# every other property holds for all of them on this schedule.
ZOMBIES_CONVERGE = {
    "lease": True,
    "plain": False,
    "pool": False,
    "server_timeout": True,
    "pgbouncer": True,
    "lease-pgbouncer": True,
    "node-pg": False,
    "serverless-postgres": True,
}


@pytest.mark.parametrize("name", list(DRIVERS))
def test_every_driver_runs_a_short_schedule_and_is_judged(
    name: str, pg: PostgresServer, toxiproxy_server: ToxiproxyServer, tmp_path: Path
) -> None:
    driver = DRIVERS[name]
    _need(driver)
    env = ChaosEnv(pg, toxiproxy_server, cap=3, driver=driver, keep=tmp_path)
    judged = env.run([Burst(3), Invoke("write"), Reclaim(0), Invoke("write"), Burst(3)])
    status = {v.prop: v.status for v in judged.verdicts}
    assert status["P1"] == status["P3"] == status["P4"] == status["P5"] == "ok", judged.narrative()
    assert status["P2"] == ("ok" if ZOMBIES_CONVERGE[name] else "fail"), judged.narrative()
    if not ZOMBIES_CONVERGE[name]:
        assert any(e["clause"] == "P2-count" for v in judged.verdicts for e in v.evidence)
    assert_no_leftover_processes()


def test_the_server_not_the_ledger_says_who_killed(
    pg: PostgresServer, toxiproxy_server: ToxiproxyServer, tmp_path: Path
) -> None:
    """serverless-postgres kills zombies itself: no ledger, yet every kill is attributed
    to the sandbox whose clean() called pg_terminate_backend."""
    driver = DRIVERS["serverless-postgres"]
    _need(driver)
    env = ChaosEnv(pg, toxiproxy_server, cap=3, driver=driver, keep=tmp_path)
    judged = env.run([Burst(3), Reclaim(0), Reclaim(0), Burst(3)])
    run = judged.run
    server = [e for e in run.events if isinstance(e, TerminationEvent)]
    assert server
    assert run.ledger == []
    assert all(t.source == "server_log" and t.killer_pid is not None for t in run.terminations)
    assert all("pg_terminate_backend" in (e.statement or "") for e in server)
    assert len(run.judged_kills) == len(server)


@pytest.fixture
def node_fleet(
    pg: PostgresServer, toxiproxy_server: ToxiproxyServer, tmp_path: Path
) -> Iterator[Fleet]:
    driver = DRIVERS["node-pg"]
    _need(driver)
    config = FleetConfig(lease=Timings().lease_kwargs(), max_workers=2, driver=driver)
    with Fleet(pg, toxiproxy_server, tmp_path / "history.jsonl", config) as fleet:
        yield fleet
    assert_no_leftover_processes()


def test_a_node_worker_is_frozen_thawed_and_answers(node_fleet: Fleet) -> None:
    fleet = node_fleet
    first = fleet.invoke("write", amount=1)
    assert first.ok, first
    (name,) = fleet.worker_names()
    info = fleet.worker(name)
    assert info.frozen
    assert proc_state(info.os_pid) in STOPPED_STATES
    assert owned().path.read_text().count(f"{fleet.run_id}/{name} (node-pg)") == 1
    again = fleet.invoke("read")  # thawed by routing
    assert again.ok
    assert again.result == {"count": 1}
    assert again.worker == name
    slow = fleet.nemesis.freeze_mid_query(seconds=0.3)
    assert fleet.worker(slow.worker).frozen
    fleet.thaw(slow.worker)
    assert slow.wait().ok


def test_a_reclaimed_node_worker_leaves_a_true_zombie(
    node_fleet: Fleet, pg: PostgresServer
) -> None:
    fleet = node_fleet
    assert fleet.invoke("read").ok
    (name,) = fleet.worker_names()
    info = fleet.worker(name)
    assert info.backend_pid is not None
    fleet.reclaim(name, blackhole=True)
    assert not alive(info.os_pid)
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT state FROM pg_stat_activity WHERE pid = %s", (info.backend_pid,)
        ).fetchone()
    assert row is not None
    assert row[0] == "idle"


def _script_driver(mode: str) -> DriverSpec:
    return DriverSpec(
        f"script-{mode}",
        "a misbehaving driver program",
        transport="subprocess",
        api="driver",
        command=(sys.executable, str(FIXTURES / "misbehaving_driver.py"), mode),
    )


def _fleet(pg: PostgresServer, proxies: ToxiproxyServer, path: Path, d: DriverSpec) -> Fleet:
    config = FleetConfig(
        lease=Timings().lease_kwargs(), max_workers=1, driver=d, op_timeout=2.0, signal_timeout=5.0
    )
    return Fleet(pg, proxies, path, config)


@pytest.mark.parametrize(
    ("mode", "detail"),
    [
        ("garbage", "protocol violation"),
        ("crash", "exit status 3"),
        ("hang", "did not answer"),
    ],
)
def test_a_misbehaving_driver_is_recorded_and_never_hangs_the_harness(
    mode: str, detail: str, pg: PostgresServer, toxiproxy_server: ToxiproxyServer, tmp_path: Path
) -> None:
    path = tmp_path / "history.jsonl"
    with _fleet(pg, toxiproxy_server, path, _script_driver(mode)) as fleet:
        result = fleet.invoke("write", amount=1, timeout=2.0)
        assert result.type == "info", result  # it may have written: unknown
        assert fleet.harness_faults == []  # the driver's fault, not the harness's
    crashes = [e for e in load_history(path) if isinstance(e, WorkerEvent) and e.f == "crash"]
    assert len(crashes) == 1, crashes
    assert detail in (crashes[0].detail or ""), crashes
    assert_no_leftover_processes()


def test_a_well_behaved_script_driver_in_another_language_works(
    pg: PostgresServer, toxiproxy_server: ToxiproxyServer, tmp_path: Path
) -> None:
    with _fleet(pg, toxiproxy_server, tmp_path / "h.jsonl", _script_driver("ok")) as fleet:
        assert [fleet.invoke("read").type for _ in range(3)] == ["ok", "ok", "ok"]
        (name,) = fleet.worker_names()
        assert fleet.worker(name).frozen


def test_a_node_driver_that_throws_in_an_event_handler_crashes_as_p4(
    pg: PostgresServer, toxiproxy_server: ToxiproxyServer, tmp_path: Path
) -> None:
    d = node_driver("throws", "throws later", str(FIXTURES / "throws_later.js"))
    _need(d)
    path = tmp_path / "h.jsonl"
    with _fleet(pg, toxiproxy_server, path, d) as fleet:
        assert fleet.invoke("read", timeout=5.0).type == "info"  # it died mid-op
    (crash,) = [e for e in load_history(path) if isinstance(e, WorkerEvent) and e.f == "crash"]
    assert "thrown inside an event handler" in (crash.detail or "")


def test_user_module_driver_serverless_postgres(
    pg: PostgresServer, toxiproxy_server: ToxiproxyServer, tmp_path: Path
) -> None:
    d = driver_spec("node-module:serverless-postgres")
    _need(d)
    with _fleet(pg, toxiproxy_server, tmp_path / "h.jsonl", d) as fleet:
        w = fleet.invoke("write", amount=2)
        assert w.ok, w
        assert w.result == {"counter": 1}, w
        assert fleet.invoke("read").result == {"count": 1}


def test_no_node_worker_survives_a_sigkilled_runner() -> None:
    """A Node worker has no PR_SET_PDEATHSIG: it is recorded as the runner's, so the
    watchdog ends it (thawed first if frozen) when the runner dies by SIGKILL."""
    _need(DRIVERS["node-pg"])
    runner = Runner(("thaw_storm", "driver=node-pg"))
    try:
        runner.wait_for_line(r"step 4/8")
        runner.note_owned()
        workers = [r for r in runner.seen.values() if "(node-pg)" in r.label]
        assert workers, "no Node worker was recorded"
        runner.signal(signal.SIGKILL)
        runner.finish()
        runner.assert_nothing_left()
    finally:
        if runner.proc.poll() is None:
            runner.proc.kill()
            runner.proc.wait()
