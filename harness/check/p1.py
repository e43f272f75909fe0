"""P1 — no active connection is ever killed.

Judged from the reaper's ledger (every kill, with the ``pg_stat_activity`` row
it acted on), the samples, the backend mappings and the history. See
:func:`check_p1` for the clauses.
"""

from __future__ import annotations

import math
from typing import Any

from harness.check.evidence import killer_words, reap_json
from harness.check.run import Run, lease_expiry_ms
from harness.check.timeline import Op
from harness.check.verdict import Verdict, verdict
from harness.history import ReapEvent, to_json

P1_TITLE = "no active connection killed"


def _p1a_active(run: Run, kill: ReapEvent) -> list[dict[str, Any]]:
    """(a) the kill hit a running statement, by the ledger row or by the samples."""
    if kill.state == "active":
        return [
            {
                "clause": "P1a",
                "explain": f"{killer_words(kill)} killed backend {kill.pid} at {run.at(kill.time)}"
                " although the row it acted on said state 'active'",
                "reap": reap_json(kill),
            }
        ]
    sample = run.last_sample_before(kill.time)
    row = sample.row(kill.pid) if sample else None
    if sample is None or row is None or row.state != "active":
        return []
    newer = kill.state_change is None or (
        row.state_change is not None and row.state_change > kill.state_change
    )
    if not newer:
        return []
    return [
        {
            "clause": "P1a",
            "explain": f"backend {kill.pid} was running a statement that started after the"
            f" reaper's scan (sample at {run.at(sample.time)}) when {killer_words(kill)}"
            f" killed it at {run.at(kill.time)}",
            "reap": reap_json(kill),
            "sample": {"time": sample.time, "row": to_json(row)},
        }
    ]


def _p1b_in_use(run: Run, kill: ReapEvent) -> list[dict[str, Any]]:
    """(b) the victim was the current backend of a live, unfrozen worker with an op in flight."""
    tl = run.timeline
    owner = tl.owner(kill.pid, kill.time)
    if owner is None:
        return []
    w = owner.worker
    if tl.frozen_at(w, kill.time) or tl.deaths.get(w, math.inf) <= kill.time:
        return []
    current = tl.current_backend(w, kill.time)
    if current is None or current.backend_pid != kill.pid:
        return []  # the worker had already moved to another backend
    busy = tl.in_progress(w, kill.time)
    if not busy:
        return []
    return [
        {
            "clause": "P1b",
            "explain": f"{killer_words(kill)} killed backend {kill.pid} of worker {w} at"
            f" {run.at(kill.time)} while {w} was not frozen and had op"
            f" {', '.join(o.id for o in busy)} in progress",
            "reap": reap_json(kill),
            "worker": w,
            "ops": [o.to_json() for o in busy],
            "frozen_intervals": [iv.to_json() for iv in tl.frozen.get(w, [])],
        }
    ]


def _p1c_lease_valid(run: Run, kill: ReapEvent) -> list[dict[str, Any]]:
    """(c) the victim's lease was still valid at the kill's true wall time.

    The lease is the ``e=`` of the ledger's application_name (else its
    ``lease_expiry_ms``), or a renewal the owning worker had confirmed before
    the kill (its latest backend mapping of the pid).
    """
    recorded = lease_expiry_ms(kill.application_name)
    if recorded is None:
        recorded = kill.lease_expiry_ms
    base = {"reap": reap_json(kill), "kill_wall": kill.wall}
    if recorded is not None and recorded / 1000.0 > kill.wall:
        left = recorded / 1000.0 - kill.wall
        return [
            {
                "clause": "P1c",
                "explain": f"{killer_words(kill)} killed backend {kill.pid} at {run.at(kill.time)}"
                f" with {left:.3f}s left on the lease it recorded",
                "lease_expiry_ms": recorded,
                "source": "ledger",
                **base,
            }
        ]
    owner = run.timeline.owner(kill.pid, kill.time)
    if owner is not None and owner.lease_expiry > kill.wall:
        left = owner.lease_expiry - kill.wall
        return [
            {
                "clause": "P1c",
                "explain": f"{killer_words(kill)} killed backend {kill.pid} at {run.at(kill.time)}"
                f" although worker {owner.worker} had renewed its lease at"
                f" {run.at(owner.time)} ({left:.3f}s left)",
                "lease_expiry_ms": round(owner.lease_expiry * 1000),
                "source": "backend mapping",
                "renewed_application_name": owner.application_name,
                **base,
            }
        ]
    return []


def _externally_killed(run: Run, op: Op) -> bool:
    """A ``terminate_backend`` of the op's backend or a ``pg_restart`` explains a 57P01.

    The window runs from the start of the op's connection (the worker's first
    mapping of that backend; else the invoke) to the op's end: a kill before
    the invoke still surfaces on the connection's next statement.
    """
    tl, pids, w = run.timeline, op.backend_pids, op.worker
    starts = [op.start]
    if w is not None:
        starts += [m.time for p in pids if (m := tl.first_mapping(w, p)) is not None]
    lo, hi = min(starts), op.end
    for f in tl.faults_of({"terminate_backend", "pg_restart"}):
        if not lo <= f.time <= hi:
            continue
        if f.f == "pg_restart" or not pids or f.value.get("backend_pid") in pids:
            return True
    return False


def _p1d_saw_57p01(run: Run) -> list[dict[str, Any]]:
    """(d) an unfrozen worker got 57P01 on an op it started under a valid lease."""
    tl, out = run.timeline, []
    for op in tl.ops:
        if op.sqlstate != "57P01" or op.invoke.lease_valid is not True:
            continue
        if tl.frozen_during(op.worker, op.start, op.end) or _externally_killed(run, op):
            continue
        kills = [reap_json(k) for k in run.judged_kills if k.pid in op.backend_pids]
        out.append(
            {
                "clause": "P1d",
                "explain": f"worker {op.worker} got 57P01 (terminated) on op {op.id}, invoked at"
                f" {run.at(op.start)} under a valid lease, while not frozen and with no"
                " external terminate or restart to explain it",
                "op": op.to_json(),
                "reaps_of_its_backend": kills,
            }
        )
    return out


def check_p1(run: Run) -> Verdict:
    """P1: no active connection killed.

    For every ledger entry with result ``killed`` (victim pid, time t):
    (a) its recorded state was 'active', or the last sample before t shows the
    pid 'active' with a ``state_change`` newer than the one the reaper recorded
    (a statement started after the scan); (b) the pid was, by the backend
    mapping at t, the current backend of a worker that was alive, not frozen,
    and had an operation in progress; (c) its lease was valid at the kill's
    true wall time (see :func:`_p1c_lease_valid`). And (d): an op invoked with
    ``lease_valid`` whose worker was not frozen during it ended with SQLSTATE
    57P01, with no ``terminate_backend`` of its backend or ``pg_restart`` in
    its connection's window.
    """
    evidence: list[dict[str, Any]] = []
    for kill in run.judged_kills:
        evidence += _p1a_active(run, kill) + _p1b_in_use(run, kill)
        if run.decided_kill(kill):
            evidence += _p1c_lease_valid(run, kill)
    evidence += _p1d_saw_57p01(run)
    return verdict(
        "P1",
        P1_TITLE,
        evidence,
        f"{len(run.judged_kills)} termination(s) (reaper or server), none of an active,"
        " in-use or leased connection;"
        " no unexplained 57P01",
        cannot_judge=run.sampling_problems,
        kills=len(run.judged_kills),
    )
