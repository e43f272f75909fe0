"""``thawproof`` (also ``python -m harness``): the commands a person runs.

::

    thawproof list [--json]                      the scenarios, their options, the clients
    thawproof run NAME... [key=value ...]        run scenarios (``all`` = every one)
    thawproof replay [BUG ...]                   replay the saved failing examples
    thawproof report RUN_DIR                     re-render a stored run's HTML and PNG
    thawproof analyze RUN_DIR                    re-judge a stored run from its files
    thawproof compare [drivers=a,b] [scenarios=x,y] [seeds=N]   every driver, compared
    thawproof capacity concurrency=N pool=M preset=P   does N x M fit? (0 yes, 1 no)
    thawproof clean [--keep N]                   old reports (keep the newest N per scenario)
                                                 and whatever a dead run left behind

Exit status: 0 every property holds, 1 a property failed, 2 a run could not be
judged or the input was bad (one line naming the real cause, nothing left
running), 130 / 143 interrupted by SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import interrupt
from harness.cli.runner import Scenario, analyze, parse_options, render, run_scenario_result
from harness.cli.table import Row
from harness.cli.table import render as render_table
from harness.errors import HarnessError, UsageError
from harness.infra.owned import clean_dead_runs
from harness.interrupt import handle_signals
from harness.report import EXIT_UNJUDGED, REPORTS_ROOT

SCENARIO_PACKAGES = "THAWPROOF_SCENARIOS"
"""Comma-separated packages the scenarios are found in (default: this project's
``scenarios``); a package is searched for modules defining ``SCENARIO``."""


def find_scenarios() -> dict[str, Scenario]:
    """Every scenario of the scenario packages, by name: a plugin lookup by package
    name (the scenarios build on this layer, not the other way round)."""
    found: dict[str, Scenario] = {}
    for package in filter(None, os.environ.get(SCENARIO_PACKAGES, "scenarios").split(",")):
        try:
            pkg = importlib.import_module(package.strip())
        except ImportError as exc:
            raise UsageError(f"scenario package {package!r} cannot be imported: {exc}") from None
        for module in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
            if module.name.startswith("_"):
                continue
            mod = importlib.import_module(f"{pkg.__name__}.{module.name}")
            scenario = getattr(mod, "SCENARIO", None)
            if isinstance(scenario, Scenario):
                found[scenario.name] = scenario
    return dict(sorted(found.items()))


def _clients() -> list[str]:
    from harness.chaos.zoo import BY_NAME

    return ["correct", *BY_NAME, "package.module:Class"]


# ----------------------------------------------------------------- list


def cmd_list(args: argparse.Namespace) -> int:
    scenarios = find_scenarios()
    if args.json:
        out = {
            name: {
                "description": s.description,
                "judges": s.judges,
                "options": dict(s.options),
            }
            for name, s in scenarios.items()
        }
        print(json.dumps({"scenarios": out, "clients": _clients()}, indent=2))
        return 0
    for s in scenarios.values():
        print(f"{s.name:<23} {s.description}" + (f"  [{s.judges}]" if s.judges else ""))
    fleet = next((s for s in scenarios.values() if s.options), None)
    if fleet is not None:
        print("\noptions of the fleet scenarios (key=value):")
        for key, meaning in fleet.options.items():
            print(f"  {key:<10} {meaning}")
    print(f"\nclients: {', '.join(_clients())}")
    return 0


# ----------------------------------------------------------------- run


def _plan(names: Sequence[str], options: dict[str, str]) -> list[Scenario]:
    """The scenarios to run, every option checked against each before anything starts.
    With several scenarios an option goes to those that take it; one none takes is an
    error."""
    known = find_scenarios()
    chosen: list[Scenario] = []
    for name in names:
        if name == "all":
            chosen += known.values()
        elif name in known:
            chosen.append(known[name])
        else:
            raise UsageError(f"unknown scenario {name!r}; known: all, {', '.join(known)}")
    if len(chosen) == 1:
        chosen[0].check_options(options)
        return chosen
    takers = [s for s in chosen if s.options]
    for key in options:
        if not any(key in s.options for s in takers):
            raise UsageError(f"unknown option {key!r}; no scenario chosen takes it")
    for s in takers:
        s.check_options({k: v for k, v in options.items() if k in s.options})
    return chosen


def cmd_run(args: argparse.Namespace) -> int:
    words = list(args.words)
    names = [w for w in words if "=" not in w]
    options = parse_options([w for w in words if "=" in w])
    if not names:
        raise UsageError("run: name at least one scenario (or all)")
    plan = _plan(names, options)
    rows: list[Row] = []
    with handle_signals():
        for i, s in enumerate(plan, 1):
            if len(plan) > 1:
                print(f"== scenario {i}/{len(plan)}: {s.name}", file=sys.stderr, flush=True)
            mine = (
                options if len(plan) == 1 else {k: v for k, v in options.items() if k in s.options}
            )
            _, result, path = run_scenario_result(s, mine)
            rows.append(Row(s.name, result, path))
            if interrupt.interrupted() is not None:
                break
    if len(plan) > 1:
        print("== chaos summary")
        print(render_table(rows))
    stopped = interrupt.exit_code()
    if stopped is not None:
        left = len(plan) - len(rows)
        print(f"interrupted: {left} scenario(s) not started", file=sys.stderr)
        return stopped
    return max((r.result.exit_code for r in rows), default=0)


# ----------------------------------------------------------------- replay


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay each bug-zoo entry's saved failure (the example database) on live servers."""
    from hypothesis import settings

    from harness.chaos.detect import search
    from harness.chaos.env import ChaosEnv
    from harness.chaos.judge import PropertyViolation, Unjudged
    from harness.chaos.profiles import register_profiles
    from harness.chaos.zoo import BY_NAME, ZOO
    from harness.infra.postgres import open_server
    from harness.infra.toxiproxy import ToxiproxyServer

    unknown = [b for b in args.bugs if b not in BY_NAME]
    if unknown:
        raise UsageError(f"unknown bug {unknown[0]!r}; known: {', '.join(BY_NAME)}")
    bugs = [BY_NAME[b] for b in args.bugs] or list(ZOO)
    register_profiles()
    settings.load_profile("replay")
    worst = 0
    with handle_signals(), open_server() as pg, ToxiproxyServer() as proxies:
        env = ChaosEnv(pg, proxies)
        for bug in bugs:
            try:
                search(env, bug, bug.name)()
            except PropertyViolation as caught:
                failed = caught.judged.failed
                word = "replays" if bug.expected in failed else "replays, but breaks other"
                print(
                    f"{bug.name:<22} {word}: {', '.join(failed)} failed (expected {bug.expected})"
                )
            except Unjudged as exc:
                print(f"{bug.name:<22} could not be judged: {exc.judged.unjudged}")
                worst = max(worst, EXIT_UNJUDGED)
            else:
                print(f"{bug.name:<22} no saved failure replayed (nothing in the example database)")
                worst = max(worst, 1)
    return interrupt.exit_code() or worst


