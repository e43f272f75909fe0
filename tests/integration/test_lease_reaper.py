"""The reaper against a real PostgreSQL: what it kills, what it never kills, and leadership."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from harness.infra.postgres import PostgresServer
from harness.lease import LeaseClient, LeaseExpired, token
from tests.integration.lease_support import (
    SECRET,
    Recorder,
    backend_alive,
    config,
    lease_name,
    service_name,
    wait_for,
    wait_gone,
    wait_idle,
    zombie,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def admin(pg: PostgresServer) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        yield conn


def killed(ledger: list[dict[str, Any]]) -> set[int]:
    return {e["pid"] for e in ledger if e["result"] == "killed"}


def test_kills_expired_idle_leases_and_nothing_else(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("reap")
    dsn = pg.app_dsn
    superuser_dsn = make_conninfo(pg.admin_dsn, dbname=pg.app_db)
    with (
        zombie(dsn, lease_name(svc, -5)) as z1,
        zombie(dsn, lease_name(svc, -50)) as z2,
        zombie(dsn, lease_name(svc, +60)) as valid,
        zombie(dsn, lease_name(svc, -5)) as busy,
        zombie(dsn, lease_name("other-service", -5)) as other,
        zombie(dsn, lease_name(svc, -5, secret="a-different-secret-000")) as wrong_secret,
        zombie(dsn, lease_name(svc, -5)[:-2] + "xx") as forged,
        zombie(superuser_dsn, lease_name(svc, -5)) as superuser,
        zombie(dsn, "psql") as plain,
        LeaseClient(dsn, config(svc)) as reaper,
    ):
        assert superuser.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (True,)

        def sleep() -> None:
            with contextlib.suppress(psycopg.errors.QueryCanceled):
                busy.execute("SELECT pg_sleep(30)")

        sleeper = threading.Thread(target=sleep, daemon=True)
        sleeper.start()
        wait_idle(admin, busy.info.backend_pid, state="active")
        try:
            ledger = reaper.reap_now()
        finally:
            busy.cancel_safe()
            sleeper.join(10)
        # oldest expiry first
        assert [e["pid"] for e in ledger] == [z2.info.backend_pid, z1.info.backend_pid]
        assert killed(ledger) == {z1.info.backend_pid, z2.info.backend_pid}
        for z in (z1, z2):
            wait_gone(admin, z.info.backend_pid)
        for c in (valid, busy, other, wrong_secret, forged, superuser, plain):
            assert backend_alive(admin, c.info.backend_pid)
        assert reaper.execute("SELECT 1") == [(1,)]


def test_ledger_entries_carry_the_row_acted_on(pg: PostgresServer) -> None:
    svc = service_name("ledger")
    rec = Recorder()
    with (
        zombie(pg.app_dsn, lease_name(svc, -5)) as z,
        LeaseClient(pg.app_dsn, config(svc), rec.hooks("on_reap")) as reaper,
    ):
        reaper.connect()
        pid, app = z.info.backend_pid, z.info.parameter_status("application_name")
        ledger = reaper.reap_now()
    assert [e["event"] for e in rec.of("on_reap")] == ["locked", "scanned", "kill", "pass_end"]
    (entry,) = ledger
    assert entry["pid"] == pid
    assert entry["application_name"] == app
    assert entry["state"] == "idle"
    assert entry["state_change"]
    assert entry["lease_expiry_ms"] < time.time() * 1000
    assert rec.of("on_reap", "scanned")[0]["candidates"] == [pid]
    assert rec.of("on_reap", "pass_end")[0]["killed"] == 1
    assert SECRET not in repr(rec.events)


def test_min_idle_is_measured_by_the_server(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("minidle")
    with (
        zombie(pg.app_dsn, lease_name(svc, -5)) as z,
        LeaseClient(pg.app_dsn, config(svc, min_idle=30.0)) as reaper,
    ):
        assert reaper.reap_now() == []
        assert backend_alive(admin, z.info.backend_pid)


@pytest.mark.parametrize("change", ["query", "renew", "none"])
def test_row_changed_between_scan_and_kill_is_skipped(
    pg: PostgresServer, admin: psycopg.Connection[Any], change: str
) -> None:
    """The "scanned" hook is the deterministic point between scan and kill."""
    svc = service_name("race")
    rec = Recorder()
    with (
        zombie(pg.app_dsn, lease_name(svc, -5)) as victim,
        LeaseClient(pg.app_dsn, config(svc), rec.hooks("on_reap")) as reaper,
    ):
        reaper.connect()

        def between_scan_and_kill(payload: dict[str, Any]) -> None:
            if (
                payload.get("event") != "scanned"
                or victim.info.backend_pid not in payload["candidates"]
            ):
                return
            if change == "query":
                victim.execute("SELECT 1")  # state_change moves on
            elif change == "renew":
                victim.execute(
                    "SELECT set_config('application_name', %s, false)", (lease_name(svc, +60),)
                )

        rec.on["on_reap"] = between_scan_and_kill
        ledger = reaper.reap_now()
        (entry,) = ledger
        assert entry["pid"] == victim.info.backend_pid
        if change == "none":
            assert entry["result"] == "killed"
            wait_gone(admin, victim.info.backend_pid)
        else:
            # PostgreSQL caches pg_stat_activity for a whole transaction: the re-check
            # only sees the change because the kill clears that snapshot first.
            assert entry["result"] == "skipped"
            assert backend_alive(admin, victim.info.backend_pid)
            assert victim.execute("SELECT 2").__class__ is not None


def test_concurrent_reapers_never_run_two_passes_at_once(pg: PostgresServer) -> None:
    svc = service_name("conc")
    zombies = [
        psycopg.connect(pg.app_dsn, autocommit=True, application_name=lease_name(svc, -5))
        for _ in range(12)
    ]
    recorders = [Recorder() for _ in range(4)]
    clients = [
        LeaseClient(pg.app_dsn, config(svc, max_kills=1), r.hooks("on_reap")) for r in recorders
    ]
    try:
        for c in clients:
            c.connect()
        start = threading.Barrier(len(clients))
        ledgers: list[list[dict[str, Any]]] = [[] for _ in clients]

        def run(i: int) -> None:
            start.wait()
            for _ in range(8):
                ledgers[i].extend(clients[i].reap_now())

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        intervals = []
        for r in recorders:
            events = [e for e in r.of("on_reap") if e["event"] in ("locked", "pass_end")]
            for a, b in zip(events[::2], events[1::2], strict=True):
                assert (a["event"], b["event"]) == ("locked", "pass_end")
                intervals.append((a["server_at"], b["server_at"]))
        intervals.sort()
        busy = sum(len(r.of("on_reap", "busy")) for r in recorders)
        assert len(intervals) + busy == 4 * 8
        assert intervals
        for (_, end), (nxt, _) in itertools.pairwise(intervals):
            assert end < nxt, f"two passes held the lock at once: {intervals}"
        # "killed" = SIGTERM delivered: a backend still exiting may be signalled again by
        # the next pass, so the same (pid, lease) can appear twice, never another row.
        kills = {
            (e["pid"], e["application_name"])
            for ledger in ledgers
            for e in ledger
            if e["result"] == "killed"
        }
        zombie_rows = {
            (z.info.backend_pid, z.info.parameter_status("application_name")) for z in zombies
        }
        assert kills <= zombie_rows
        assert kills
    finally:
        for c in clients:
            c.close()
        for z in zombies:
            z.close()


AEQUOR_NS = 0x50474151  # pg-aequor 0.1.4's Reaper.LOCK_NS (lib/reaper.js)


def _aequor_key_holders(admin: psycopg.Connection[Any], svc: str) -> list[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
        " AND classid = %s::bigint::oid AND objid = (hashtext(%s)::bigint & 4294967295)::oid",
        (AEQUOR_NS, token.service_tag(svc)),
    ).fetchall()
    return [r[0] for r in rows]


def test_a_leading_pass_holds_aequors_key_and_a_busy_one_does_not(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    """Without Node: a leading pass holds pg-aequor's key until it commits; a pass that
    is busy on our key never takes it. (The live test with pg-aequor itself is in
    test_lease_interop.py.)"""
    svc = service_name("aqkey")
    rec = Recorder()
    held: list[list[int]] = []

    def during(payload: dict[str, Any]) -> None:
        if payload.get("event") in ("locked", "busy"):
            held.append(_aequor_key_holders(admin, svc))

    rec.on["on_reap"] = during
    with LeaseClient(pg.app_dsn, config(svc), rec.hooks("on_reap")) as reaper:
        reaper.connect()
        reaper.reap_now()
        assert rec.of("on_reap", "locked")[0]["aequor_lock"] is True
        assert held == [[reaper.backend_pid]]
        assert _aequor_key_holders(admin, svc) == []  # released with the COMMIT
        with psycopg.connect(pg.app_dsn, autocommit=True) as other:
            other.execute("BEGIN")
            other.execute(  # our own key, held by someone else: this pass is busy
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                (reaper.config.lock_namespace, token.service_tag(svc)),
            )
            reaper.reap_now()
            assert rec.of("on_reap", "busy")
            assert held[-1] == []
            other.execute("COMMIT")
    off = Recorder()
    with LeaseClient(
        pg.app_dsn, config(svc, aequor_lock_namespace=None), off.hooks("on_reap")
    ) as reaper:
        reaper.reap_now()
        assert off.of("on_reap", "locked")[0]["aequor_lock"] is None


def test_a_session_holder_of_aequors_key_never_stalls_our_pass(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    """A session lock on pg-aequor's key, as a pg-aequor leader (or a frozen one) holds
    it: our pass is refused that key, does not wait for it, and still leads and kills."""
    svc = service_name("aqsession")
    rec = Recorder()
    with (
        psycopg.connect(pg.app_dsn, autocommit=True) as aequor_like,
        zombie(pg.app_dsn, lease_name(svc, -5)) as z,
        LeaseClient(pg.app_dsn, config(svc), rec.hooks("on_reap")) as reaper,
    ):
        got = aequor_like.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (AEQUOR_NS, token.service_tag(svc))
        ).fetchone()
        assert got == (True,)
        ledger = reaper.reap_now()
        assert rec.of("on_reap", "locked")[0]["aequor_lock"] is False
        assert killed(ledger) == {z.info.backend_pid}
        assert _aequor_key_holders(admin, svc) == [aequor_like.info.backend_pid]


_FROZEN_REAPER = """
import sys
from harness.lease import LeaseConfig, Reaper

