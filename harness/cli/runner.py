"""Running a named chaos scenario: real components up, the scenario, a report, an exit status.

A scenario is a function ``run(context) -> ScenarioResult``. :func:`run_scenario` gives it
a :class:`Context` (a PostgreSQL server, a Toxiproxy server, a run directory
and a progress line), writes the report, and maps the result to the exit
status DESIGN.md promises: 0 every property holds, 1 a property failed, 2 the
run could not be judged. Bad input and setup failures are one line on stderr,
never a traceback. Everything started is released on every exit path,
SIGTERM and Ctrl-C included (see :mod:`harness.interrupt`: the first signal
unwinds every ``with`` block, the exit status is 128 + the signal), and what an
earlier run that died left behind is cleaned first (:mod:`harness.infra.owned`).
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import interrupt, report
from harness.chaos.env import verify_for
from harness.errors import HarnessError, SetupError, UsageError
from harness.infra.canary import check_proxy
from harness.infra.owned import clean_dead_runs
from harness.infra.postgres import PostgresServer, open_server
from harness.infra.toxiproxy import ToxiproxyServer
from harness.interrupt import handle_signals
from harness.report import EXIT_UNJUDGED, RunDir, ScenarioResult, run_identity


class Progress:
    """Timestamped progress lines on stderr, so a long run shows it is alive."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{self.scenario} {elapsed:7.2f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    """What a scenario gets: real servers, where to write, how to report progress."""

    pg: PostgresServer
    proxies: ToxiproxyServer
    run_dir: RunDir
    progress: Progress
    options: dict[str, str] = field(default_factory=dict)


def _no_options(options: dict[str, str]) -> None:
    if options:
        raise UsageError(f"unknown option {sorted(options)[0]!r}; this scenario takes none")


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    run: Callable[[Context], ScenarioResult]
    max_connections: int = 40
    check_options: Callable[[dict[str, str]], None] = _no_options
    """Raises ``UsageError`` for options the scenario cannot take; called before
    anything starts."""
    options: Mapping[str, str] = field(default_factory=dict)
    """The options it takes, each with what it means and its allowed values."""
    judges: str = ""
    """Which properties it judges (for ``list``)."""
    server: Callable[[dict[str, str]], ServerShape] | None = None
    """The server it needs for these options (``max_connections``, other settings);
    None: ``max_connections`` above and the defaults."""

    def server_shape(self, options: dict[str, str]) -> ServerShape:
        if self.server is None:
            return ServerShape(self.max_connections)
        return self.server(options)


@dataclass(frozen=True)
class ServerShape:
    """How a scenario's own PostgreSQL is started."""

    max_connections: int
    settings: Mapping[str, str | int] = field(default_factory=dict)


def run_scenario(
    scenario: Scenario, options: dict[str, str] | None = None, *, root: Path | None = None
) -> int:
    """Run one scenario end to end; return its exit status (and print where the report is).

    ``root``: where its run directory goes (``reports/`` by default; ``make compare``
    gives each run a place under its own report). The first SIGINT or SIGTERM tears
    the run down (everything it started is released) and the status is 130 / 143
    with the result ``interrupted``."""
    return run_scenario_result(scenario, options, root=root)[0]


def run_scenario_result(
    scenario: Scenario, options: dict[str, str] | None = None, *, root: Path | None = None
) -> tuple[int, ScenarioResult, Path]:
    """:func:`run_scenario`, also giving the result and its run directory."""
    progress = Progress(scenario.name)
    run_dir = RunDir(scenario.name, root=root) if root is not None else RunDir(scenario.name)
    outcome: ScenarioResult
    identity: dict[str, Any] = {}
    with handle_signals():
        try:
            for cleaned in clean_dead_runs():
                progress(f"cleaned up after an earlier run that died: {cleaned}")
            progress("starting PostgreSQL and the proxy server")
            shape = scenario.server_shape(dict(options or {}))
            with (
                open_server(max_connections=shape.max_connections, settings=shape.settings) as pg,
                ToxiproxyServer() as proxies,
            ):
                progress(f"PostgreSQL {pg!r}; proxy {proxies!r}")
                progress(check_proxy(proxies))
                identity = run_identity(pg, proxies)
                ctx = Context(pg, proxies, run_dir, progress, dict(options or {}))
                outcome = scenario.run(ctx)
        except BaseException as e:
            outcome = _failure(scenario, run_dir, e)
    if interrupt.interrupted() is not None:
        outcome = _interrupted(scenario)
    outcome.timings.setdefault("duration_s", round(time.monotonic() - progress.started, 3))
    _stamp(outcome, identity, progress)
    run_dir.finish(outcome)
    _print_summary(outcome, run_dir)
    code = interrupt.exit_code()
    return (outcome.exit_code if code is None else code), outcome, run_dir.path