# ----------------------------------------------------------------- report, analyze


def _run_dir(raw: str) -> Path:
    path = Path(raw)
    if not (path / "summary.json").is_file():
        raise UsageError(f"{raw} is not a run directory (no summary.json in it)")
    return path


def cmd_report(args: argparse.Namespace) -> int:
    path = _run_dir(args.run_dir)

    render(path)
    print(path / "report.html")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    path = _run_dir(args.run_dir)

    result = analyze(path)
    word = {"ok": "holds", "fail": "FAILS", "unknown": "NOT JUDGED"}
    print(f"{result.scenario}: {result.result}  ({path}, re-judged from its files)")
    for v in result.verdicts:
        print(f"  {v.prop:<4} {word[v.status]:<10}  {v.summary}")
    code: int = result.exit_code
    return code


# ----------------------------------------------------------------- compare


def cmd_compare(args: argparse.Namespace) -> int:
    """Every driver on the same scenarios and seeds (see :mod:`harness.compare`)."""
    from harness.compare.__main__ import main as compare_main

    return compare_main(list(args.words))


# ----------------------------------------------------------------- capacity


def cmd_capacity(args: argparse.Namespace) -> int:
    """Does concurrency x pool fit under a provider's limit? 0 it fits, 1 it does not."""
    from harness.infra.presets import PRESETS, capacity

    opts = parse_options(args.words)
    if not opts:
        for p in PRESETS.values():
            note = f"  ({p.note})" if p.note else ""
            print(
                f"{p.name:<20} {p.provider:<18} max_connections {p.max_connections:>5},"
                f" {p.reserved} reserved, {p.usable:>5} usable{note}"
            )
        return 0
    unknown = sorted(set(opts) - {"concurrency", "pool", "preset"})
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r}; known: concurrency, pool, preset")
    missing = [k for k in ("concurrency", "pool", "preset") if k not in opts]
    if missing:
        raise UsageError(f"missing {missing[0]}=...")
    try:
        n, m = int(opts["concurrency"]), int(opts["pool"])
    except ValueError:
        raise UsageError("concurrency and pool must be whole numbers") from None
    answer = capacity(n, m, opts["preset"])
    print(answer.explain())
    return 0 if answer.fits else 1


