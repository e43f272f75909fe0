"""Fleets at scale: thaw storms of 10, 100, 300 and 500 sandboxes; the sampler at 500 backends.

- ``storm``: for each fleet size ``W``, ``thawproof run thaw_storm workers=W
  preset=self-hosted`` (a server of ``max_connections=100``, 3 reserved; from 20
  workers the storm at scale: two waves of 0.6 W cold starts, half the first wave
  reclaimed with its links blackholed), run as a user runs it, in its own process.
  From its run directory (the history, the samples, the verdicts): cold start p50 (a
  sandbox's first invocation, invoke to answer), invocation round trip p50 (every
  later one), the sampler's rate over the run and the most backends one sample held,
  the reaper's pass time (lock taken to lock released), kills a pass and passes a
  minute, P2's convergence time against its bound, the verdicts. The 500 storm runs
  once more with ``prestart=yes`` (:data:`PRESTARTED`), its waves truly in flight at
  once. Beside the run, this
  process reads the workers' memory from ``/proc`` twice a second (PSS: a page shared
  by n processes counts 1/n to each, so shared pages are counted once in the sum)
  and reports the per-worker figure at the moment the most workers were alive.
- ``sampler``: the ``pg_stat_activity`` sampler alone, at its chaos interval, on a
  server with 500 idle client backends, beside the same sampler with none (one run,
  side by side); the promise is at least 10 samples a second with 500.

Real PostgreSQL (``LocalCluster``), the Toxiproxy-compatible server, real workers.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from bench.goals import headline
from harness.chaos.env import SAMPLE_INTERVAL
from harness.infra.postgres import LocalCluster
from harness.observe import ActivitySampler

SIZES = (10, 100, 300, 500)
PRESTARTED = (500,)
"""Sizes run once more with ``prestart=yes``: each wave's sandboxes started ahead, so
the wave of 0.6 W is truly in flight at once (without it, about 90 at most here)."""
PRESET = "self-hosted"
SAMPLER_BACKENDS = 500
SAMPLER_SECONDS = 5.0
REPO = Path(__file__).resolve().parents[1]


def _p50(xs: list[float]) -> float | None:
    return round(statistics.median(xs) * 1000.0, 1) if xs else None


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MemoryWatch:
    """Reads the PSS of the run's live workers twice a second, from its history's
    ``spawn`` and ``exit``/``crash`` events and ``/proc/<pid>/smaps_rollup``."""

    def __init__(self, reports: Path, started: float) -> None:
        self.reports, self.started = reports, started
        self.peak_workers = 0
        self.pss_per_worker_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _history(self) -> Path | None:
        dirs = [d for d in self.reports.glob("*/") if d.stat().st_mtime >= self.started]
        return max(dirs, key=lambda d: d.stat().st_mtime) / "history.jsonl" if dirs else None

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            history = self._history()
            if history is None:
                continue
            alive: set[int] = set()
            for e in _events(history):
                if e.get("type") == "worker":
                    (alive.add if e["f"] == "spawn" else alive.discard)(e["os_pid"])
            pss = [kb for kb in map(_pss_kb, alive) if kb is not None]
            if len(pss) > self.peak_workers:
                self.peak_workers = len(pss)
                self.pss_per_worker_mb = round(sum(pss) / len(pss) / 1024.0, 2)


def _pss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None  # it exited between the history and now
    m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


def _storm(workers: int, progress: Callable[[str], None], *, prestart: bool) -> dict[str, Any]:
    reports = REPO / "reports" / "thaw_storm"
    reports.mkdir(parents=True, exist_ok=True)
    started = time.time()
    cmd = [sys.executable, "-m", "harness", "run", "thaw_storm"]
    cmd += [
        f"workers={workers}",
        f"preset={PRESET}",
        "seed=1",
        f"prestart={'yes' if prestart else 'no'}",
    ]
    t0 = time.monotonic()
    with MemoryWatch(reports, started) as memory:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    m = re.search(r"^\S+: (pass|fail|unjudged)  \((.+)\)$", done.stdout, re.M)
    if m is None:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:]
        raise RuntimeError(f"thaw_storm workers={workers} exited {done.returncode}: {tail}")
    run = Path(m.group(2))
    progress(f"thaw_storm workers={workers}: {m.group(1)} in {wall:.0f}s ({run})")
    figures = _from_run(run)
    figures.update(
        result=m.group(1),
        exit_status=done.returncode,
        wall_s=round(wall, 1),
        peak_live_workers=memory.peak_workers,
        pss_per_worker_mb=memory.pss_per_worker_mb,
        run_dir=str(run.relative_to(REPO)),
    )
    return figures


def _from_run(run: Path) -> dict[str, Any]:
    history = _events(run / "history.jsonl")
    samples = _events(run / "activity.jsonl")
    summary = json.loads((run / "summary.json").read_text())
    verdicts = {v["property"]: v for v in summary["verdicts"]}
    cold, warm = _op_durations(history)
    passes = _passes(history)
    span = history[-1]["time"] - history[0]["time"] if history else 0.0
    times = [s["time"] for s in samples]
    p2 = verdicts.get("P2", {}).get("measured", {})
    return {
        "verdicts": {p: v["status"] for p, v in verdicts.items()},
        "cold_starts": len(cold),
        "cold_start_p50_ms": _p50(cold),
        "invocations_warm": len(warm),
        "round_trip_p50_ms": _p50(warm),
        "samples": len(samples),
        "sampler_hz": round((len(times) - 1) / (times[-1] - times[0]), 1)
        if len(times) > 1
        else None,
        "max_backends_in_a_sample": max((len(s.get("rows", ())) for s in samples), default=0),
        "reaper_passes": len(passes),
        "reaper_pass_p50_ms": _p50([d for d, _ in passes]),
        "reaper_pass_max_ms": round(max((d for d, _ in passes), default=0.0) * 1000.0, 1),
        "kills_per_pass_max": max((k for _, k in passes), default=0),
        "kills": sum(k for _, k in passes),
        "passes_per_minute": round(len(passes) / span * 60.0, 1) if span > 0 else None,
        "convergence_s": p2.get("convergence_s"),
        "convergence_bound_s": p2.get("bound_s"),
        "zombies": p2.get("zombies"),
        "longest_zombie_s": p2.get("longest_zombie_s"),
    }


def _rate(times: list[float]) -> float | None:
    return round((len(times) - 1) / (times[-1] - times[0]), 1) if len(times) > 1 else None


def _op_durations(history: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Invoke-to-answer of each successful invocation: a worker's first, and the rest."""
    invoked: dict[str, dict[str, Any]] = {}
    seen_worker: set[str | None] = set()
    cold: list[float] = []
    warm: list[float] = []
    for e in history:
        if e.get("type") == "invoke":
            invoked[e["op"]] = e
        elif e.get("type") == "ok" and (start := invoked.get(e["op"])) is not None:
            worker = start.get("worker")
            (warm if worker in seen_worker else cold).append(e["time"] - start["time"])
            seen_worker.add(worker)
        elif e.get("type") in ("fail", "info") and (start := invoked.get(e["op"])) is not None:
            seen_worker.add(start.get("worker"))
    return cold, warm