def run_on_servers(
    scenario: Scenario,
    pg: PostgresServer,
    proxies: ToxiproxyServer,
    options: dict[str, str] | None = None,
    *,
    reports: Path | None = None,
) -> ScenarioResult:
    """Run ``scenario`` on servers the caller owns (a test suite's session servers),
    writing its report under ``reports`` (default ``reports/``); the result, whatever
    it is (a harness error becomes an unjudged result, never an exception)."""
    scenario.check_options(dict(options or {}))
    progress = Progress(scenario.name)
    run_dir = RunDir(scenario.name) if reports is None else RunDir(scenario.name, root=reports)
    try:
        outcome = scenario.run(Context(pg, proxies, run_dir, progress, dict(options or {})))
    except HarnessError as e:
        outcome = _failure(scenario, run_dir, e)
    run_dir.finish(outcome)
    return outcome


def _interrupted(scenario: Scenario) -> ScenarioResult:
    signum = interrupt.interrupted()
    name = signal.Signals(signum).name if signum is not None else "a signal"
    return ScenarioResult(scenario.name, unjudged=f"interrupted by {name}")


def _failure(scenario: Scenario, run_dir: RunDir, e: BaseException) -> ScenarioResult:
    """The result of a run that ended by an exception: interrupted, unjudged (the
    harness's own trouble, named), or a crash with its traceback kept."""
    if isinstance(e, KeyboardInterrupt) or interrupt.interrupted() is not None:
        return _interrupted(scenario)
    if isinstance(e, SetupError | UsageError):
        return ScenarioResult(scenario.name, unjudged=str(e))
    if isinstance(e, HarnessError):
        return ScenarioResult(scenario.name, unjudged=f"{type(e).__name__}: {e}")
    if not isinstance(e, Exception):
        raise e
    (run_dir.path / "traceback.txt").write_text(traceback.format_exc())
    return ScenarioResult(scenario.name, unjudged=f"crashed: {type(e).__name__}: {e}")


def _stamp(outcome: ScenarioResult, identity: dict[str, Any], progress: Progress) -> None:
    """The run's identity (servers included when they came up) and its clock's start."""
    if not outcome.identity:
        outcome.identity = identity or run_identity()
    if outcome.clock_start is None:
        outcome.clock_start = progress.started


def analyze(run_dir: Path) -> ScenarioResult:
    """Judge a stored run again from its files (:func:`harness.report.analyze`), with the
    signature check of the harness's own chaos service rebuilt when the run was its."""
    return report.analyze(run_dir, verify_for)


def render(run_dir: Path) -> Path:
    """Re-draw a stored run's ``timeline.png`` and ``report.html`` (no server needed)."""
    return report.render(run_dir)


def _print_summary(outcome: ScenarioResult, run_dir: RunDir) -> None:
    print(f"{outcome.scenario}: {outcome.result}  ({run_dir.path})")
    if outcome.unjudged is not None:
        print(f"  could not be judged: {outcome.unjudged}", file=sys.stderr)
    word = {"ok": "holds", "fail": "FAILS", "unknown": "NOT JUDGED"}
    for v in outcome.verdicts:
        print(f"  {v.prop:<4} {word[v.status]:<10}  {v.summary}")
    counts = outcome.situations
    if counts:
        reached = {k: n for k, n in counts.items() if n}
        shown = ", ".join(f"{k} {n}" for k, n in reached.items()) or "none"
        print(f"  situations reached ({len(reached)} of {len(counts)}): {shown}")
    for note in outcome.notes:
        print(f"  note: {note}")


def parse_options(args: list[str]) -> dict[str, str]:
    """``key=value`` arguments; anything else is a usage error."""
    options: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {arg!r}")
        options[key] = value
    return options


def main_for(scenario: Scenario, argv: list[str]) -> int:
    """Entry point of ``python -m scenarios.<name> [key=value ...]``."""
    try:
        options = parse_options(argv)
        scenario.check_options(options)
    except UsageError as e:
        print(f"{scenario.name}: {e}", file=sys.stderr)
        return EXIT_UNJUDGED
    with handle_signals():
        return run_scenario(scenario, options)
