"""``make mutate``: how many small mistakes in the lease client the chaos suites catch.

A mutation score measured with a real tool, cosmic-ray (PyPI ``cosmic-ray``, the
``mutate`` extra): it mutates a file in place, runs a test command, and keeps every
work item and its result in a sqlite session. The test command is the chaos suites
only (``scripts/mutate_suite.py``: every fleet scenario, then the stateful machine in
the ``ci`` profile); the lease client's own unit and integration tests and the
detection tests take no part.

Why cosmic-ray and not mutmut: mutmut 3 runs pytest itself, in-process, against
trampolined copies of the code and picks the tests to run from pytest's coverage, so
"a scenario process that starts its own fleet of forkserver workers" is not a test
command it can run; cosmic-ray runs any command, keeps results in a session a rerun
can build on, and its http distributor runs workers side by side.

A run (settings in ``scripts/mutate.toml``):

1. the population and the deterministic sample (:mod:`mutate_sample`);
2. the session ``reports/mutate/session.sqlite`` gets a work item for each sampled key
   without a result, and a baseline item (no mutation) when anything is to run: a rerun
   with nothing changed runs nothing (:mod:`mutate_results`);
3. ``workers`` cosmic-ray http workers (its own request handler, bound to 127.0.0.1),
   each in its own copy of the work tree, started from that copy's root with
   ``PYTHONPATH`` set to it, so the copy's ``harness``, mutated in place, is the one
   the suite imports, and the one the fleet's forkserver preloads (it inherits
   ``sys.path``). ``cosmic-ray exec`` hands them the pending items; aiohttp's client
   gives up on one request after 5 minutes by default, less than a surviving mutant's
   suite takes, so the exec process lifts that limit (``sock_connect`` stays);
4. if the baseline did not survive, nothing measured in that run is kept (exit 2);
5. the score, ``reports/mutate/score.md`` and ``mutate.json``, the score line.

Every worker, suite, scenario and copy is stopped or removed on every exit path.
Exit status: 0 the score meets ``goal``, 1 below it, 2 incomplete (a mutant could not
be run, or the unmutated code fails the suite).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mutate_results import (
    EQUIVALENTS,
    Judged,
    classify,
    diff_of,
    forget,
    load_notes,
    prepare_session,
    results,
    score_line,
    score_of,
    write_report,
)
from mutate_sample import (
    CONFIG,
    REPO,
    Config,
    Mutant,
    baseline_key,
    cosmic_version,
    outside_hash,
    population,
    sample,
    site_counts,
    tracked_files,
    write_cosmic_config,
)

from harness import interrupt
from harness.errors import WaitTimeout
from harness.interrupt import handle_signals
from harness.wait import poll

OUT = REPO / "reports" / "mutate"

WORKER_CODE = """
import sys
from aiohttp import web
from cosmic_ray.distribution.http import handle_mutate_and_test
app = web.Application()
app.add_routes([web.post("/", handle_mutate_and_test)])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
"""cosmic-ray's ``http-worker``, bound to loopback (its command binds every interface)."""

EXEC_CODE = """
import sys
import aiohttp.client
aiohttp.client.DEFAULT_TIMEOUT = aiohttp.client.ClientTimeout(total=None, sock_connect=30)
from cosmic_ray.cli import main
sys.exit(main(["exec", sys.argv[1], sys.argv[2]]))
"""
"""``cosmic-ray exec`` without aiohttp's 5-minute limit on one request."""


# ----------------------------------------------------------------- workers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _up(port: int) -> bool | None:
    return True if listening(port) else None