def _passes(history: list[dict[str, Any]]) -> list[tuple[float, int]]:
    """(seconds from lock taken to lock released, kills) of every completed reaper pass."""
    locked: dict[Any, float] = {}
    out: list[tuple[float, int]] = []
    for e in history:
        if e.get("type") != "reap_pass":
            continue
        key = (e.get("worker"), e.get("reaper_pid"))
        if e["f"] == "locked":
            locked[key] = e["time"]
        elif e["f"] == "pass_end" and key in locked:
            out.append((e["time"] - locked.pop(key), int(e.get("killed") or 0)))
    return out


def _sampler_rate(pg: LocalCluster, seconds: float) -> tuple[float, int]:
    sampler = ActivitySampler(pg.admin_dsn, pg.app_db, interval=SAMPLE_INTERVAL).start()
    try:
        time.sleep(seconds)  # a measurement window, not a synchronisation
    finally:
        sampler.stop()
    rows = max((len(s.rows) for s in sampler.samples), default=0)
    return sampler.rate_hz(), rows


def _sampler(progress: Callable[[str], None]) -> dict[str, Any]:
    with LocalCluster(max_connections=SAMPLER_BACKENDS + 20) as pg:
        idle_hz, _ = _sampler_rate(pg, SAMPLER_SECONDS)
        progress(f"opening {SAMPLER_BACKENDS} idle backends")
        with ThreadPoolExecutor(8) as pool:
            conns = list(pool.map(lambda _: psycopg.connect(pg.app_dsn), range(SAMPLER_BACKENDS)))
        try:
            loaded_hz, rows = _sampler_rate(pg, SAMPLER_SECONDS)
        finally:
            for c in conns:
                c.close()
    return {
        "backends": rows,
        "hz_with_none": round(idle_hz, 1),
        "hz_with_500": round(loaded_hz, 1),
        "ratio_500_to_none": round(loaded_hz / idle_hz, 3) if idle_hz else None,
    }