def hook(payload):
    if payload.get("event") == "locked":
        print("LOCKED", payload["reaper_pid"], flush=True)
        sys.stdin.read()  # hold the lock until SIGSTOPped (and beyond)

cfg = LeaseConfig(service=sys.argv[2], secret=sys.argv[3], lease_ttl=1.0,
                  reaper_lock_timeout=float(sys.argv[4]))
Reaper(cfg, {"on_reap": hook}).run_once(sys.argv[1])
"""


def test_frozen_reaper_process_loses_the_lock_within_its_timeout(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("frozen")
    lock_timeout = 1.0
    child = subprocess.Popen(
        [sys.executable, "-c", _FROZEN_REAPER, pg.app_dsn, svc, SECRET, str(lock_timeout)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    stopped = False
    try:
        assert child.stdout is not None
        line = wait_for(child.stdout.readline, "the child reaper to take the lock", 30)
        assert line.startswith("LOCKED")
        child_backend = int(line.split()[1])
        os.kill(child.pid, signal.SIGSTOP)
        stopped = True
        frozen_at = time.monotonic()
        rec = Recorder()
        with LeaseClient(pg.app_dsn, config(svc), rec.hooks("on_reap")) as reaper:
            reaper.reap_now()
            assert rec.of("on_reap", "busy"), "the frozen child should still hold the lock"
            wait_for(
                lambda: reaper.reap_now() is not None and rec.of("on_reap", "locked"),
                "another reaper to get the lock",
                timeout=lock_timeout + 10,
            )
            took = time.monotonic() - frozen_at
        assert took < lock_timeout + 3.0, f"lock came back after {took:.2f}s"
        wait_gone(admin, child_backend)  # ended by idle_in_transaction_session_timeout
    finally:
        if stopped:
            os.kill(child.pid, signal.SIGCONT)  # thaw before killing
        child.kill()
        child.wait(10)
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()


def test_idle_in_transaction_zombie_is_reaped_and_its_row_locks_released(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("iit")
    table = f"iit_{svc.replace('-', '_')}"
    with psycopg.connect(pg.app_dsn, autocommit=True) as setup:
        setup.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, n int)")
        setup.execute(f"INSERT INTO {table} VALUES (1, 0)")
    with (
        zombie(pg.app_dsn, lease_name(svc, -5)) as z,
        psycopg.connect(pg.app_dsn, autocommit=True) as other,
        LeaseClient(pg.app_dsn, config(svc)) as reaper,
    ):
        z.execute("BEGIN")
        z.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")
        wait_idle(admin, z.info.backend_pid, state="idle in transaction")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute(f"SELECT * FROM {table} WHERE id = 1 FOR UPDATE NOWAIT")
        assert killed(reaper.reap_now()) == {z.info.backend_pid}
        wait_gone(admin, z.info.backend_pid)
        assert other.execute(
            f"SELECT n FROM {table} WHERE id = 1 FOR UPDATE NOWAIT"
        ).fetchall() == [(0,)]


def test_worker_frozen_mid_transaction_is_reaped_and_fenced_on_thaw(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    """A LeaseClient blocked inside ``transaction(fn)`` (the harness's freeze point):
    its lease runs out, the reaper ends it, and on thaw it does not go on."""
    svc = service_name("midtx")
    table = f"midtx_{svc.replace('-', '_')}"
    with psycopg.connect(pg.app_dsn, autocommit=True) as setup:
        setup.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, n int)")
        setup.execute(f"INSERT INTO {table} VALUES (1, 0)")
    inside, thaw = threading.Event(), threading.Event()
    outcome: list[BaseException | str] = []
    worker = LeaseClient(pg.app_dsn, config(svc, lease_ttl=0.6))

    def fn(tx: Any) -> None:
        tx.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")
        inside.set()
        thaw.wait(30)
        tx.execute("SELECT 1")

    def run() -> None:
        try:
            worker.transaction(fn)
            outcome.append("committed")
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    try:
        inside.wait(10)
        pid = worker.backend_pid
        assert pid is not None
        with LeaseClient(pg.app_dsn, config(svc, lease_ttl=0.6)) as reaper:
            reaper.connect()
            ledger = wait_for(
                lambda: [e for e in reaper.reap_now() if e["pid"] == pid],
                "the frozen worker's lease to expire and be reaped",
            )
        assert ledger[0]["result"] == "killed"
        assert ledger[0]["state"] == "idle in transaction"
        wait_gone(admin, pid)
    finally:
        thaw.set()
        t.join(30)
        worker.close()
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], LeaseExpired), outcome
    with psycopg.connect(pg.app_dsn, autocommit=True) as check:
        assert check.execute(f"SELECT n FROM {table}").fetchall() == [(0,)]


def test_other_roles_zombies_without_pg_signal_backend_are_denied_not_raised(
    pg: PostgresServer, admin: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    svc = service_name("denied")
    owner_dsn = pg.create_role("lease_zombie_owner")
    weak_dsn = pg.create_role("lease_weak_reaper", member_of=("pg_read_all_stats",))
    rec = Recorder()
    caplog.set_level(logging.WARNING, logger="harness.lease")
    with (
        zombie(owner_dsn, lease_name(svc, -5)) as z1,
        zombie(owner_dsn, lease_name(svc, -6)) as z2,
        LeaseClient(
            weak_dsn, config(svc, reap_probability=1.0, cooldown=0.0), rec.hooks("on_reap")
        ) as reaper,
    ):
        assert reaper.execute("SELECT 1") == [(1,)]  # connect ran a scheduled pass
        ledger = reaper.reap_now()
        assert {e["pid"]: e["result"] for e in ledger} == {
            z1.info.backend_pid: "denied",
            z2.info.backend_pid: "denied",
        }
        scheduled = [e for e in rec.of("on_reap", "kill") if e not in ledger]
        assert {e["result"] for e in scheduled} == {"denied"}
        assert reaper.execute("SELECT 2") == [(2,)]  # the caller's work goes on
        for z in (z1, z2):
            assert backend_alive(admin, z.info.backend_pid)
    denials = [r for r in caplog.records if "42501" in r.getMessage()]
    assert len(denials) == 1, "permission denied is logged once"


def test_rows_with_null_state_are_never_candidates(
    pg: PostgresServer, admin: psycopg.Connection[Any]
) -> None:
    svc = service_name("blind")
    owner_dsn = pg.create_role("lease_zombie_owner")
    blind_dsn = pg.create_role("lease_blind_reaper", member_of=("pg_signal_backend",))
    with (
        zombie(owner_dsn, lease_name(svc, -5)) as z,
        psycopg.connect(blind_dsn, autocommit=True) as blind,
        LeaseClient(blind_dsn, config(svc)) as reaper,
    ):
        # What LEASE_SPEC.md says, measured: name visible, state and state_change NULL.
        row = blind.execute(
            "SELECT application_name, state, state_change FROM pg_stat_activity WHERE pid = %s",
            (z.info.backend_pid,),
        ).fetchone()
        assert row == (z.info.parameter_status("application_name"), None, None)
        assert reaper.reap_now() == []
        assert backend_alive(admin, z.info.backend_pid)
