"""What the fleet scenarios share: run a fixed schedule on a live fleet, judge, report.

Every fleet scenario takes ``client=<name>`` to run a bug-zoo client instead of
the correct one (``python -m scenarios thaw_storm client=reaper_disabled``
exits 1 with the evidence), ``workers=N`` for the concurrency cap, and
``driver=<name>`` for what the workers run (``harness/fleet/drivers.py``: lease,
plain, pool, server_timeout, pgbouncer, lease-pgbouncer, node-pg,
serverless-postgres, ``python:module:Class``, ``node-module:<path|package>``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from harness.chaos.env import ChaosEnv
from harness.chaos.steps import Step
from harness.chaos.zoo import BY_NAME, Bug
from harness.cli import Context, Scenario
from harness.errors import SetupError, UsageError
from harness.fleet.drivers import DriverSpec, driver_spec
from harness.report import ScenarioResult


def _driver(options: dict[str, str]) -> DriverSpec | None:
    """The ``driver=`` option (None: the lease client, as before); a bug-zoo ``client=``
    needs a driver with the lease api."""
    name = options.get("driver")
    if name is None:
        return None
    driver = driver_spec(name)
    if options.get("client", "correct") != "correct" and driver.api != "lease":
        raise UsageError(f"client= replaces the lease client; driver {name!r} has none")
    return driver


def _options(options: dict[str, str]) -> tuple[Bug | None, int]:
    unknown = set(options) - {"client", "workers", "driver"}
    if unknown:
        raise UsageError(f"unknown option {sorted(unknown)[0]!r}; known: client, workers, driver")
    _driver(options)
    name = options.get("client", "correct")
    if name != "correct" and name not in BY_NAME:
        raise UsageError(f"unknown client {name!r}; known: correct, {', '.join(BY_NAME)}")
    try:
        cap = int(options.get("workers", "3"))
    except ValueError:
        bad = options["workers"]
        raise UsageError(f"workers must be a whole number, got {bad!r}") from None
    if not 2 <= cap <= 8:
        raise UsageError(f"workers must be between 2 and 8, got {cap}")
    return (None if name == "correct" else BY_NAME[name]), cap


def _check_options(options: dict[str, str]) -> None:
    _options(options)


def fleet_scenario(name: str, description: str, schedule: Sequence[Step]) -> Scenario:
    """A scenario that runs ``schedule``, settles, and judges P1 to P5."""

    def run(ctx: Context) -> ScenarioResult:
        bug, cap = _options(ctx.options)
        driver = _driver(ctx.options)
        if driver is not None and (why := driver.missing()) is not None:
            raise SetupError(f"driver {driver.name} cannot run here: {why}")
        env = ChaosEnv(ctx.pg, ctx.proxies, cap=cap, driver=driver)
        client = bug.client_class if bug else "the correct client"
        if driver is not None:
            client = f"driver {driver.name}" + (f" ({bug.client_class})" if bug else "")
        ctx.progress(f"{len(schedule)} steps on up to {cap} workers with {client}")
        t0 = time.monotonic()
        with env.begin(bug, run_dir=ctx.run_dir.path) as live:
            for i, step in enumerate(schedule, 1):
                ctx.progress(f"step {i}/{len(schedule)}: {step.describe()}")
                live.apply(step)
            ctx.progress(
                f"settling for {env.timings.bound + env.timings.settle_extra:.1f}s"
                " with invocations still arriving"
            )
            judged = live.finish()
        elapsed = time.monotonic() - t0
        run = judged.run
        return ScenarioResult(
            name,
            judged.verdicts,
            counts={
                "operations": len(run.timeline.ops),
                "reaper_kills": len(run.kills),
                "samples": len(run.samples),
                "steps": len(schedule),
                "terminations": len(run.judged_kills),
            },
            timings={"run_s": round(elapsed, 3), "convergence_bound_s": env.timings.bound},
            notes=judged.story(),
            run=run,
        )

    return Scenario(name, description, run, check_options=_check_options)
