"""The lease client's cost next to plain psycopg, and the reaper's cost per pass.

Figures (measured side by side, interleaved, on a LocalCluster of its own):

- ``connect``: ``LeaseClient(...).connect()`` vs ``psycopg.connect()``, each followed by
  close, with the default config (so a reaper pass runs on ~10% of connects); p50 and
  mean, and their ratios (goal: <= 1.10).
- ``select1``: ``SELECT 1``, lease client vs plain psycopg on the same connection
  (and on one of its own); p50 and ratio (goal: <= 1.05). The ratio that counts is
  the same-connection one, against ``conn.execute(...).fetchall()``, what plain
  psycopg code does. The client reuses one cursor per connection, which saves the
  ~2.4 us of psycopg's ``conn.execute`` making a cursor each time, so that ratio can
  be below 1; the cost of the lease logic itself (lock, fencing check, liveness poll)
  is the ratio against plain psycopg reusing a cursor the same way, also reported.
  The own-connection figure is not a property of the connections: measured one at a
  time they are equal (88 vs 91 us p50 on this machine); interleaved, two backends
  trade the two cores and the one that is used twice in a row answers faster.
- ``reap``: one reaper pass that kills 1, 50 and 200 zombies; median of the rounds,
  per-zombie time and growth relative to the 1-zombie pass (no goal is set for these).

Every figure is also a headline (:mod:`bench.goals`) in ``figures["headlines"]``:
``MET``/``MISSED`` against its goal, or ``INFO`` where there is none.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.goals import headline
from harness.infra.postgres import LocalCluster
from harness.lease import LeaseClient, LeaseConfig, token

SECRET = "bench-secret-0123456789abcdef"
CONNECT_ROUNDS = 300
SELECT_ROUNDS = 5000
REAP_SIZES = (1, 50, 200)
REAP_ROUNDS = 3
CONNECT_GOAL = 1.10
SELECT1_GOAL = 1.05


def _p50(xs: list[float]) -> float:
    return statistics.median(xs)


def _ms(x: float) -> float:
    return round(x * 1000, 4)


def _us(x: float) -> float:
    return round(x * 1_000_000, 2)


def bench_connect(dsn: str, progress: Callable[[str], None]) -> dict[str, Any]:
    cfg = LeaseConfig(service="bench-connect", secret=SECRET)  # defaults: p = 0.1
    plain: list[float] = []
    lease: list[float] = []
    for i in range(CONNECT_ROUNDS):
        t0 = time.perf_counter()
        conn = psycopg.connect(dsn, autocommit=True)
        plain.append(time.perf_counter() - t0)
        conn.close()
        t0 = time.perf_counter()
        client = LeaseClient(dsn, cfg)
        client.connect()
        lease.append(time.perf_counter() - t0)
        client.close()
        if i % 100 == 99:
            progress(f"connect: {i + 1}/{CONNECT_ROUNDS}")
    return {
        "rounds": CONNECT_ROUNDS,
        "reap_probability": cfg.reap_probability,
        "plain_p50_ms": _ms(_p50(plain)),
        "lease_p50_ms": _ms(_p50(lease)),
        "plain_mean_ms": _ms(statistics.fmean(plain)),
        "lease_mean_ms": _ms(statistics.fmean(lease)),
        "ratio_p50": round(_p50(lease) / _p50(plain), 4),
        "ratio_mean": round(statistics.fmean(lease) / statistics.fmean(plain), 4),
        "goal_ratio": CONNECT_GOAL,
    }


def bench_select1(dsn: str, progress: Callable[[str], None]) -> dict[str, Any]:
    """Four subjects, interleaved with the order rotated every round: the lease client,
    plain psycopg on the lease client's own connection (same backend: isolates the
    client's overhead), the same with one reused cursor (isolates the lease logic
    from the cursor reuse), and plain psycopg on a connection of its own."""
    cfg = LeaseConfig(service="bench-select", secret=SECRET)
    lease: list[float] = []
    same: list[float] = []
    reused: list[float] = []
    other: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as conn, LeaseClient(dsn, cfg) as client:
        client.connect()
        own = client._conn  # the very connection the client uses
        assert own is not None

        def run_lease() -> None:
            client.execute("SELECT 1")

        def run_same() -> None:
            own.execute("SELECT 1").fetchall()

        own_cursor = own.cursor()

        def run_reused() -> None:
            own_cursor.execute("SELECT 1").fetchall()

        def run_other() -> None:
            conn.execute("SELECT 1").fetchall()

        subjects = [(run_lease, lease), (run_same, same), (run_reused, reused), (run_other, other)]
        for _ in range(200):  # warm up (psycopg prepares after 5 executions)
            for fn, _xs in subjects:
                fn()
        for i in range(SELECT_ROUNDS):
            k = i % len(subjects)
            for fn, xs in subjects[k:] + subjects[:k]:
                t0 = time.perf_counter()
                fn()
                xs.append(time.perf_counter() - t0)
            if i % 2500 == 2499:
                progress(f"select1: {i + 1}/{SELECT_ROUNDS}")
    return {
        "rounds": SELECT_ROUNDS,
        "lease_p50_us": _us(_p50(lease)),
        "plain_same_connection_p50_us": _us(_p50(same)),
        "plain_reused_cursor_p50_us": _us(_p50(reused)),
        "plain_own_connection_p50_us": _us(_p50(other)),
        "ratio_p50": round(_p50(lease) / _p50(same), 4),
        "ratio_p50_vs_reused_cursor": round(_p50(lease) / _p50(reused), 4),
        "ratio_p50_vs_own_connection": round(_p50(lease) / _p50(other), 4),
        "goal_ratio": SELECT1_GOAL,
    }


def bench_reap(dsn: str, progress: Callable[[str], None]) -> dict[str, Any]:
    service = "bench-reap"
    cfg = LeaseConfig(
        service=service,
        secret=SECRET,
        lease_ttl=60.0,
        min_idle=0.0,
        max_kills=max(REAP_SIZES),
        reap_probability=0.0,
    )
    times: dict[int, list[float]] = {n: [] for n in REAP_SIZES}
    with LeaseClient(dsn, cfg) as reaper, psycopg.connect(dsn, autocommit=True) as watch:
        reaper.connect()
        for rnd in range(REAP_ROUNDS):
            for n in REAP_SIZES:  # interleaved: every size in every round
                expired = int((time.time() - 120) * 1000)
                zombies = [
                    psycopg.connect(
                        dsn,
                        autocommit=True,
                        application_name=token.encode(
                            service, token.new_instance(), expired, SECRET
                        ),
                    )
                    for _ in range(n)
                ]
                t0 = time.perf_counter()
                ledger = reaper.reap_now()
                times[n].append(time.perf_counter() - t0)
                killed = sum(1 for e in ledger if e["result"] == "killed")
                if killed != n:
                    raise RuntimeError(f"reap bench: killed {killed} of {n} zombies")
                for z in zombies:
                    z.close()
                _wait_no_backends(watch, service)
            progress(f"reap: round {rnd + 1}/{REAP_ROUNDS}")
    med = {n: _p50(ts) for n, ts in times.items()}
    base = med[REAP_SIZES[0]]
    return {
        "rounds": REAP_ROUNDS,
        "pass_ms": {str(n): _ms(t) for n, t in med.items()},
        "per_zombie_ms": {str(n): _ms(t / n) for n, t in med.items()},
        "growth_vs_1": {str(n): round(t / base, 2) for n, t in med.items()},
    }


def _wait_no_backends(conn: psycopg.Connection[Any], service: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    pattern = token.like_pattern(service)
    while True:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s ESCAPE '\\' "
            "AND pid <> pg_backend_pid()",
            (pattern,),
        ).fetchone()
        # the reaper's own connection carries the service's lease too
        if row is not None and row[0] <= 1:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("reap bench: zombies did not exit")
        time.sleep(0.01)


def run(progress: Callable[[str], None]) -> dict[str, Any]:
    progress("starting a LocalCluster (max_connections=260)")
    with LocalCluster(max_connections=260) as pg:
        dsn = pg.app_dsn
        figures: dict[str, Any] = {}
        figures["connect"] = bench_connect(dsn, progress)
        figures["select1"] = bench_select1(dsn, progress)
        figures["reap"] = bench_reap(dsn, progress)
    figures["headlines"] = headlines(figures)
    return figures


def headlines(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One headline per figure of :func:`run`, against its goal where it has one."""
    c, s, r = figures["connect"], figures["select1"], figures["reap"]
    out = [
        headline(
            "lease.connect_p50_ratio",
            c["ratio_p50"],
            goal=CONNECT_GOAL,
            note=f"LeaseClient.connect() vs psycopg.connect(), p50 of {c['rounds']}",
        ),
        headline(
            "lease.connect_mean_ratio",
            c["ratio_mean"],
            goal=CONNECT_GOAL,
            note=f"the same, mean (reaper pass on ~{c['reap_probability']:.0%} of connects)",
        ),
        headline("lease.connect_p50_ms", c["lease_p50_ms"], op="info", unit="ms"),
        headline("lease.connect_plain_p50_ms", c["plain_p50_ms"], op="info", unit="ms"),
        headline(
            "lease.select1_p50_ratio",
            s["ratio_p50"],
            goal=SELECT1_GOAL,
            note="vs plain psycopg conn.execute() on the same connection",
        ),
        headline(
            "lease.select1_p50_ratio_vs_reused_cursor",
            s["ratio_p50_vs_reused_cursor"],
            op="info",
            note="the lease logic alone: plain psycopg reusing one cursor, same connection",
        ),
        headline(
            "lease.select1_p50_ratio_vs_own_connection",
            s["ratio_p50_vs_own_connection"],
            op="info",
            note="not a property of the client (see bench_lease)",
        ),
        headline("lease.select1_p50_us", s["lease_p50_us"], op="info", unit="us"),
        headline(
            "lease.select1_plain_p50_us", s["plain_same_connection_p50_us"], op="info", unit="us"
        ),
    ]
    for n in REAP_SIZES:
        k = str(n)
        out += [
            headline(f"lease.reap_pass_{n}_ms", r["pass_ms"][k], op="info", unit="ms"),
            headline(f"lease.reap_per_zombie_{n}_ms", r["per_zombie_ms"][k], op="info", unit="ms"),
            headline(
                f"lease.reap_growth_{n}_vs_1",
                r["growth_vs_1"][k],
                op="info",
                note="pass time relative to the 1-zombie pass",
            ),
        ]
    return out