def make_clone(root: Path, dest: Path, config: Path) -> None:
    """A copy of the work tree as git sees it (tracked, and untracked but not ignored),
    with this run's configuration as its ``scripts/mutate.toml`` (the suite reads it)."""
    for rel in tracked_files(root, ["."]):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    shutil.copy2(config, dest / "scripts" / "mutate.toml")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid and stat[0] not in "ZX":
                    kids.append(int(entry.name))
    return kids


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def stop_group(pid: int, grace: float) -> None:
    """SIGTERM to the process group ``pid`` leads, SIGKILL if it is still there after
    ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    try:
        poll(
            lambda: True if gone(pid) else None,
            timeout=grace,
            what=f"process group {pid} to end",
            max_interval=0.5,
        )
    except WaitTimeout:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def workers(cfg: Config, root: Path, out: Path) -> Iterator[list[str]]:
    """``cfg.workers`` cosmic-ray http workers, each in its own copy of the tree; yields
    their URLs. On every exit path a suite still running is stopped first (it passes the
    SIGTERM on to its scenario, which tears down), then the worker, then the copies."""
    scratch = Path(tempfile.mkdtemp(prefix="thawproof-mutate-"))
    procs: list[subprocess.Popen[bytes]] = []
    grace = float(cfg.suite["kill_grace"]) + 30
    try:
        urls = []
        for i in range(cfg.workers):
            clone = scratch / f"w{i}"
            make_clone(root, clone, cfg.path)
            port = free_port()
            env = dict(os.environ, PYTHONPATH=str(clone))
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            with (out / f"worker-{i}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", WORKER_CODE, str(port)],
                        cwd=clone,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            poll(
                functools.partial(_up, port),
                timeout=60,
                what=f"mutation worker {i} on 127.0.0.1:{port}",
                max_interval=0.2,
            )
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for p in procs:
            for suite in children(p.pid):
                stop_group(suite, grace)
            stop_group(p.pid, 10)
            p.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def execute(cfg: Config, out: Path, todo: Sequence[str], urls: Sequence[str]) -> None:
    """``cosmic-ray exec`` over the pending items, printing progress as results come."""
    conf, session = out / "cosmic-ray.toml", out / "session.sqlite"
    write_cosmic_config(conf, cfg, urls=urls)
    proc = subprocess.Popen([sys.executable, "-c", EXEC_CODE, str(conf), str(session)], cwd=REPO)
    started, shown = time.monotonic(), -1
    try:
        while True:
            try:
                code: int | None = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                code = None
            with contextlib.suppress(Exception):  # the session may be locked a moment
                shown = _progress(session, todo, started, shown)
            if code is not None:
                if code != 0:
                    raise SystemExit(f"mutate: cosmic-ray exec exited {code}")
                return
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()


def _progress(session: Path, todo: Sequence[str], started: float, shown: int) -> int:
    got = results(session)
    counts: dict[str, int] = defaultdict(int)
    for k in todo:
        if k in got:
            counts[classify(got[k])[0]] += 1
    done = sum(counts.values())
    if done != shown:
        detail = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        elapsed = time.monotonic() - started
        print(f"mutate: {done}/{len(todo)} run ({detail}) after {elapsed:.0f}s", flush=True)
    return done


# ----------------------------------------------------------------- a run


def run(root: Path, cfg: Config, out: Path, *, dry_run: bool = False) -> int:
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    session = out / "session.sqlite"
    outside = outside_hash(root, cfg)
    with tempfile.TemporaryDirectory(prefix="thawproof-mutate-init-") as tmp:
        specs = population(root, cfg, Path(tmp))
    chosen = sample(root, cfg, specs, outside)
    wanted: dict[str, Mutant | None] = {m.key: m for m in chosen}
    base = baseline_key(root, outside)
    todo = prepare_session(session, wanted)
    if todo:
        todo = prepare_session(session, {**wanted, base: None})
    kept = len(chosen) - len(set(todo) - {base})
    print(f"mutate: {len(specs)} mutations in {len(cfg.sample)} modules; sampled {len(chosen)}")
    print(f"mutate: {len(todo)} to run (with the baseline), {kept} kept from earlier runs")
    if dry_run:
        for m in chosen:
            state = "run" if m.key in todo else "kept"
            print(f"  {m.id} {m.module}:{m.line} {m.operator} ({state})")
        return 0
    if todo:
        with workers(cfg, root, out) as urls:
            execute(cfg, out, todo, urls)
    got = results(session)
    if base in todo:
        verdict = classify(got[base])[0] if base in got else "error"
        if verdict != "survived":
            output = got[base].output if base in got else ""
            print(
                f"mutate: the unmutated code does not pass the suite ({verdict}); nothing"
                f" measured in this run is kept\n{(output or '')[-3000:]}",
                file=sys.stderr,
            )
            forget(session, list(todo))
            return 2
    return report(root, cfg, out, chosen, got, specs, ran=len(todo), started=started)


def report(
    root: Path,
    cfg: Config,
    out: Path,
    chosen: Sequence[Mutant],
    got: dict[str, Any],
    specs: Sequence[Any],
    *,
    ran: int,
    started: float,
) -> int:
    """Judge, score and write the report; the exit status."""
    eq, missed = load_notes()
    judged = []
    for m in chosen:
        outcome, steps = classify(got[m.key]) if m.key in got else ("error", [])
        judged.append(Judged(m, outcome, steps, diff_of(root, m), eq.get(m.id), missed.get(m.id)))
    s = score_of(judged, site_counts(root, cfg, specs))
    ids = {m.id for m in chosen}
    errors = [j.mutant.id for j in judged if j.outcome == "error"]
    unmatched = sorted((set(eq) | set(missed)) - ids)
    about: dict[str, Any] = {
        "tool": f"cosmic-ray {cosmic_version()}",
        "population": len(specs),
        "ran now": ran,
        "seconds": round(time.monotonic() - started, 1),
        "goal": cfg.goal,
        "errors": errors,
        "notes not in the sample": unmatched,
        "listed equivalent but killed": [
            j.mutant.id for j in judged if j.equivalent and j.outcome == "killed"
        ],
    }
    write_report(out, judged, s, about)
    for ident in unmatched:
        print(f"mutate: warning: {EQUIVALENTS.name} names {ident}, which is not in the sample")
    print(score_line(s))
    print(f"mutate: report in {out / 'score.md'} and {out / 'mutate.json'}")
    if errors:
        print(f"mutate: {len(errors)} mutant(s) could not be run: {', '.join(errors)}")
        return 2
    return 0 if s["score"] is not None and s["score"] >= cfg.goal else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the mutation score of harness/lease")
    parser.add_argument("--dry-run", action="store_true", help="show the sample, run nothing")
    parser.add_argument("--config", type=Path, default=CONFIG, help="not scripts/mutate.toml")
    parser.add_argument("--out", type=Path, default=OUT, help="not reports/mutate")
    args = parser.parse_args(argv)
    cfg = Config.load(args.config.resolve())
    with handle_signals():  # SIGTERM unwinds like Ctrl-C: workers and suites are stopped
        try:
            return run(REPO, cfg, args.out.resolve(), dry_run=args.dry_run)
        except interrupt.Interrupted as stop:
            print(f"mutate: {stop}; what this run finished is kept", file=sys.stderr)
            return stop.exit_code


if __name__ == "__main__":
    sys.exit(main())
