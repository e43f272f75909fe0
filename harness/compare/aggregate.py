"""The comparison's numbers, computed from recorded runs only.

A compared run is a run directory (``summary.json``, ``history.jsonl``,
``activity.jsonl``, ``report.html``) whose driver and scenario the comparison
knows. :func:`measure_run` reads those files and computes every figure the
table shows; nothing is typed in, and a run that recorded nothing gives
``None`` figures, never zeros it did not measure. :func:`combine` folds the
seeds of one (driver, scenario) cell together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.history import OpEvent, TerminationEvent, load_history, load_samples

PROPS = ("P1", "P2", "P3", "P4", "P5")


@dataclass(frozen=True)
class RunFigures:
    """One recorded run's figures."""

    driver: str
    scenario: str
    seed: int
    run_dir: Path
    result: str
    """``pass``, ``fail`` or ``unjudged`` (summary.json)."""
    verdicts: dict[str, str]
    """P1..P5 -> ok | fail | unknown."""
    why: dict[str, str]
    """P1..P5 -> the verdict's summary sentence (the evidence, in words)."""
    limit: int | None
    peak_backends: int | None
    convergence_s: float | None
    refused_53300: int
    active_killed: int
    duplicated_writes: int
    info_outcomes: int
    operations: int
    latencies_s: tuple[float, ...]
    terminations: dict[str, int] = field(default_factory=dict)
    """By who ended them (server log): ``cause`` or ``cause by killer app``."""
    unjudged: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "scenario": self.scenario,
            "seed": self.seed,
            "run_dir": str(self.run_dir),
            "result": self.result,
            "verdicts": self.verdicts,
            "limit": self.limit,
            "peak_backends": self.peak_backends,
            "convergence_s": self.convergence_s,
            "refused_53300": self.refused_53300,
            "active_killed": self.active_killed,
            "duplicated_writes": self.duplicated_writes,
            "info_outcomes": self.info_outcomes,
            "operations": self.operations,
            "latency_p50_ms": _pct_ms(self.latencies_s, 0.50),
            "latency_p99_ms": _pct_ms(self.latencies_s, 0.99),
            "terminations": self.terminations,
            "unjudged": self.unjudged,
        }


def _pct_ms(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    i = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[i] * 1000.0, 3)


def _verdicts(summary: dict[str, Any]) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    status, why, measured = {}, {}, {}
    for v in summary.get("verdicts") or []:
        prop = str(v.get("property"))
        status[prop] = str(v.get("status"))
        why[prop] = str(v.get("summary") or "")
        measured[prop] = v
    return status, why, measured


