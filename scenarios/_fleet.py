"""What the fleet scenarios share: options, a fixed schedule on a live fleet, judging, report.

Every fleet scenario takes the same options, each validated before anything
starts (a bad one is one line naming it and its allowed values, exit 2):

- ``client``: ``correct`` (the bundled lease client) or a bug-zoo client
  (``python -m scenarios thaw_storm client=reaper_disabled`` exits 1 with the
  evidence), or ``package.module:Class`` — a user's own subclass of
  ``harness.lease.LeaseClient`` (see the README's subclassing contract);
- ``workers``: the concurrency cap (the fleet's most live sandboxes);
- ``seed``: seeds every worker's client randomness (reap jitter, backoff);
- ``duration``: extra seconds the settle phase keeps invocations arriving
  past the convergence bound;
- ``lease_ttl``, ``min_idle``, ``cooldown``, ``grace``: the compressed lease
  timings, in seconds;
- ``preset`` (a provider's limits, see ``thawproof capacity`` and
  ``harness.infra.presets``), or ``max_connections`` and ``reserved``: the server's
  ``max_connections`` and ``superuser_reserved_connections``; P2 then judges
  against what the application role really has on that server.
- ``driver``: what the workers run (``harness/fleet/drivers.py``: lease, plain,
  pool, server_timeout, pgbouncer, lease-pgbouncer, node-pg, serverless-postgres,
  ``python:module:Class``, ``node-module:<path|package>``); the lease client by default;
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.chaos.env import ChaosEnv
from harness.chaos.steps import Step, described_runs
from harness.chaos.timings import Timings
from harness.chaos.zoo import BY_NAME, Bug
from harness.cli import Context, Scenario
from harness.cli.runner import ServerShape
from harness.errors import SetupError, UsageError
from harness.fleet.drivers import DriverSpec, driver_spec
from harness.infra.presets import preset
from harness.report import ScenarioResult

MAX_WORKERS = 600


def _driver(options: Mapping[str, str]) -> DriverSpec | None:
    """The ``driver=`` option (None: the lease client); a bug-zoo or user ``client=``
    needs a driver with the lease api."""
    name = options.get("driver")
    if name is None:
        return None
    driver = driver_spec(name)
    if options.get("client", "correct") != "correct" and driver.api != "lease":
        raise UsageError(f"client= replaces the lease client; driver {name!r} has none")
    return driver


def _number(name: str, raw: str, lo: float, hi: float, *, whole: bool = False) -> float:
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise UsageError(f"{name} must be {kind}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise UsageError(f"{name} must be between {lo:g} and {hi:g}, got {raw}")
    return value


def _client(raw: str) -> Bug | None:
    if raw == "correct":
        return None
    if raw in BY_NAME:
        return BY_NAME[raw]
    module, sep, cls = raw.partition(":")
    if sep and module and cls:
        try:
            obj = importlib.import_module(module)
            for part in cls.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise UsageError(f"client {raw!r} cannot be loaded: {exc}") from None
        from harness.lease import LeaseClient

        if not (isinstance(obj, type) and issubclass(obj, LeaseClient)):
            raise UsageError(f"client {raw!r} is not a subclass of harness.lease.LeaseClient")
        return Bug(0, raw, "a user's client", "", raw)
    known = ", ".join(["correct", *BY_NAME])
    raise UsageError(f"unknown client {raw!r}; known: {known}, or package.module:Class")


TIMING_OPTIONS: dict[str, tuple[str, float, float]] = {
    "lease_ttl": ("lease_ttl", 0.2, 60.0),
    "min_idle": ("min_idle", 0.0, 60.0),
    "cooldown": ("cooldown", 0.0, 60.0),
    "grace": ("reaper_grace", 0.0, 10.0),
}

OPTIONS: dict[str, str] = {
    "client": "correct | <bug-zoo name> | package.module:Class (a LeaseClient subclass)",
    "driver": "what the workers run: lease (default), plain, pool, server_timeout, pgbouncer,"
    " lease-pgbouncer, node-pg, serverless-postgres, python:module:Class, node-module:PATH",
    "workers": f"the concurrency cap, 2 to {MAX_WORKERS}",
    "seed": "an integer that seeds the workers' client randomness",
    "duration": "extra seconds of arriving invocations while settling, 0 to 600 (given, the"
    " settle runs that long, not only until the record decides P2)",
    "lease_ttl": "lease lifetime in seconds, 0.2 to 60",
    "min_idle": "minimum idle time before a reap, seconds, 0 to 60",
    "cooldown": "reaper cooldown, seconds, 0 to 60",
    "grace": "reaper grace past expiry, seconds, 0 to 10",
    "prestart": "yes: a cold-start wave's sandboxes are started before it, so it arrives at"
    " once (default no: they start as it arrives, at this machine's pace)",
    "preset": "a provider's connection limits (thawproof capacity lists them)",
    "max_connections": "the server's max_connections, 5 to 10000",
    "reserved": "its superuser_reserved_connections, 0 to max_connections - 2",
}


def server_shape(options: Mapping[str, str], default: int) -> ServerShape:
    """The server a fleet scenario starts for these options."""
    if "preset" in options and ({"max_connections", "reserved"} & set(options)):
        raise UsageError("preset and max_connections/reserved exclude each other")
    if "preset" in options:
        p = preset(options["preset"])
        return ServerShape(p.max_connections, {"superuser_reserved_connections": p.reserved})
    n = int(
        _number(
            "max_connections", options.get("max_connections", str(default)), 5, 10000, whole=True
        )
    )
    settings: dict[str, str | int] = {}
    if "reserved" in options:
        settings["superuser_reserved_connections"] = int(
            _number("reserved", options["reserved"], 0, n - 2, whole=True)
        )
    return ServerShape(n, settings)


@dataclass(frozen=True)
class FleetOptions:
    bug: Bug | None
    workers: int
    seed: int | None
    driver: DriverSpec | None
    timings: Timings
    prestart: bool = False
    """Cold-start waves' sandboxes started ahead of them (``prestart=yes``)."""


