"""Fleet costs: a worker's cold start, and one invocation's round trip through the pipe.

- ``cold_start``: from ``invoke`` on a fleet with no idle worker to the first
  query's result (proxy created, process forked by the forkserver, client built,
  connection opened through the proxy, ``SELECT count(*)``). The very first one
  also starts the forkserver and is reported apart.
- ``round_trip``: an invocation on a warm worker, three ways: ``noop`` (``burst``
  of 0 queries: the pipe alone) with and without the Lambda parking (SIGCONT
  before, SIGSTOP after, each waited for in /proc), and ``read`` (parked, one
  query through the proxy).

- ``node_*``: the same two figures for a Node worker (``node-pg``: node-postgres
  behind the Node runtime, a program of its own on stdin/stdout), beside the Python
  worker's, when node and ``make node-drivers`` are there.

Real PostgreSQL (``LocalCluster``) and the session's Toxiproxy-compatible server.
Headlines (:mod:`bench.goals`): cold start and round trip for both, and their ratio.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.goals import headline
from harness.fleet import Fleet, FleetConfig, assert_no_leftover_processes
from harness.fleet.drivers import DRIVERS, DriverSpec
from harness.history import OpF
from harness.infra.postgres import LocalCluster
from harness.infra.toxiproxy import ToxiproxyServer

COLD_SAMPLES = 20
RT_SAMPLES = 500

LEASE: dict[str, Any] = {
    "service": "bench-fleet",
    "secret": "bench-fleet-secret-0123456789",
    "lease_ttl": 30.0,
    "reap_probability": 0.0,
}


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000.0

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000.0, 3),
        "p90_ms": round(q(0.90), 3),
        "p99_ms": round(q(0.99), 3),
        "min_ms": round(ordered[0] * 1000.0, 3),
    }


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _invoker(fleet: Fleet, f: OpF, args: dict[str, Any]) -> Callable[[], None]:
    return lambda: _check(fleet.invoke(f, **args))


def _check(result: Any) -> None:
    if not result.ok:
        raise RuntimeError(f"bench invocation failed: {result}")


def run(progress: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp,
        LocalCluster(max_connections=40) as pg,
        ToxiproxyServer() as proxy,
    ):
        out["proxy_server"] = proxy.kind
        progress("fleet: cold starts")
        config = FleetConfig(lease=LEASE, max_workers=1, run_id="bench-cold")
        with Fleet(pg, proxy, Path(tmp) / "cold.jsonl", config) as fleet:
            cold: list[float] = []
            for i in range(COLD_SAMPLES + 1):
                t = _timed(lambda: _check(fleet.invoke("read")))
                if i == 0:
                    out["first_cold_start_ms"] = round(t * 1000.0, 3)
                else:
                    cold.append(t)
                fleet.reclaim(fleet.worker_names()[0])
            out["cold_start"] = _stats(cold)

        rounds: tuple[tuple[str, bool, OpF, dict[str, Any]], ...] = (
            ("noop_parked", True, "burst", {"n": 0}),
            ("noop_unparked", False, "burst", {"n": 0}),
            ("read_parked", True, "read", {}),
        )
        for name, parked, f, args in rounds:
            progress(f"fleet: round trips ({name})")
            config = FleetConfig(
                lease=LEASE, max_workers=1, freeze_idle=parked, run_id=f"bench-{name}"
            )
            with Fleet(pg, proxy, Path(tmp) / f"{name}.jsonl", config) as fleet:
                _check(fleet.invoke("read"))  # warm
                samples = [_timed(_invoker(fleet, f, args)) for _ in range(RT_SAMPLES)]
            out[f"round_trip_{name}"] = _stats(samples)
        node = DRIVERS["node-pg"]
        why = node.missing()
        if why is None:
            progress("fleet: a Node worker (node-pg): cold starts and round trips")
            out.update(_node(pg, proxy, Path(tmp), node))
        else:
            out["node_skipped"] = why
        assert_no_leftover_processes()
    out["headlines"] = headlines(out)
    return out


def _node(pg: LocalCluster, proxy: ToxiproxyServer, tmp: Path, node: DriverSpec) -> dict[str, Any]:
    """A Node worker's cold start and parked round trip, measured as the Python one's."""
    out: dict[str, Any] = {}
    config = FleetConfig(lease=LEASE, max_workers=1, run_id="bench-node-cold", driver=node)
    with Fleet(pg, proxy, tmp / "node-cold.jsonl", config) as fleet:
        cold = []
        for _ in range(COLD_SAMPLES):
            cold.append(_timed(lambda: _check(fleet.invoke("read"))))
            fleet.reclaim(fleet.worker_names()[0])
        out["node_cold_start"] = _stats(cold)
    config = FleetConfig(lease=LEASE, max_workers=1, run_id="bench-node-rt", driver=node)
    with Fleet(pg, proxy, tmp / "node-rt.jsonl", config) as fleet:
        _check(fleet.invoke("read"))
        samples = [_timed(_invoker(fleet, "burst", {"n": 0})) for _ in range(RT_SAMPLES)]
        out["node_round_trip_noop_parked"] = _stats(samples)
    return out


def headlines(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Cold start and round trip, Python worker beside Node worker."""
    py_cold = out.get("cold_start", {}).get("p50_ms")
    py_rt = out.get("round_trip_noop_parked", {}).get("p50_ms")
    node_cold = out.get("node_cold_start", {}).get("p50_ms")
    node_rt = out.get("node_round_trip_noop_parked", {}).get("p50_ms")
    why = str(out.get("node_skipped", ""))
    hs = [
        headline("fleet.cold_start_p50_ms", py_cold, goal=50.0, unit="ms"),
        headline("fleet.round_trip_noop_parked_p50_ms", py_rt, goal=5.0, unit="ms"),
        headline("fleet.node_cold_start_p50_ms", node_cold, goal=250.0, unit="ms", note=why),
        headline(
            "fleet.node_round_trip_noop_parked_p50_ms", node_rt, goal=5.0, unit="ms", note=why
        ),
    ]
    if py_rt and node_rt:
        hs.append(headline("fleet.node_vs_python_round_trip", round(node_rt / py_rt, 3), op="info"))
    return hs
