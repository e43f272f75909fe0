"""Many runners on one PostgreSQL server and one Toxiproxy server, as the README says
("Many runners, one server").

- A database and a role each: two ``reclaim_zombies`` runs at once (their reapers kill
  zombies while the other tenant's expired backends are on the same server, with the
  same service name and secret). Each passes, the runs overlap, and the server's own
  log shows no backend of one tenant ended by the other's.
- One database for both: their examples take turns (the run's turn lock), so both
  pass and their records do not overlap; without the turns they failed each other's
  P2 and P3 (measured), which would be the harness blaming the client.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from harness.chaos.env import TURN_APP, TURN_LOCK
from harness.history import ReapEvent, load_history
from harness.infra.postgres import LocalCluster
from harness.infra.toxiproxy import ToxiproxyServer
from harness.observe import terminations
from harness.wait import poll
from tests.chaos.test_scenarios_cli import run_dir_in
from tests.integration.runner_support import Runner

pytestmark = pytest.mark.slow

TENANT = "thawproof_tenant_b"


def _second_tenant(pg: LocalCluster) -> str:
    """A role and a database of its own on ``pg``, privileged as the app role is."""
    password = secrets.token_urlsafe(12)
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        role = sql.Identifier(TENANT)
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER PASSWORD {}").format(
                role, sql.Literal(password)
            )
        )
        conn.execute(sql.SQL("GRANT pg_signal_backend, pg_read_all_stats TO {}").format(role))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
    return make_conninfo(pg.app_dsn, user=TENANT, password=password, dbname=TENANT)


def _run_both(
    pg: LocalCluster,
    proxies: ToxiproxyServer,
    dsns: list[str],
    started: Callable[[], None] = lambda: None,
) -> list[tuple[float, float]]:
    """``reclaim_zombies`` once per DSN, all at once (``started`` runs once they are);
    each must pass and its reapers must kill. The wall-clock span of each run's history."""
    before = proxies.proxy_names()
    runners = [
        Runner(
            ("reclaim_zombies",),
            env={
                "THAWPROOF_DSN": dsn,
                "THAWPROOF_ADMIN_DSN": pg.admin_dsn,
                "TOXIPROXY_URL": proxies.url,
            },
        )
        for dsn in dsns
    ]
    started()
    outputs = [r.finish(timeout=300) for r in runners]
    spans = []
    for dsn, (code, out) in zip(dsns, outputs, strict=True):
        assert code == 0, f"{dsn}: {out}"
        events = load_history(run_dir_in(out) / "history.jsonl")
        kills = [e for e in events if isinstance(e, ReapEvent) and e.result == "killed"]
        assert kills, f"{dsn}: its reapers killed nothing, so nothing was shown"
        walls = [e.wall for e in events]
        spans.append((min(walls), max(walls)))
    assert proxies.proxy_names() <= before, "a run left its proxies behind"
    return spans


def test_two_runners_with_a_database_and_a_role_each_leave_each_other_alone(
    thawproof_proxy: ToxiproxyServer,
) -> None:
    with LocalCluster(max_connections=40) as pg:
        tenants = {pg.app_role: pg.app_dsn, TENANT: _second_tenant(pg)}
        (a0, a1), (b0, b1) = _run_both(pg, thawproof_proxy, list(tenants.values()))
        log = pg.read_log()
    assert max(a0, b0) < min(a1, b1), f"the two runs did not overlap: {a0, a1, b0, b1}"
    ended = terminations(log, since_wall=-math.inf)
    across = [
        t
        for t in ended
        if t.user in tenants and t.killer_user in tenants and t.user != t.killer_user
    ]
    assert not across, across
    assert any(t.killer_user == TENANT for t in ended), "the server logged no kill by tenant b"
    assert any(t.killer_user == pg.app_role for t in ended), "the server logged no kill by tenant a"


def test_two_runners_on_one_database_take_turns(thawproof_proxy: ToxiproxyServer) -> None:
    with (
        LocalCluster(max_connections=40) as pg,
        psycopg.connect(pg.admin_dsn, dbname=pg.app_db, autocommit=True) as holder,
    ):
        # The turn is taken here first, so both runners are surely waiting for it when
        # one of them gets it and clears the database for its example: the clearing
        # must leave the other's waiting connection alone (it once killed it).
        holder.execute("SELECT pg_advisory_lock(%s)", (TURN_LOCK,))

        def both_waiting() -> None:
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                " AND wait_event = 'advisory'"
            )

            def two() -> bool | None:
                row = holder.execute(waiting, (TURN_APP,)).fetchone()
                return True if row == (2,) else None

            poll(two, timeout=120, what="both runners to wait for the turn")
            holder.execute("SELECT pg_advisory_unlock(%s)", (TURN_LOCK,))

        (a0, a1), (b0, b1) = _run_both(
            pg, thawproof_proxy, [pg.app_dsn, pg.app_dsn], started=both_waiting
        )
    assert a1 < b0 or b1 < a0, f"the two runs' examples overlapped: {a0, a1, b0, b1}"