def parse_fleet_options(options: Mapping[str, str], *, workers: int = 3) -> FleetOptions:
    """The validated options (UsageError naming the first bad one)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r}; known: {', '.join(OPTIONS)}")
    bug = _client(options.get("client", "correct"))
    cap = int(_number("workers", options.get("workers", str(workers)), 2, MAX_WORKERS, whole=True))
    seed = options.get("seed")
    seeded = None if seed is None else int(_number("seed", seed, 0, 2**63 - 1, whole=True))
    changes: dict[str, Any] = {}
    for key, (field_name, lo, hi) in TIMING_OPTIONS.items():
        if key in options:
            changes[field_name] = _number(key, options[key], lo, hi)
    if "duration" in options:
        changes["settle_extra"] = _number("duration", options["duration"], 0, 600)
        changes["settle_early"] = False  # asked to watch that long: it does
    driver = _driver(options)
    prestart = options.get("prestart", "no")
    if prestart not in ("yes", "no"):
        raise UsageError(f"prestart must be yes or no, got {prestart!r}")
    return FleetOptions(
        bug,
        cap,
        seeded,
        driver,
        dataclasses.replace(Timings.for_fleet(cap), **changes),
        prestart=prestart == "yes",
    )


def fleet_scenario(
    name: str,
    description: str,
    schedule: Sequence[Step] | Callable[[FleetOptions], Sequence[Step]],
    *,
    workers: int = 3,
    max_connections: int = 40,
    judges: str = "P1-P7",
) -> Scenario:
    """A scenario that runs ``schedule`` (or builds it from the options), settles, and
    judges the properties."""

    def build(opts: FleetOptions) -> Sequence[Step]:
        return schedule(opts) if callable(schedule) else schedule

    def run(ctx: Context) -> ScenarioResult:
        opts = parse_fleet_options(ctx.options, workers=workers)
        steps = build(opts)
        if opts.driver is not None and (why := opts.driver.missing()) is not None:
            raise SetupError(f"driver {opts.driver.name} cannot run here: {why}")
        env = ChaosEnv(
            ctx.pg,
            ctx.proxies,
            cap=opts.workers,
            timings=opts.timings,
            seed=opts.seed,
            clock_start=ctx.progress.started,
            driver=opts.driver,
        )
        client = opts.bug.client_class if opts.bug else "the correct client"
        if opts.driver is not None:
            client = f"driver {opts.driver.name}" + (f" ({client})" if opts.bug else "")
        ctx.progress(
            f"{len(steps)} steps on up to {opts.workers} workers with {client};"
            f" the service may hold {env.limit} backends"
        )
        t0 = time.monotonic()
        with env.begin(opts.bug, run_dir=ctx.run_dir.path) as live:
            for first, last, text in described_runs(steps):
                span = f"{first}" if first == last else f"{first}-{last}"
                times = "" if first == last else f" (x{last - first + 1})"
                ctx.progress(f"step {span}/{len(steps)}: {text}{times}")
                for step in steps[first - 1 : last]:
                    live.apply(step)
            t = env.timings
            upto = "up to " if env.settles_early else ""
            ctx.progress(
                f"settling for {upto}{t.bound + t.settle_extra:.1f}s with invocations still"
                " arriving" + (" (until the record decides P2)" if upto else "")
            )
            judged = live.finish()
        run = judged.run
        return ScenarioResult(
            name,
            judged.verdicts,
            counts={
                "operations": len(run.timeline.ops),
                "reaper_kills": len(run.kills),
                "samples": len(run.samples),
                "steps": len(steps),
                "terminations": len(run.judged_kills),
            },
            timings={
                "run_s": round(time.monotonic() - t0, 3),
                "convergence_bound_s": env.timings.bound,
            },
            notes=judged.story(),
            run=run,
        )

    def check(options: dict[str, str]) -> None:
        build(parse_fleet_options(options, workers=workers))
        server_shape(options, max_connections)

    return Scenario(
        name,
        description,
        run,
        max_connections=max_connections,
        check_options=check,
        options=OPTIONS,
        judges=judges,
        server=lambda options: server_shape(options, max_connections),
    )