def run(progress: Callable[[str], None]) -> dict[str, Any]:
    storms: dict[str, Any] = {}
    runs = [(w, False) for w in SIZES] + [(w, True) for w in PRESTARTED]
    for workers, prestart in runs:
        progress(f"thaw_storm with {workers} sandboxes, preset {PRESET}")
        storms[f"{workers}{'-prestarted' if prestart else ''}"] = _storm(
            workers, progress, prestart=prestart
        )
    progress("the sampler with 500 idle backends")
    sampler = _sampler(progress)
    heads = [
        headline(
            "scale.sampler_hz_with_500_backends",
            sampler["hz_with_500"],
            goal=10,
            op=">=",
            unit="Hz",
            note=f"{sampler['hz_with_none']} Hz with none, side by side",
        )
    ]
    for size, s in storms.items():
        heads += _storm_headlines(size, s)
    return {"preset": PRESET, "storm": storms, "sampler": sampler, "headlines": heads}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _storm_headlines(size: str, s: dict[str, Any]) -> list[dict[str, Any]]:
    failed = sorted(p for p, v in s["verdicts"].items() if v != "ok")
    judged = (
        "every property ok"
        if not failed
        else "not ok: " + ", ".join(f"{p} {s['verdicts'][p]}" for p in failed)
    )
    conv, bound = s["convergence_s"], s["convergence_bound_s"]
    return [
        headline(
            f"scale.{size}.run",
            1.0 if s["result"] == "pass" else 0.0,
            goal=1.0,
            op=">=",
            note=f"{s['result']} (exit {s['exit_status']}), {judged}, {s['wall_s']}s",
        ),
        headline(
            f"scale.{size}.longest_zombie_s",
            _r(s["longest_zombie_s"]),
            op="info",
            unit="s",
            note=f"{s['zombies']} zombie(s), wall time; P2's bound of {_r(bound)}s counts"
            " only time while invocations arrive, and the run's verdict is above; the count"
            " back within the limit"
            + (f" {_r(conv)}s after the last fault" if conv is not None else ": never"),
        ),
        headline(
            f"scale.{size}.sampler_hz",
            s["sampler_hz"],
            goal=10,
            op=">=",
            unit="Hz",
            note=f"up to {s['max_backends_in_a_sample']} backends a sample",
        ),
    ] + [
        headline(f"scale.{size}.{key}", s[key], unit=unit, note=note)
        for key, unit, note in (
            ("pss_per_worker_mb", "MB", f"at {s['peak_live_workers']} live workers"),
            ("cold_start_p50_ms", "ms", f"{s['cold_starts']} cold starts"),
            ("round_trip_p50_ms", "ms", f"{s['invocations_warm']} warm invocations"),
            (
                "reaper_pass_p50_ms",
                "ms",
                f"{s['reaper_passes']} passes, {s['passes_per_minute']}/min,"
                f" {s['kills']} kills, at most {s['kills_per_pass_max']} a pass",
            ),
        )
    ]