# ----------------------------------------------------------------- clean


def cmd_clean(args: argparse.Namespace) -> int:
    for line in clean_dead_runs():
        print(f"cleaned up after a dead run: {line}")
    root = Path(args.root)
    removed = 0
    if root.is_dir():
        for scenario in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
            runs = sorted((p for p in scenario.iterdir() if p.is_dir()), reverse=True)
            for old in runs[args.keep :]:
                shutil.rmtree(old)
                removed += 1
    print(f"removed {removed} old report(s) under {root}, kept the newest {args.keep} per scenario")
    return 0


# ----------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="thawproof",
        description="Chaos harness for PostgreSQL clients in serverless workers.",
        epilog="exit status: 0 all hold, 1 a property failed, 2 unjudged or bad input,"
        " 130/143 interrupted",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help, description=help)
        cmd.set_defaults(fn=fn)
        return cmd

    add("list", cmd_list, "list the scenarios, their options and the clients").add_argument(
        "--json", action="store_true", help="as JSON"
    )
    run = add("run", cmd_run, "run scenarios: NAME... (or all) [key=value ...]")
    run.add_argument("words", nargs="+", metavar="NAME|key=value")
    add("replay", cmd_replay, "replay the bug zoo's saved failing examples").add_argument(
        "bugs", nargs="*", metavar="BUG"
    )
    add("report", cmd_report, "re-render a stored run's report.html and timeline.png").add_argument(
        "run_dir", metavar="RUN_DIR"
    )
    add("analyze", cmd_analyze, "re-judge a stored run from its files").add_argument(
        "run_dir", metavar="RUN_DIR"
    )
    compare = add(
        "compare",
        cmd_compare,
        "which connection strategy survives? every driver on the same scenarios and seeds:"
        " [drivers=a,b] [scenarios=x,y] [seeds=N] [out=DIR]",
    )
    compare.add_argument("words", nargs="*", metavar="key=value")
    cap = add(
        "capacity",
        cmd_capacity,
        "does concurrency=N x pool=M fit under preset=...? (no options: list the presets)",
    )
    cap.add_argument("words", nargs="*", metavar="key=value")
    clean = add("clean", cmd_clean, "remove old reports and what dead runs left behind")
    clean.add_argument("--keep", type=int, default=5, help="runs to keep per scenario (5)")
    clean.add_argument("--root", default=str(REPORTS_ROOT), help="the reports directory")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The ``thawproof`` command; bad input is one line on stderr and exit status 2."""
    args = _parser().parse_args(None if argv is None else list(argv))
    try:
        code: int = args.fn(args)
    except UsageError as e:
        print(f"thawproof {args.command}: {e}", file=sys.stderr)
        return EXIT_UNJUDGED
    except HarnessError as e:
        print(f"thawproof {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_UNJUDGED
    except BrokenPipeError:
        # `thawproof list | head`: the reader is gone, nothing more to say
        sys.stderr.close()
        return 0
    return code
