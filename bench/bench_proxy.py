"""What a fault proxy costs PostgreSQL traffic: faultproxy against a direct connection,
and against a real ``toxiproxy-server`` (measured beside it when there is one, else
its figures recorded on this machine).

Side by side in one run, on one throwaway ``LocalCluster``:

- ``SELECT 1`` round trips (after a warm-up), direct and through each proxy with
  no toxic, in interleaved blocks (ABAB) so that drift hits all alike: p50s and
  the p50 each proxy adds over direct; the spread is the quartiles of the added
  p50 over the blocks;
- a bulk read of about 100 MB (``COPY (SELECT ... generate_series) TO STDOUT``),
  direct and proxied, interleaved likewise: MB/s and the share of direct kept.

The real server. None can be installed on this machine, so unless one is on
``PATH`` or at ``TOXIPROXY_SERVER`` (then it is measured in the same run, and its
figures are the goals) the goals are what toxiproxy-server 2.8.0 did here, side
by side with faultproxy, earlier (``RECORDED_REAL``): +94 to +107 µs at p50 over
a direct p50 of 65 to 84 µs, and 0.62 to 0.96 of direct's bulk throughput.
The headline names which it is. Those recorded figures come from a busier time
of this shared machine (direct was 65 to 84 µs; see the run's own direct p50 in
its headline), so a goal met against them is only as good as that comparison.

Goals (``bench.goals``): faultproxy adds no more at p50 than the real server
(about 95 µs here), with a floor of 1.1 times it; and keeps at least the real
server's share of bulk throughput (measured beside it, or 0.79, the middle of
its recorded 0.62 to 0.96; the note says how the run compares with its best).

Reading the figures: on a 2-core machine the direct p50 is bimodal from run to
run (about 20 or about 30 µs lately, depending on where the scheduler has put
the client and its backend), and the bulk figures vary by tens of percent from
run to run; compare several runs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import psycopg

from bench.goals import headline
from harness.infra.postgres import LocalCluster
from harness.infra.toxiproxy import ServerKind, ToxiproxyServer

ROUND_TRIPS = 5000
BLOCK = 250
WARMUP = 500
BULK_ROWS = 100_000
ROW_BYTES = 1000
BULK_REPEATS = 9
FLOOR_FACTOR = 1.10

RECORDED_REAL: dict[str, Any] = {
    "version": "2.8.0",
    "added_us_p50": (94.0, 107.0),
    "direct_p50_us": (65.0, 84.0),
    "throughput_share": (0.62, 0.96),
}
"""toxiproxy-server 2.8.0 measured on this machine beside faultproxy (several runs)."""
RECORDED_GOAL_ADDED_US = 95.0
"""The brief's "about 95 µs over direct": the low end of the recorded range."""

COPY_SQL = f"COPY (SELECT repeat('x', {ROW_BYTES}) FROM generate_series(1, {BULK_ROWS})) TO STDOUT"


def _select_block(conn: psycopg.Connection[Any], n: int, into: list[float]) -> None:
    with conn.cursor() as cur:
        for _ in range(n):
            start = time.perf_counter_ns()
            cur.execute("SELECT 1")
            cur.fetchone()
            into.append((time.perf_counter_ns() - start) / 1000.0)


def _bulk(conn: psycopg.Connection[Any]) -> float:
    """MB/s of one ~100 MB COPY TO STDOUT."""
    total = 0
    start = time.perf_counter()
    with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        for block in copy:
            total += len(block)
    elapsed = time.perf_counter() - start
    return total / elapsed / 1e6