def measure_run(run_dir: Path, *, driver: str, scenario: str, seed: int, prefix: str) -> RunFigures:
    """The figures of one run directory; ``prefix`` marks the service's backends
    (``s=<service>;`` for leases, the driver's application_name otherwise)."""
    summary_path = run_dir / "summary.json"
    summary: dict[str, Any] = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    status, why, verdicts = _verdicts(summary)
    events = load_history(run_dir / "history.jsonl") if (run_dir / "history.jsonl").exists() else []
    samples = (
        load_samples(run_dir / "activity.jsonl") if (run_dir / "activity.jsonl").exists() else []
    )
    p2 = verdicts.get("P2", {}).get("measured", {}) or {}
    limit = p2.get("limit")
    counts = [
        sum(1 for r in s.rows if (r.application_name or "").startswith(prefix)) for s in samples
    ]
    invokes: dict[str, OpEvent] = {}
    latencies: list[float] = []
    refused = info = ops = 0
    for e in events:
        if not isinstance(e, OpEvent) or e.worker == "peer":
            continue
        if e.type == "invoke":
            invokes[e.op] = e
            ops += 1
            continue
        inv = invokes.get(e.op)
        if inv is not None:
            latencies.append(max(0.0, e.time - inv.time))
        if e.type == "info":
            info += 1
        if e.sqlstate == "53300":
            refused += 1
    p1 = verdicts.get("P1", {}).get("evidence") or []
    p3 = verdicts.get("P3", {}).get("evidence") or []
    active = len(
        {(e.get("reap") or {}).get("pid") for e in p1 if e.get("clause") in ("P1a", "P1b")}
    )
    dups = sum(max(0, int(e.get("rows", 0)) - 1) for e in p3 if e.get("clause") == "P3-dup")
    terms: dict[str, int] = {}
    for e in events:
        if isinstance(e, TerminationEvent):
            key: str = e.cause
            if e.cause == "terminate_backend":
                key += f" by {_who(e.killer_application_name)}"
            terms[key] = terms.get(key, 0) + 1
    conv = p2.get("convergence_s")
    return RunFigures(
        driver=driver,
        scenario=scenario,
        seed=seed,
        run_dir=run_dir,
        result=str(summary.get("result", "unjudged")),
        verdicts={p: status.get(p, "unknown") for p in PROPS},
        why={p: why.get(p, "") for p in PROPS},
        limit=None if limit is None else int(limit),
        peak_backends=max(counts) if counts else None,
        convergence_s=None if conv is None else float(conv),
        refused_53300=refused,
        active_killed=active,
        duplicated_writes=dups,
        info_outcomes=info,
        operations=ops,
        latencies_s=tuple(latencies),
        terminations=terms,
        unjudged=summary.get("unjudged"),
    )


def _who(app: str | None) -> str:
    """A killer's application_name, shortened: a lease token names its service only."""
    if app is None:
        return "an unlogged session (the harness's admin)"
    if app.startswith("s=") and ";i=" in app:
        return f"a lease reaper ({app.split(';', 1)[0]})"
    return app


_WORST = {"fail": 3, "unknown": 2, "ok": 1}


@dataclass(frozen=True)
class Cell:
    """One (driver, scenario) over its seeds."""

    driver: str
    scenario: str
    runs: tuple[RunFigures, ...]

    @property
    def verdicts(self) -> dict[str, str]:
        out = {}
        for p in PROPS:
            states = [r.verdicts.get(p, "unknown") for r in self.runs]
            out[p] = max(states, key=lambda s: _WORST.get(s, 2)) if states else "unknown"
        return out

    def total(self, name: str) -> int:
        return sum(int(getattr(r, name)) for r in self.runs)

    @property
    def peak_backends(self) -> int | None:
        peaks = [r.peak_backends for r in self.runs if r.peak_backends is not None]
        return max(peaks) if peaks else None

    @property
    def limit(self) -> int | None:
        limits = [r.limit for r in self.runs if r.limit is not None]
        return limits[0] if limits else None

    @property
    def convergence_s(self) -> float | None:
        """The worst over the seeds; None if any seed never converged (or was not measured)."""
        vals = [r.convergence_s for r in self.runs]
        if not vals or any(v is None for v in vals):
            return None
        return max(v for v in vals if v is not None)

    @property
    def latencies_s(self) -> tuple[float, ...]:
        return tuple(x for r in self.runs for x in r.latencies_s)

    def p50_ms(self) -> float | None:
        return _pct_ms(self.latencies_s, 0.50)

    def p99_ms(self) -> float | None:
        return _pct_ms(self.latencies_s, 0.99)

    @property
    def terminations(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.runs:
            for k, n in r.terminations.items():
                out[k] = out.get(k, 0) + n
        return out


def combine(runs: Iterable[RunFigures]) -> list[Cell]:
    """Runs grouped by (driver, scenario), in the order they first appear."""
    groups: dict[tuple[str, str], list[RunFigures]] = {}
    for r in runs:
        groups.setdefault((r.driver, r.scenario), []).append(r)
    return [Cell(d, s, tuple(rs)) for (d, s), rs in groups.items()]


__all__ = ["PROPS", "Cell", "RunFigures", "combine", "measure_run"]
