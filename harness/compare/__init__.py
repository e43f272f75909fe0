"""``make compare``: the same scenarios and seeds against every driver, and the report.

The question users bring is not "does the lease client work" but "what should my
serverless code do about PostgreSQL connections?". :func:`run_compare` runs each
scenario once per seed with each driver (``driver=`` of the fleet scenarios), each
run in its own directory under ``<out_dir>/runs/``, then computes every figure
from the recorded runs (:mod:`harness.compare.aggregate`) and writes
``compare.md``, ``index.html``, ``compare.json`` and a plot per driver
(:mod:`harness.compare.render`).

Seeds: the scenarios are fixed schedules and real processes are not
deterministic, so a seed is one more run of the same schedule; the table folds
a cell's seeds together (worst verdict, sums, latencies over all of them).

Exit status: 0 when every run was judged (a strategy failing a property is a
finding, not a failure of the comparison), 2 when a run could not be judged or
a driver could not run here (the report says which and why), 130/143 when
interrupted.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import interrupt
from harness.chaos.timings import SERVICE_TAG
from harness.cli import Scenario, run_scenario
from harness.compare.aggregate import Cell, RunFigures, combine, measure_run
from harness.compare.render import write_report
from harness.errors import UsageError
from harness.fleet.drivers import DRIVERS, SERVICE_APPLICATION, driver_spec
from harness.interrupt import handle_signals
from harness.lease import token
from harness.report import EXIT_OK, EXIT_UNJUDGED, REPORTS_ROOT

DEFAULT_SCENARIOS = (
    "thaw_storm",
    "cold_start_wave",
    "reclaim_zombies",
    "lost_ack",
    "freeze_mid_transaction",
    "checkpoint_restore",
    "server_restart",
    "frozen_reaper",
)
"""The scenarios compared by default, those of them that exist."""


def _discover() -> dict[str, Scenario]:
    found: dict[str, Scenario] = importlib.import_module("scenarios").discover()
    return found


def resolve_scenarios(
    names: Sequence[str | Scenario] | None, discover: Callable[[], dict[str, Scenario]] = _discover
) -> list[Scenario]:
    """Scenario objects for names (``None``: :data:`DEFAULT_SCENARIOS` that exist)."""
    known = discover()
    if names is None:
        return [known[n] for n in DEFAULT_SCENARIOS if n in known]
    out: list[Scenario] = []
    for n in names:
        if isinstance(n, Scenario):
            out.append(n)
        elif n in known:
            out.append(known[n])
        else:
            raise UsageError(f"unknown scenario {n!r}; known: {', '.join(known)}")
    return out


def service_prefix(driver: str) -> str:
    """How the service's backends are told apart in ``pg_stat_activity``."""
    spec = driver_spec(driver)
    return f"s={SERVICE_TAG};" if spec.leases else SERVICE_APPLICATION


def run_compare(
    drivers: Sequence[str] | None = None,
    scenarios: Sequence[str | Scenario] | None = None,
    seeds: Sequence[int] | int = 1,
    out_dir: Path | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Run the comparison and write its report; the exit status (see the module)."""
    say = progress or (lambda m: print(f"[compare] {m}", file=sys.stderr, flush=True))
    names = list(drivers) if drivers else list(DRIVERS)
    specs = {n: driver_spec(n) for n in names}
    chosen = resolve_scenarios(scenarios)
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else list(seeds)
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = out_dir or (REPORTS_ROOT / "compare" / started)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    figures: list[RunFigures] = []
    skipped: dict[str, str] = {}
    unjudged = False
    with handle_signals():
        for d in names:
            why = specs[d].missing()
            if why is not None:
                skipped[d] = why
                say(f"driver {d} skipped: {why}")
                continue
            for sc in chosen:
                for seed in seed_list:
                    if interrupt.interrupted() is not None:
                        break
                    root = out / "runs" / _safe(d) / f"{sc.name}-seed{seed}"
                    say(f"{d} x {sc.name} (seed {seed})")
                    code = run_scenario(sc, {"driver": d}, root=root)
                    unjudged |= code not in (0, 1)
                    run_dirs = sorted(p for p in (root / sc.name).iterdir() if p.is_dir())
                    if run_dirs:
                        figures.append(
                            measure_run(
                                run_dirs[-1],
                                driver=d,
                                scenario=sc.name,
                                seed=seed,
                                prefix=service_prefix(d),
                            )
                        )
    cells: list[Cell] = combine(figures)
    meta: dict[str, object] = {
        "started": started,
        "drivers": names,
        "scenarios": [s.name for s in chosen],
        "seeds": seed_list,
        "elapsed_s": round(time.monotonic() - t0, 1),
        "skipped": skipped,
    }
    index = write_report(
        out,
        cells,
        [n for n in names if n not in skipped],
        {n: service_prefix(n) for n in names},
        meta,
    )
    say(f"report: {index}")
    print((out / "compare.md").read_text())
    stopped = interrupt.exit_code()
    if stopped is not None:
        return stopped
    return EXIT_UNJUDGED if unjudged or skipped else EXIT_OK


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


__all__ = ["DEFAULT_SCENARIOS", "resolve_scenarios", "run_compare", "service_prefix", "token"]