def _measure(
    dsns: dict[str, str], progress: Callable[[str], None]
) -> tuple[dict[str, list[list[float]]], dict[str, list[float]]]:
    """Per subject: the SELECT 1 samples (µs) of each block, and the MB/s of each bulk read."""
    conns = {name: psycopg.connect(dsn, autocommit=True) for name, dsn in dsns.items()}
    try:
        blocks: dict[str, list[list[float]]] = {name: [] for name in conns}
        for conn in conns.values():
            _select_block(conn, WARMUP, [])
        progress(f"SELECT 1 x {ROUND_TRIPS} per subject, blocks of {BLOCK}, interleaved")
        for _ in range(ROUND_TRIPS // BLOCK):
            for name, conn in conns.items():
                block: list[float] = []
                _select_block(conn, BLOCK, block)
                blocks[name].append(block)
        rates: dict[str, list[float]] = {name: [] for name in conns}
        for conn in conns.values():
            _bulk(conn)  # warm-up
        progress(f"bulk COPY of {BULK_ROWS * ROW_BYTES / 1e6:.0f} MB x {BULK_REPEATS}, interleaved")
        for _ in range(BULK_REPEATS):
            for name, conn in conns.items():
                rates[name].append(_bulk(conn))
        return blocks, rates
    finally:
        for conn in conns.values():
            conn.close()


def _real_server_available() -> bool:
    return bool(os.environ.get("TOXIPROXY_SERVER") or shutil.which("toxiproxy-server"))


def _quartiles(xs: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def _added_per_block(blocks: dict[str, list[list[float]]], kind: str) -> list[float]:
    return [
        statistics.median(mine) - statistics.median(direct)
        for mine, direct in zip(blocks[kind], blocks["direct"], strict=True)
    ]


def _subject_figures(
    kind: str,
    blocks: dict[str, list[list[float]]],
    rates: dict[str, list[float]],
    p50: dict[str, float],
    rate: dict[str, float],
) -> dict[str, Any]:
    """One proxy's figures against direct, measured in the same blocks."""
    key = "faultproxy" if kind == "faultproxy" else "toxiproxy"
    low, high = _quartiles(_added_per_block(blocks, kind))
    return {
        f"{key}_p50_us": round(p50[kind], 1),
        f"{key}_added_us_p50": round(p50[kind] - p50["direct"], 1),
        f"{key}_added_us_per_block_q1_q3": [round(low, 1), round(high, 1)],
        f"{key}_mb_s": round(rate[kind], 1),
        f"{key}_throughput_share": round(rate[kind] / rate["direct"], 3),
        f"{key}_throughput_share_min_max": [
            round(min(rates[kind]) / rate["direct"], 3),
            round(max(rates[kind]) / rate["direct"], 3),
        ],
    }


def run(progress: Callable[[str], None]) -> dict[str, Any]:
    with ExitStack() as stack:
        progress("starting PostgreSQL")
        pg = stack.enter_context(LocalCluster(max_connections=20))
        kinds: list[ServerKind] = ["faultproxy"]
        if _real_server_available():
            kinds.append("toxiproxy-server")
        dsns = {"direct": pg.app_dsn}
        versions: dict[str, str] = {}
        for kind in kinds:
            server = stack.enter_context(ToxiproxyServer(kind=kind))
            versions[kind] = server.version
            proxy = server.create_proxy(f"bench_{kind.replace('-', '_')}", (pg.host, pg.port))
            dsns[kind] = pg.dsn(host=proxy.host, port=proxy.port)
        progress(f"subjects: {', '.join(dsns)}")
        blocks, rates = _measure(dsns, progress)

    p50 = {name: statistics.median([x for b in bs for x in b]) for name, bs in blocks.items()}
    rate = {name: statistics.median(r) for name, r in rates.items()}
    figures: dict[str, Any] = {
        "round_trips": ROUND_TRIPS,
        "bulk_mb": BULK_ROWS * ROW_BYTES / 1e6,
        "bulk_repeats": BULK_REPEATS,
        "direct_p50_us": round(p50["direct"], 1),
        "direct_mb_s": round(rate["direct"], 1),
        "versions": versions,
        "recorded_real": RECORDED_REAL,
    }
    for kind in kinds:
        figures.update(_subject_figures(kind, blocks, rates, p50, rate))
    added = figures["faultproxy_added_us_p50"]
    share = figures["faultproxy_throughput_share"]
    figures["added_us_p50"] = added
    figures["throughput_share"] = share

    side_by_side = "toxiproxy-server" in kinds
    if side_by_side:
        real_added = max(figures["toxiproxy_added_us_p50"], 0.1)
        real_share = figures["toxiproxy_throughput_share"]
        against = f"toxiproxy-server {versions['toxiproxy-server']} measured side by side"
        figures["added_us_ratio_vs_toxiproxy"] = round(added / real_added, 2)
        figures["throughput_ratio_vs_toxiproxy"] = round(
            rate["faultproxy"] / rate["toxiproxy-server"], 3
        )
    else:
        real_added = RECORDED_GOAL_ADDED_US
        real_share = statistics.mean(RECORDED_REAL["throughput_share"])
        against = (
            f"no real server here: toxiproxy-server {RECORDED_REAL['version']}'s figure recorded "
            f"on this machine (+94-107 us over a direct p50 of 65-84 us then; "
            f"{figures['direct_p50_us']} us in this run)"
        )
    figures["goal_against"] = against
    figures["floor"] = {"added_us_p50_max": round(FLOOR_FACTOR * real_added, 1)}
    figures["floor_ok"] = added <= FLOOR_FACTOR * real_added
    q1, q3 = figures["faultproxy_added_us_per_block_q1_q3"]
    low_share, high_share = figures["faultproxy_throughput_share_min_max"]
    figures["headlines"] = [
        headline(
            "proxy.added_p50_us",
            added,
            goal=round(real_added, 1),
            unit="us",
            note=f"faultproxy over direct; per block q1-q3 {q1}-{q3} us; goal: {against}",
        ),
        headline(
            "proxy.added_p50_vs_real",
            round(added / real_added, 3),
            goal=FLOOR_FACTOR,
            note="the floor: at most 1.1 times the real server's added p50"
            + ("" if side_by_side else f" (its recorded {RECORDED_GOAL_ADDED_US:.0f} us)"),
        ),
        headline(
            "proxy.bulk_share",
            share,
            goal=round(real_share, 3),
            op=">=",
            note=(
                f"of direct's {figures['direct_mb_s']} MB/s, median of {BULK_REPEATS} "
                f"(min-max {low_share}-{high_share}); goal: the real server's share"
                + (
                    ""
                    if side_by_side
                    else f", the middle of its recorded 0.62-0.96 "
                    f"({'at or above' if share >= 0.96 else 'below'} its best, 0.96)"
                )
            ),
        ),
        headline(
            "proxy.direct_p50_us",
            figures["direct_p50_us"],
            op="info",
            unit="us",
            note="the baseline both are measured over",
        ),
    ]
    if side_by_side:
        figures["headlines"].append(
            headline(
                "proxy.toxiproxy_added_p50_us",
                figures["toxiproxy_added_us_p50"],
                op="info",
                unit="us",
                note=f"toxiproxy-server {versions['toxiproxy-server']}, same run",
            )
        )
    progress(
        f"faultproxy adds {added} µs at p50 and keeps {share:.0%} of direct throughput "
        f"(against {against})"
    )
    return figures
