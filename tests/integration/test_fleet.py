"""The fleet against real PostgreSQL and a real Toxiproxy-compatible proxy.

Timings are compressed (lease TTL 2 s); nothing sleeps a fixed time: every test
waits for an event (a pipe message, a /proc state, a pg_stat_activity row) under
a deadline that fails loudly. After every test, no worker is left alive and no
descendant process is left stopped.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.fleet import (
    Fleet,
    FleetAtCapacity,
    FleetConfig,
    assert_no_leftover_processes,
)
from harness.fleet.procs import STOPPED_STATES, alive, proc_state
from harness.history import (
    BackendEvent,
    FaultEvent,
    OpEvent,
    WorkerEvent,
    load_history,
    validate,
)
from harness.infra.postgres import PostgresServer
from harness.infra.toxiproxy import ToxiproxyServer
from harness.wait import poll

DEADLINE = 15.0

MakeFleet = Callable[..., Fleet]


def lease(service: str, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "service": service,
        "secret": "fleet-test-secret-0123456789",
        "lease_ttl": 2.0,
        "min_idle": 0.5,
        "cooldown": 0.5,
        "reap_probability": 0.0,
        "retries": 3,
        "backoff_base": 0.02,
        "backoff_cap": 0.2,
        "retry_budget": 5.0,
        "connect_timeout": 2.0,
    }
    cfg.update(over)
    return cfg


@pytest.fixture
def make_fleet(
    pg: PostgresServer, toxiproxy: ToxiproxyServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[MakeFleet]:
    fleets: list[Fleet] = []
    service = "ft-" + request.node.name.removeprefix("test_")[:14].replace("_", "-")

    def make(**over: Any) -> Fleet:
        lease_over = over.pop("lease", {})
        config = FleetConfig(lease=lease(service, **lease_over), **over)
        fleet = Fleet(pg, toxiproxy, tmp_path / f"history{len(fleets)}.jsonl", config)
        fleets.append(fleet)
        return fleet

    try:
        yield make
    finally:
        for fleet in fleets:
            fleet.close()
        assert_no_leftover_processes()


def activity(pg: PostgresServer, pid: int) -> tuple[str | None, str | None] | None:
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT state, application_name FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return None if row is None else (row[0], row[1])


def wait_until(cond: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    poll(lambda: True if cond() else None, timeout=timeout, what=what, max_interval=0.1)


def stopped(pid: int) -> bool:
    return proc_state(pid) in STOPPED_STATES


# ------------------------------------------------------------------ freezing


def test_frozen_worker_keeps_its_backend_on_the_server(
    make_fleet: MakeFleet, pg: PostgresServer
) -> None:
    fleet = make_fleet()
    r = fleet.invoke("read")
    assert r.ok
    assert r.worker == "w1"
    pid = fleet.worker("w1").os_pid
    backend = fleet.worker("w1").backend_pid
    assert backend is not None
    assert r.backend_pid == backend
    # Parked after its invocation: SIGSTOPped, and its backend is still there, idle.
    assert fleet.worker("w1").frozen
    assert stopped(pid)
    row = activity(pg, backend)
    assert row is not None
    assert row[0] == "idle"
    assert row[1] is not None
    assert row[1].startswith("s=ft-")


def test_blackholed_reclaimed_worker_leaves_a_zombie(
    make_fleet: MakeFleet, pg: PostgresServer
) -> None:
    fleet = make_fleet(max_workers=2)
    p1 = fleet.start("long_tx")  # hold w1 so the read cold-starts w2
    fleet.log.wait_paused("w1", "tx", after=p1.since)
    fleet.invoke("read")
    fleet.resume("w1")
    assert p1.wait().ok
    zombie, control = fleet.worker("w1").backend_pid, fleet.worker("w2").backend_pid
    assert zombie is not None
    assert control is not None
    os_pids = fleet.worker("w1").os_pid, fleet.worker("w2").os_pid

    fleet.reclaim("w1", blackhole=True)
    fleet.reclaim("w2")
    assert not alive(os_pids[0])
    assert not alive(os_pids[1])
    # The plain reclaim closes its socket, so the server ends that backend; the
    # blackholed one never hears of it: a true zombie.
    wait_until(lambda: activity(pg, control) is None, "the non-blackholed backend to end")
    assert activity(pg, zombie) == ("idle", activity(pg, zombie)[1])  # type: ignore[index]
    # Healing the network does not resurrect a reclaimed sandbox: its zombie stays
    # (for a reaper to end) until the fleet's teardown lets go of it.
    fleet.nemesis.heal()
    assert fleet.invoke("read").ok  # a fresh worker, over a healed network
    assert activity(pg, zombie) is not None
    faults = [e.f for e in load_history(fleet.history.path) if isinstance(e, FaultEvent)]
    assert faults.count("reclaim") == 2
    assert "heal" in faults
    fleet.close()
    wait_until(lambda: activity(pg, zombie) is None, "the zombie to end at teardown")


def test_thawed_worker_next_invocation_succeeds(make_fleet: MakeFleet) -> None:
    fleet = make_fleet()
    assert fleet.invoke("read").ok
    first = fleet.worker("w1").backend_pid
    # An explicit freeze with the link blackholed, then a thaw (which removes the
    # blackhole and so closes the old connection): the client must reconnect.
    fleet.freeze("w1", blackhole=True)
    fleet.thaw("w1")
    r = fleet.invoke("write")
    assert r.ok, r
    assert r.worker == "w1", r
    assert fleet.worker("w1").backend_pid not in (None, first)
    # Past its lease (the worker's clock jumps ahead): fencing replaces the connection.
    second = fleet.worker("w1").backend_pid
    fleet.nemesis.clock_skew("w1", 10.0)
    r = fleet.invoke("read")
    assert r.ok, r
    assert r.worker == "w1", r
    assert fleet.worker("w1").backend_pid != second
    state = fleet.data.final_state()
    assert state.ledger_counts == {r_op: 1 for r_op in state.ledger_counts}
    assert state.counter == state.ledger_rows == 1


# ------------------------------------------------------------------ routing


def test_routing_reuses_warm_workers_and_cold_starts_up_to_the_cap(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(max_workers=2)
    assert [fleet.invoke("read").worker for _ in range(3)] == ["w1", "w1", "w1"]
    p1 = fleet.start("long_tx")
    fleet.log.wait_paused("w1", "tx", after=p1.since)
    p2 = fleet.start("long_tx")  # w1 is busy: a cold start
    assert p2.worker == "w2"
    fleet.log.wait_paused("w2", "tx", after=p2.since)
    with pytest.raises(FleetAtCapacity):
        fleet.start("read")
    fleet.resume("w1")
    assert p1.wait().ok
    assert fleet.invoke("read").worker == "w1"  # warm again
    fleet.resume("w2")
    assert p2.wait().ok
    spawns = [e for e in load_history(fleet.history.path) if isinstance(e, WorkerEvent)]
    assert [e.worker for e in spawns if e.f == "spawn"] == ["w1", "w2"]


# ------------------------------------------------------------------ sync points


def test_freeze_mid_query_stops_the_worker_while_the_server_runs_it(
    make_fleet: MakeFleet, pg: PostgresServer
) -> None:
    fleet = make_fleet()
    p = fleet.nemesis.freeze_mid_query(seconds=0.5)
    assert stopped(fleet.worker(p.worker).os_pid)
    assert not p.done()
    backend = fleet.worker(p.worker).backend_pid
    assert backend is not None
    assert activity(pg, backend) is not None
    fleet.thaw(p.worker)
    assert p.wait().ok


def test_freeze_mid_tx_holds_the_transaction_open_until_thawed(
    make_fleet: MakeFleet, pg: PostgresServer
) -> None:
    fleet = make_fleet()
    p = fleet.nemesis.freeze_mid_tx()
    assert stopped(fleet.worker(p.worker).os_pid)
    backend = fleet.worker(p.worker).backend_pid
    assert backend is not None
    row = activity(pg, backend)
    assert row is not None
    assert row[0] == "idle in transaction"
    fleet.thaw(p.worker)  # sends continue: it commits
    assert p.wait().ok
    with psycopg.connect(pg.app_dsn) as conn:
        assert conn.execute("SELECT n FROM hot WHERE id = 1").fetchone() == (1,)


def test_freeze_mid_reap_holds_the_leader_lock(make_fleet: MakeFleet, pg: PostgresServer) -> None:
    fleet = make_fleet()
    p = fleet.nemesis.freeze_mid_reap(pause_at="locked")
    assert stopped(fleet.worker(p.worker).os_pid)
    backend = fleet.worker(p.worker).backend_pid
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        # The lease's own key (LeaseConfig.lock_namespace); the pass also holds
        # pg-aequor's key when free (harness/lease/README.md, "Mixed fleets").
        locks = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s AND granted"
            " AND classid = %s::bigint::oid",
            (backend, 0x6C656173),
        ).fetchone()
    assert locks == (1,)
    fleet.thaw(p.worker)
    r = p.wait()
    assert r.ok
    assert r.result == {"decisions": []}


# ------------------------------------------------------------------ network faults


def test_ack_lost_write_is_info_or_fail_and_leaves_at_most_one_row(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet()
    assert fleet.invoke("read").ok  # warm: connected, lease fresh
    r = fleet.nemesis.ack_lost(f="write", timeout_ms=300)
    assert r.type in ("info", "fail"), r
    state = fleet.data.final_state()
    rows = state.ledger_counts.get(r.op, 0)
    assert rows <= 1
    assert r.type == "info" or rows == 0
    assert state.counter == state.ledger_rows
    # The link is healed: the same worker's next write goes through.
    after = fleet.invoke("write")
    assert after.ok, after
    assert after.worker == "w1", after


@pytest.mark.parametrize("mode", ["reset_peer", "disable"])
def test_socket_reset_mid_read_ends_the_op_and_the_worker_recovers(
    make_fleet: MakeFleet, mode: str
) -> None:
    fleet = make_fleet()
    p = fleet.start("slow_read", seconds=0.3)
    fleet.nemesis.socket_reset(p, mode=mode)  # type: ignore[arg-type]
    r = p.wait()
    assert r.type in ("ok", "fail"), r  # a read is idempotent: never info
    assert fleet.invoke("read").ok
    faults = [e for e in load_history(fleet.history.path) if isinstance(e, FaultEvent)]
    assert any(e.f == "socket_reset" and e.value["mode"] == mode for e in faults)


def test_terminate_backend_and_the_worker_reconnects(
    make_fleet: MakeFleet, pg: PostgresServer
) -> None:
    fleet = make_fleet()
    assert fleet.invoke("read").ok
    victim = fleet.nemesis.terminate_backend("w1")
    assert victim is not None
    wait_until(lambda: activity(pg, victim) is None, "the terminated backend to end")
    r = fleet.invoke("read")
    assert r.ok
    assert r.backend_pid != victim


# ------------------------------------------------------------------ lifecycle and history


def test_worker_dying_at_init_is_recorded_as_a_crash(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(client_class="harness.lease:NoSuchClient")
    r = fleet.invoke("read")
    assert r.type == "fail"
    assert r.error is not None
    assert r.error.cls == "WorkerCrashed"
    crashes = [
        e for e in load_history(fleet.history.path) if isinstance(e, WorkerEvent) and e.f == "crash"
    ]
    assert len(crashes) == 1
    assert crashes[0].exitcode == 1
    assert "NoSuchClient" in (crashes[0].detail or "")


def test_history_has_the_expected_events(make_fleet: MakeFleet) -> None:
    fleet = make_fleet()
    w = fleet.invoke("write", amount=5)
    fleet.invoke("burst", n=3)
    p = fleet.nemesis.freeze_mid_query(seconds=0.2)
    fleet.thaw("w1")
    assert p.wait().ok
    fleet.reclaim("w1")
    fleet.close()
    events = load_history(fleet.history.path)
    assert validate(events) == []
    kinds = [(type(e).__name__, getattr(e, "f", None)) for e in events]
    assert kinds[0] == ("WorkerEvent", "spawn")
    ops = [e for e in events if isinstance(e, OpEvent)]
    assert [(e.type, e.f) for e in ops] == [
        ("invoke", "write"),
        ("ok", "write"),
        ("invoke", "burst"),
        ("ok", "burst"),
        ("invoke", "slow_read"),
        ("ok", "slow_read"),
    ]
    assert ops[0].value == {"op_id": w.op, "amount": 5}
    assert ops[0].lease_valid is True
    assert all(e.process == 0 and e.worker == "w1" for e in ops)
    assert any(isinstance(e, BackendEvent) and e.worker == "w1" for e in events)
    faults = [(e.f, e.value.get("cause")) for e in events if isinstance(e, FaultEvent)]
    assert ("freeze", "idle") in faults
    assert ("thaw", "invoke") in faults
    assert ("freeze_mid_query", "fault") in faults
    assert faults[-1][0] == "reclaim"
    assert not any(isinstance(e, WorkerEvent) and e.f in ("exit", "crash") for e in events)
    assert all(a.time <= b.time for a, b in itertools.pairwise(ops))


def test_interrupted_run_tears_down_frozen_and_paused_workers(
    pg: PostgresServer, toxiproxy: ToxiproxyServer, tmp_path: Path
) -> None:
    """Ctrl-C in the middle of a schedule: frozen workers are thawed before they are
    killed, paused ones are ended, the proxies are deleted, nothing is left behind."""
    config = FleetConfig(lease=lease("ft-interrupted"), max_workers=3)
    before = toxiproxy.proxy_names()
    pids: list[int] = []

    def interrupted_mid_schedule() -> None:
        with Fleet(pg, toxiproxy, tmp_path / "h.jsonl", config) as f:
            f.nemesis.freeze_mid_tx()
            f.nemesis.freeze_mid_query(seconds=30.0)
            p = f.start("long_tx")
            f.log.wait_paused(p.worker, "tx", after=p.since)  # paused, not frozen
            pids.extend(f.worker(w).os_pid for w in f.worker_names())
            assert len(pids) == 3
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_mid_schedule()
    assert not any(alive(pid) for pid in pids)
    assert toxiproxy.proxy_names() == before
    assert_no_leftover_processes()
    exits = [
        e
        for e in load_history(tmp_path / "h.jsonl")
        if isinstance(e, WorkerEvent) and e.f != "spawn"
    ]
    assert sorted(e.worker for e in exits) == ["w1", "w2", "w3"]
    assert all(e.f == "exit" for e in exits)
