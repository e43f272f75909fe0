"""The property suite's speed: live examples a minute, and how fast each bug is caught.

- ``machine``: the stateful machine over a live fleet on the correct client with
  the ``ci`` profile's settings (fixed seed, five steps an example); examples a
  minute (goal: at least 30 on this 2-core machine). A ``pg_stat_activity``
  sampler runs beside it and reports the rate it held under that load (promise:
  at least 10 samples a second).
- ``zoo``: for each bug-zoo entry, its detector's Hypothesis search against the
  broken client with no example database (so nothing is replayed): seconds until
  the first failing example, seconds until the shrunk failure is reported, the
  number of runs, and which properties failed.

Real PostgreSQL (``LocalCluster``), the Toxiproxy-compatible server, real workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hypothesis import given, seed, settings
from hypothesis.stateful import run_state_machine_as_test

from bench.goals import headline
from harness.chaos.env import ChaosEnv, judge
from harness.chaos.judge import PropertyViolation
from harness.chaos.machine import machine_for
from harness.chaos.profiles import CI_SEED, load_profile
from harness.chaos.steps import Step
from harness.chaos.strategies import DETECTORS
from harness.chaos.zoo import ZOO, Bug
from harness.infra.postgres import LocalCluster
from harness.infra.toxiproxy import ToxiproxyServer
from harness.observe import ActivitySampler

MACHINE_EXAMPLES = 10
GOAL_EXAMPLES_PER_MINUTE = 30


def _machine(env: ChaosEnv, progress: Callable[[str], None]) -> dict[str, Any]:
    started = [0]

    class Counted(machine_for(env)):  # type: ignore[misc]
        def __init__(self) -> None:
            started[0] += 1
            progress(f"machine example {started[0]}")
            super().__init__()

    sampler = ActivitySampler(env.pg.admin_dsn, env.pg.app_db).start()
    t0 = time.monotonic()
    try:
        run_state_machine_as_test(
            seed(CI_SEED)(Counted),
            settings=settings(
                settings.get_profile("ci"),
                max_examples=MACHINE_EXAMPLES,
                stateful_step_count=5,
                database=None,
            ),
        )
    finally:
        elapsed = time.monotonic() - t0
        sampler.stop()
    return {
        "examples": started[0],
        "seconds": round(elapsed, 1),
        "examples_per_minute": round(started[0] / elapsed * 60, 1),
        "goal_examples_per_minute": GOAL_EXAMPLES_PER_MINUTE,
        "sampler_hz_under_load": round(sampler.rate_hz(), 1),
    }


def _detect(env: ChaosEnv, bug: Bug) -> dict[str, Any]:
    runs = [0]
    first_failure: list[float] = []
    t0 = time.monotonic()

    @seed(CI_SEED)
    @settings(settings.get_profile("ci"), database=None)
    @given(DETECTORS[bug.name]())
    def suite(schedule: list[Step]) -> None:
        runs[0] += 1
        try:
            judge(env, schedule, bug)
        except PropertyViolation:
            if not first_failure:
                first_failure.append(time.monotonic() - t0)
            raise

    failed: list[str] = []
    try:
        suite()
    except PropertyViolation as e:
        failed = e.judged.failed
    total = time.monotonic() - t0
    return {
        "expected": bug.expected,
        "caught": bug.expected in failed,
        "failed": failed,
        "first_failure_s": round(first_failure[0], 1) if first_failure else None,
        "reported_after_shrink_s": round(total, 1),
        "runs": runs[0],
    }


def run(progress: Callable[[str], None]) -> dict[str, Any]:
    load_profile()
    with LocalCluster(max_connections=60) as pg, ToxiproxyServer() as proxies:
        env = ChaosEnv(pg, proxies)
        progress("stateful machine, ci settings")
        machine = _machine(env, progress)
        zoo: dict[str, Any] = {}
        for bug in ZOO:
            progress(f"time to detect bug {bug.number}: {bug.name}")
            zoo[f"{bug.number}-{bug.name}"] = _detect(env, bug)
    return {"machine": machine, "zoo": zoo, "headlines": _headlines(machine, zoo)}


def _headlines(machine: dict[str, Any], zoo: dict[str, Any]) -> list[dict[str, Any]]:
    heads = [
        headline(
            "chaos.machine.examples_per_minute",
            machine["examples_per_minute"],
            goal=GOAL_EXAMPLES_PER_MINUTE,
            op=">=",
            note=f"{machine['examples']} examples in {machine['seconds']}s, ci profile",
        ),
        headline(
            "chaos.machine.sampler_hz_under_load",
            machine["sampler_hz_under_load"],
            goal=10,
            op=">=",
            unit="Hz",
        ),
    ]
    for name, z in zoo.items():
        heads.append(
            headline(
                f"chaos.zoo.{name}.caught",
                1.0 if z["caught"] else 0.0,
                goal=1.0,
                op=">=",
                note=f"first failure {z['first_failure_s']}s, reported after shrinking"
                f" {z['reported_after_shrink_s']}s, {z['runs']} runs; failed {z['failed']}",
            )
        )
    return heads
