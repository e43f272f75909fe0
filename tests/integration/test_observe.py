"""The observers against a real server: sampling, restart gaps, the log's terminations."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from harness.errors import UsageError
from harness.history import load_samples
from harness.infra.postgres import LocalCluster, PostgresServer
from harness.observe import (
    ActivitySampler,
    cross_check_kills,
    terminations_from_log,
)
from harness.report.activity_csv import write_activity_csv


def _has_app(name: str):  # type: ignore[no-untyped-def]
    return lambda s: any(r.application_name == name for r in s.rows)


def test_sampler_sees_backends_come_and_go(pg: PostgresServer, tmp_path: Path) -> None:
    path = tmp_path / "activity.jsonl"
    with ActivitySampler(pg.admin_dsn, pg.app_db, path=path) as sampler:
        conn = psycopg.connect(pg.dsn(application_name="observed"), autocommit=True)
        seen = sampler.wait_for(_has_app("observed"), timeout=10)
        row = next(r for r in seen.rows if r.application_name == "observed")
        assert row.pid == conn.info.backend_pid
        assert row.state == "idle"
        assert row.usename == pg.app_role
        conn.close()
        sampler.wait_for(lambda s: not _has_app("observed")(s), timeout=10)
    on_disk = load_samples(path)
    assert len(on_disk) == len(sampler.samples)
    write_activity_csv(on_disk, tmp_path / "activity.csv")
    assert "observed" in (tmp_path / "activity.csv").read_text()


def test_sampler_rides_out_a_restart_and_log_names_terminations() -> None:
    with LocalCluster(max_connections=10) as cluster:
        with ActivitySampler(cluster.admin_dsn, cluster.app_db) as sampler:
            victim = psycopg.connect(cluster.dsn(application_name="victim"), autocommit=True)
            victim_pid = victim.info.backend_pid
            sampler.wait_for(_has_app("victim"), timeout=10)
            with psycopg.connect(cluster.admin_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (victim_pid,))
            cluster.restart("immediate")
            after = psycopg.connect(cluster.dsn(application_name="after"), autocommit=True)
            sampler.wait_for(_has_app("after"), timeout=20)
            after.close()
            victim.close()
        assert sampler.errors >= 1, "the restart should show as a gap"
        assert sampler.gaps, "the restart should show as a gap"
        logged = terminations_from_log(cluster.read_log())
    assert victim_pid in logged
    check = cross_check_kills([victim_pid], logged)
    assert check.consistent
    forgotten = cross_check_kills([], logged)
    assert forgotten.log_only == (victim_pid,)
    invented = cross_check_kills([victim_pid, 999999], logged)
    assert invented.ledger_only == (999999,)


def test_sampler_refuses_slower_than_ten_hz(pg: PostgresServer) -> None:
    with pytest.raises(UsageError, match="at least 10 Hz"):
        ActivitySampler(pg.admin_dsn, pg.app_db, interval=0.5)
