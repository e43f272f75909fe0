"""The five properties, as pure functions of a recorded run.

Jepsen's checker: it only reads what was recorded — the history, the
``pg_stat_activity`` samples, the reaper ledger (``reap`` events in the
history) and the final database state. It starts nothing, connects to nothing,
and needs no secret: signature checks go through ``RunConfig.verify``, which
the layer that builds the :class:`Run` supplies.

Each ``check_pN(run)`` returns a :class:`Verdict` whose ``evidence`` names the
exact op ids, backend pids and times of every violation (one dict per
violation, with a ``clause`` and an ``explain`` sentence), and whose
``measured`` holds what was measured on the way. Time-of-event definitions
(frozen intervals, operations in progress, backend ownership) live in
:mod:`harness.timeline` so every property uses the same ones.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from harness.history import (
    FREEZE_FAULTS,
    UNFREEZE_FAULTS,
    WRITE_FS,
    BackendEvent,
    Event,
    FaultEvent,
    FinalState,
    ForeignEvent,
    ReapEvent,
    Sample,
    WorkerEvent,
)
from harness.timeline import Op, Timeline

DEFAULT_ESCAPED: frozenset[str] = frozenset({"OperationalError", "InterfaceError"})
"""psycopg errors that should never reach the caller raw: the client classifies them."""

ZOMBIE_FAULTS: frozenset[str] = FREEZE_FAULTS | {"reclaim"}


def is_routine_freeze(fault: FaultEvent) -> bool:
    """The fleet parks every worker when its invocation returns (``cause: idle``):
    that is Lambda's normal life, not a fault that makes zombies, so it does not
    move P2's anchor (it still makes the worker frozen for P1)."""
    return fault.f == "freeze" and fault.value.get("cause") == "idle"


"""Faults that can leave a zombie backend behind; P2's clock starts at the last one."""

_EXPIRY = re.compile(r"(?:^|;)e=(\d+)(?:;|$)")


@dataclass(frozen=True)
class RunConfig:
    """What the checker needs to know about how the run was configured.

    ``own_app_prefix`` defaults to ``s=<service>;``. ``foreign_pids`` adds to
    the foreign backends registered in the history. ``verify`` says whether an
    application_name carries a lease signed with the service's secret; without
    it P5 cannot check signatures and says so.
    """

    service: str
    connection_limit: int
    lease_ttl: float
    min_idle: float
    max_cooldown: float
    grace: float
    slack: float
    retry_budget_s: float
    own_app_prefix: str = ""
    foreign_pids: frozenset[int] = frozenset()
    verify: Callable[[str], bool] | None = None
    escaped_error_classes: frozenset[str] = DEFAULT_ESCAPED

    def __post_init__(self) -> None:
        if not self.own_app_prefix:
            object.__setattr__(self, "own_app_prefix", f"s={self.service};")

    @property
    def convergence_bound(self) -> float:
        """P2's bound after the last freeze: lease TTL + minimum idle + max cooldown + slack."""
        return self.lease_ttl + self.min_idle + self.max_cooldown + self.slack


@dataclass(frozen=True)
class Run:
    """Everything recorded about one run, ready to be judged."""

    events: Sequence[Event]
    samples: Sequence[Sample]
    final: FinalState
    config: RunConfig

    @cached_property
    def timeline(self) -> Timeline:
        return Timeline(self.events)

    @cached_property
    def sorted_samples(self) -> list[Sample]:
        return sorted(self.samples, key=lambda s: s.time)

    @cached_property
    def ledger(self) -> list[ReapEvent]:
        """The reaper ledger: every ``reap`` entry, by time."""
        return [e for e in self.timeline.events if isinstance(e, ReapEvent)]

    @cached_property
    def kills(self) -> list[ReapEvent]:
        return [e for e in self.ledger if e.result == "killed"]

    @cached_property
    def t0(self) -> float:
        """The earliest recorded time; evidence sentences say times relative to it."""
        times = [self.timeline.start] if self.timeline.events else []
        if self.sorted_samples:
            times.append(self.sorted_samples[0].time)
        return min(times, default=0.0)

    def at(self, t: float) -> str:
        """A time as a person reads it: seconds since the start of the run."""
        if math.isinf(t):
            return "the end" if t > 0 else "the start"
        return f"t=+{t - self.t0:.3f}s"

    def last_sample_before(self, t: float) -> Sample | None:
        ss = self.sorted_samples
        i = bisect.bisect_left([s.time for s in ss], t)
        return ss[i - 1] if i else None

    @cached_property
    def foreign_pids(self) -> frozenset[int]:
        """Backends registered foreign at any time, plus the configured ones."""
        registered = {
            e.backend_pid
            for e in self.timeline.events
            if isinstance(e, ForeignEvent) and e.f == "register"
        }
        return frozenset(registered) | self.config.foreign_pids

    def service_count(self, sample: Sample) -> int:
        """The service's own backends in ``sample``: its prefix, and not registered
        foreign (a forged lease carries the prefix but is nobody's connection)."""
        p, foreign = self.config.own_app_prefix, self.foreign_pids
        return sum(
            1
            for r in sample.rows
            if (r.application_name or "").startswith(p) and r.pid not in foreign
        )


@dataclass(frozen=True)
class Verdict:
    """One property's verdict on one run."""

    prop: str
    """``P1`` … ``P5``."""
    title: str
    ok: bool
    summary: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    measured: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "property": self.prop,
            "title": self.title,
            "ok": self.ok,
            "summary": self.summary,
            "evidence": self.evidence,
            "measured": self.measured,
        }


def _verdict(
    prop: str, title: str, evidence: list[dict[str, Any]], ok_summary: str, **measured: Any
) -> Verdict:
    if evidence:
        clauses = sorted({e["clause"] for e in evidence})
        summary = f"{len(evidence)} violation(s) ({', '.join(clauses)}): {evidence[0]['explain']}"
        return Verdict(prop, title, False, summary, evidence, dict(measured))
    return Verdict(prop, title, True, ok_summary, [], dict(measured))


def _reap_json(r: ReapEvent) -> dict[str, Any]:
    return {
        "reaper": r.worker,
        "pid": r.pid,
        "result": r.result,
        "application_name": r.application_name,
        "state": r.state,
        "state_change": r.state_change,
        "time": r.time,
        "wall": r.wall,
    }


def lease_expiry_ms(application_name: str | None) -> int | None:
    """The ``e=`` field of a lease token, or None when there is none."""
    m = _EXPIRY.search(application_name or "")
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------------------ P1

P1_TITLE = "no active connection killed"


def _p1a_active(run: Run, kill: ReapEvent) -> list[dict[str, Any]]:
    """(a) the kill hit a running statement, by the ledger row or by the samples."""
    if kill.state == "active":
        return [
            {
                "clause": "P1a",
                "explain": f"reaper {kill.worker} killed backend {kill.pid} at {run.at(kill.time)}"
                " although the row it acted on said state 'active'",
                "reap": _reap_json(kill),
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
            f" reaper's scan (sample at {run.at(sample.time)}) when reaper {kill.worker}"
            f" killed it at {run.at(kill.time)}",
            "reap": _reap_json(kill),
            "sample": {"time": sample.time, "row": row.to_json()},
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
            "explain": f"reaper {kill.worker} killed backend {kill.pid} of worker {w} at"
            f" {run.at(kill.time)} while {w} was not frozen and had op"
            f" {', '.join(o.id for o in busy)} in progress",
            "reap": _reap_json(kill),
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
    base = {"reap": _reap_json(kill), "kill_wall": kill.wall}
    if recorded is not None and recorded / 1000.0 > kill.wall:
        left = recorded / 1000.0 - kill.wall
        return [
            {
                "clause": "P1c",
                "explain": f"reaper {kill.worker} killed backend {kill.pid} at {run.at(kill.time)}"
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
                "explain": f"reaper {kill.worker} killed backend {kill.pid} at {run.at(kill.time)}"
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
        kills = [_reap_json(k) for k in run.kills if k.pid in op.backend_pids]
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
    for kill in run.kills:
        evidence += _p1a_active(run, kill) + _p1b_in_use(run, kill) + _p1c_lease_valid(run, kill)
    evidence += _p1d_saw_57p01(run)
    return _verdict(
        "P1",
        P1_TITLE,
        evidence,
        f"{len(run.kills)} reaper kill(s), none of an active, in-use or leased connection;"
        " no unexplained 57P01",
        kills=len(run.kills),
    )


# ------------------------------------------------------------------------------ P2

P2_TITLE = "zombies converge"


def _convergence(run: Run, anchor: float) -> float | None:
    """Seconds from ``anchor`` to the first sample from which the count stays within the limit."""
    after = [s for s in run.sorted_samples if s.time >= anchor]
    if not after:
        return None
    limit = run.config.connection_limit
    over = [i for i, s in enumerate(after) if run.service_count(s) > limit]
    if not over:
        return 0.0
    if over[-1] == len(after) - 1:
        return None
    return after[over[-1] + 1].time - anchor


def _p2_over_limit(run: Run, deadline: float) -> list[dict[str, Any]]:
    """Stretches of consecutive samples from the deadline on with too many service backends."""
    limit, out = run.config.connection_limit, []
    stretch: list[tuple[Sample, int]] = []

    def close() -> None:
        if not stretch:
            return
        peak, n = max(stretch, key=lambda sn: sn[1])
        prefix = run.config.own_app_prefix
        out.append(
            {
                "clause": "P2-count",
                "explain": f"{n} service backends (limit {limit}) from {run.at(stretch[0][0].time)}"
                f" to {run.at(stretch[-1][0].time)}, after the deadline {run.at(deadline)}",
                "from": stretch[0][0].time,
                "to": stretch[-1][0].time,
                "samples": len(stretch),
                "peak": n,
                "peak_rows": [
                    r.to_json() for r in peak.rows if (r.application_name or "").startswith(prefix)
                ],
            }
        )
        stretch.clear()

    for s in run.sorted_samples:
        if s.time < deadline:
            continue
        n = run.service_count(s)
        if n > limit:
            stretch.append((s, n))
        else:
            close()
    close()
    return out


def _p2_too_many(run: Run, deadline: float) -> list[dict[str, Any]]:
    """Ops that completed with 53300 (too many clients) after the deadline."""
    return [
        {
            "clause": "P2-53300",
            "explain": f"op {op.id} of worker {op.worker} failed with 53300 (too many clients)"
            f" at {run.at(op.end)}, after the deadline {run.at(deadline)}",
            "op": op.to_json(),
        }
        for op in run.timeline.ops
        if op.sqlstate == "53300" and op.end >= deadline
    ]


def check_p2(run: Run) -> Verdict:
    """P2: zombies converge.

    Anchor = the last freeze-type fault (``freeze``, ``freeze_mid_*``,
    ``reclaim``; not the routine parking of a worker after its invocation,
    see :func:`is_routine_freeze`), or the start of the history if there is none; deadline T =
    anchor + lease_ttl + min_idle + max_cooldown + slack. Judged only if an
    operation is invoked at or after T (invocations still arriving): then every
    sample at or after T must count at most ``connection_limit`` backends whose
    application_name starts with ``own_app_prefix``, and no op may complete
    with 53300 at or after T. If nothing is invoked after T the verdict is ok
    but its summary and ``measured["reached"] = False`` say it was not judged.
    Measured: convergence time (anchor to the first sample from which the
    count stays within the limit; None if it never does) against the bound.
    """
    cfg, tl = run.config, run.timeline
    zombies = [f for f in tl.faults_of(ZOMBIE_FAULTS) if not is_routine_freeze(f)]
    anchor = zombies[-1].time if zombies else tl.start
    bound = cfg.convergence_bound
    deadline = anchor + bound
    conv = _convergence(run, anchor)
    reached = any(op.start >= deadline for op in tl.ops)
    after = [run.service_count(s) for s in run.sorted_samples if s.time >= deadline]
    measured = {
        "anchor": anchor,
        "anchor_fault": zombies[-1].f if zombies else None,
        "bound_s": bound,
        "deadline": deadline,
        "convergence_s": conv,
        "within_bound": conv is not None and conv <= bound,
        "reached": reached,
        "limit": cfg.connection_limit,
        "max_count_after_deadline": max(after, default=None),
    }
    if not reached:
        return Verdict(
            "P2",
            P2_TITLE,
            True,
            f"NOT JUDGED: no invocation arrived after the deadline {run.at(deadline)}"
            f" (last freeze-type fault at {run.at(anchor)} + bound {bound:.3f}s);"
            " this is not evidence that zombies converge",
            [],
            measured,
        )
    evidence = _p2_over_limit(run, deadline) + _p2_too_many(run, deadline)
    conv_txt = "never" if conv is None else f"{conv:.3f}s"
    return _verdict(
        "P2",
        P2_TITLE,
        evidence,
        f"backend count within {cfg.connection_limit} from the deadline on; converged in"
        f" {conv_txt} against a bound of {bound:.3f}s",
        **measured,
    )


# ------------------------------------------------------------------------------ P3

P3_TITLE = "no duplicate writes"


def _p3_expected(outcomes: Iterable[str]) -> tuple[int, int]:
    """Allowed (min, max) rows for one op_id given its ops' outcomes (``open`` = ``info``)."""
    outs = set(outcomes)
    if "ok" in outs:
        return 1, 1
    if outs <= {"fail"}:
        return 0, 0
    return 0, 1


def _p3_rows(run: Run) -> list[dict[str, Any]]:
    by_op_id: dict[str, list[Op]] = {}
    for op in run.timeline.ops:
        if op.invoke.f in WRITE_FS:
            key = str(op.invoke.value.get("op_id", op.id))
            by_op_id.setdefault(key, []).append(op)
    counts, out = run.final.ledger_counts, []
    for op_id, ops in by_op_id.items():
        n = counts.get(op_id, 0)
        lo, hi = _p3_expected(o.outcome for o in ops)
        if lo <= n <= hi:
            continue
        outcomes = "/".join(o.outcome for o in ops)
        want = f"exactly {lo}" if lo == hi else f"{lo} to {hi}"
        clause = "P3-dup" if n > 1 else f"P3-{outcomes.split('/')[0]}"
        out.append(
            {
                "clause": clause,
                "explain": f"write op_id {op_id} (op {', '.join(o.id for o in ops)}, ended"
                f" {outcomes}) has {n} ledger row(s); allowed {want}",
                "op_id": op_id,
                "rows": n,
                "allowed": [lo, hi],
                "ops": [o.to_json() for o in ops],
            }
        )
    for op_id, n in counts.items():
        if op_id not in by_op_id and n > 0:
            out.append(
                {
                    "clause": "P3-phantom",
                    "explain": f"{n} ledger row(s) with op_id {op_id}, which no write invoked",
                    "op_id": op_id,
                    "rows": n,
                }
            )
    return out


def _p3_totals(run: Run) -> list[dict[str, Any]]:
    f, out = run.final, []
    if f.counter != f.ledger_rows:
        out.append(
            {
                "clause": "P3-counter",
                "explain": f"counter is {f.counter} but the ledger has {f.ledger_rows} row(s)",
                "counter": f.counter,
                "ledger_rows": f.ledger_rows,
            }
        )
    total = sum(f.ledger_counts.values())
    if total != f.ledger_rows:
        out.append(
            {
                "clause": "P3-final-state",
                "explain": f"ledger_counts add up to {total} row(s) but ledger_rows is"
                f" {f.ledger_rows}: the final state does not add up",
                "sum_ledger_counts": total,
                "ledger_rows": f.ledger_rows,
            }
        )
    return out


def check_p3(run: Run) -> Verdict:
    """P3: no duplicate writes.

    Writes are ops with ``f`` ``write``/``write_once``, keyed by ``value.op_id``.
    Per op_id: an ``ok`` ⇒ exactly one ledger row; only ``fail`` ⇒ none;
    otherwise (``info``, or no completion) zero or one; never two. A ledger
    op_id no write invoked is a violation, and ``counter == ledger_rows``
    (with ``ledger_rows`` equal to the sum of ``ledger_counts``).
    """
    evidence = _p3_rows(run) + _p3_totals(run)
    writes = sum(1 for op in run.timeline.ops if op.invoke.f in WRITE_FS)
    return _verdict(
        "P3",
        P3_TITLE,
        evidence,
        f"{writes} write(s), {run.final.ledger_rows} ledger row(s): every outcome matches",
        writes=writes,
        ledger_rows=run.final.ledger_rows,
    )


# ------------------------------------------------------------------------------ P4

P4_TITLE = "liveness"

_NOT_HEALING = FREEZE_FAULTS | UNFREEZE_FAULTS


def healed_at(tl: Timeline) -> float:
    """The last ``heal`` fault; else the last fault that is not freeze/thaw/reclaim; else -inf."""
    heals = tl.faults_of({"heal"})
    if heals:
        return heals[-1].time
    other = [f for f in tl.faults if f.f not in _NOT_HEALING]
    return other[-1].time if other else -math.inf


def _interrupted(tl: Timeline, op: Op) -> bool:
    """The op's worker was frozen or reclaimed after it started and before it ended."""
    if tl.frozen_during(op.worker, op.start, op.end):
        return True
    died = tl.deaths.get(op.worker) if op.worker is not None else None
    return died is not None and op.start < died <= op.end


def _p4_crashes(run: Run) -> list[dict[str, Any]]:
    return [
        {
            "clause": "P4-crash",
            "explain": f"worker {e.worker} (os pid {e.os_pid}) crashed at {run.at(e.time)}:"
            f" {e.detail or 'no detail'} (exit code {e.exitcode})",
            "worker": e.worker,
            "os_pid": e.os_pid,
            "exitcode": e.exitcode,
            "detail": e.detail,
            "time": e.time,
        }
        for e in run.timeline.events
        if isinstance(e, WorkerEvent) and e.f == "crash"
    ]


Start = FaultEvent | WorkerEvent


def _p4_first_op(run: Run, worker: str, healed: float) -> tuple[Op | None, Start | None]:
    """The first op after the worker's next thaw/spawn after ``healed``; skips interrupted ops."""
    tl = run.timeline
    starts: list[Start] = [
        e
        for e in tl.events
        if isinstance(e, FaultEvent | WorkerEvent)
        and e.worker == worker
        and e.time >= healed
        and e.f in ("thaw", "spawn")
    ]
    ops = sorted(tl.ops_of(worker), key=lambda o: o.start)
    after = -math.inf
    for s in starts:
        if s.time < after:
            continue
        op = next((o for o in ops if o.start >= s.time), None)
        if op is None:
            return None, None
        if not _interrupted(tl, op):
            return op, s
        after = op.start
    return None, None


def _p4_recovery(run: Run, healed: float) -> tuple[list[dict[str, Any]], list[str]]:
    budget, tl = run.config.retry_budget_s, run.timeline
    workers = sorted({e.worker for e in tl.events if e.worker is not None})
    out, unjudged = [], []
    for w in workers:
        op, start = _p4_first_op(run, w, healed)
        if op is None or start is None:
            continue
        took = op.end - op.start
        if op.outcome == "ok" and took <= budget:
            continue
        if op.completion is None and tl.end - op.start < budget:
            unjudged.append(op.id)
            continue
        what = (
            f"ended {op.outcome} ({_err_txt(op)})"
            if op.outcome in ("fail", "info")
            else "never completed"
            if op.completion is None
            else f"took {took:.3f}s"
        )
        out.append(
            {
                "clause": "P4-recovery",
                "explain": f"worker {w}'s first op after its {start.f} at {run.at(start.time)}"
                f" (after the faults healed at {run.at(healed)}), op {op.id}, {what};"
                f" it should succeed within {budget:.3f}s",
                "op": op.to_json(),
                "after": {"event": start.f, "time": start.time},
                "healed": None if math.isinf(healed) else healed,
                "budget_s": budget,
            }
        )
    return out, unjudged


def _err_txt(op: Op) -> str:
    e = op.error
    return "no error recorded" if e is None else f"{e.cls} {e.sqlstate or '-'}: {e.message}"


def _escaped(classes: frozenset[str], cls: str) -> bool:
    return cls in classes or cls.rsplit(".", 1)[-1] in classes


def _p4_escaped(run: Run, healed: float) -> list[dict[str, Any]]:
    classes = run.config.escaped_error_classes
    return [
        {
            "clause": "P4-escaped",
            "explain": f"op {op.id} of worker {op.worker} failed at {run.at(op.end)}, after the"
            f" faults healed, with a raw {_err_txt(op)} the client should have handled",
            "op": op.to_json(),
        }
        for op in run.timeline.ops
        if op.outcome == "fail"
        and op.error is not None
        and _escaped(classes, op.error.cls)
        and op.end > healed
    ]


def check_p4(run: Run) -> Verdict:
    """P4: liveness.

    No worker ``crash`` event. With H = :func:`healed_at`: for every worker,
    the first op it invokes at or after its first ``thaw``/``spawn`` at or
    after H completes ``ok`` within ``retry_budget_s`` of its invoke. An op
    interrupted by a freeze or reclaim of its own worker does not count; the
    next thaw/spawn after it is tried instead. An op still open when the
    history ends, less than the budget after its invoke, cannot be judged and
    is listed in ``measured["unjudged"]``. And no op completing ``fail`` after
    H has an error class in ``escaped_error_classes``.
    """
    healed = healed_at(run.timeline)
    recovery, unjudged = _p4_recovery(run, healed)
    evidence = _p4_crashes(run) + recovery + _p4_escaped(run, healed)
    return _verdict(
        "P4",
        P4_TITLE,
        evidence,
        "no worker crashed; every worker's first op after the faults healed succeeded"
        f" within {run.config.retry_budget_s:.3f}s",
        healed=None if math.isinf(healed) else healed,
        unjudged=unjudged,
    )


# ------------------------------------------------------------------------------ P5

P5_TITLE = "foreign safety"


def _foreign_at(run: Run, pid: int, t: float) -> ForeignEvent | None:
    """The registration making ``pid`` foreign at ``t`` (latest of foreign/backend events)."""
    latest: Event | None = None
    for e in run.timeline.events:
        if e.time > t:
            break
        if (isinstance(e, ForeignEvent) and e.backend_pid == pid) or (
            isinstance(e, BackendEvent) and e.backend_pid == pid
        ):
            latest = e
    if isinstance(latest, ForeignEvent) and latest.f == "register":
        return latest
    return None


def _p5_kill(run: Run, kill: ReapEvent) -> list[dict[str, Any]]:
    cfg, app = run.config, kill.application_name or ""
    reasons = []
    reg = _foreign_at(run, kill.pid, kill.time)
    if reg is not None or kill.pid in cfg.foreign_pids:
        kind = reg.kind if reg else "configured"
        reasons.append(("P5-foreign", f"a registered foreign backend ({kind})"))
    if not app.startswith(cfg.own_app_prefix):
        reasons.append(("P5-prefix", f"not the service's ({app!r} lacks {cfg.own_app_prefix!r})"))
    elif cfg.verify is not None and not cfg.verify(app):
        reasons.append(("P5-signature", "carrying a lease not signed with the service's secret"))
    return [
        {
            "clause": clause,
            "explain": f"reaper {kill.worker} killed backend {kill.pid} at {run.at(kill.time)},"
            f" {why}",
            "reap": _reap_json(kill),
        }
        for clause, why in reasons
    ]


def _p5_vanished(run: Run) -> list[dict[str, Any]]:
    """Registered foreign backends that left the samples with nothing to explain it."""
    tl, out = run.timeline, []
    explainers = tl.faults_of({"terminate_backend", "pg_restart"})
    for reg in (e for e in tl.events if isinstance(e, ForeignEvent) and e.f == "register"):
        pid = reg.backend_pid
        later = [s for s in run.sorted_samples if s.time >= reg.time]
        seen = [i for i, s in enumerate(later) if s.row(pid) is not None]
        if not seen or seen[-1] == len(later) - 1:
            continue
        last, gone = later[seen[-1]], later[seen[-1] + 1]
        explained = any(
            reg.time <= f.time <= gone.time
            and (f.f == "pg_restart" or f.value.get("backend_pid") == pid)
            for f in explainers
        ) or any(
            isinstance(e, ForeignEvent)
            and e.f == "release"
            and e.backend_pid == pid
            and reg.time <= e.time <= gone.time
            for e in tl.events
        )
        if explained or any(k.pid == pid for k in run.kills):
            continue  # a ledger kill of it is reported as a kill
        out.append(
            {
                "clause": "P5-vanished",
                "explain": f"foreign backend {pid} ({reg.kind}) disappeared between samples at"
                f" {run.at(last.time)} and {run.at(gone.time)} with no external terminate,"
                " restart or release to explain it",
                "pid": pid,
                "kind": reg.kind,
                "last_seen": last.time,
                "first_missing": gone.time,
            }
        )
    return out


def check_p5(run: Run) -> Verdict:
    """P5: foreign safety.

    No ledger entry ``killed`` a backend that was registered foreign at the
    time (a ``foreign`` event not superseded by a later backend mapping of
    that pid, or a pid in ``RunConfig.foreign_pids``), or whose
    application_name does not start with ``own_app_prefix``, or — when
    ``verify`` is given — whose lease signature ``verify`` rejects. And no
    registered foreign backend disappears from the samples (seen, then absent
    from a later sample) unless a ``terminate_backend`` of it, a
    ``pg_restart`` or a ``foreign`` ``release`` of it came first.
    """
    evidence = [e for k in run.kills for e in _p5_kill(run, k)] + _p5_vanished(run)
    checked = run.config.verify is not None
    ok = f"none of {len(run.kills)} reaper kill(s) touched a foreign backend"
    if not checked:
        ok += " (signatures NOT checked: no verify function given)"
    return _verdict("P5", P5_TITLE, evidence, ok, signatures_checked=checked)


# ------------------------------------------------------------------------------ all

CHECKS: tuple[Callable[[Run], Verdict], ...] = (check_p1, check_p2, check_p3, check_p4, check_p5)


def check_all(run: Run) -> list[Verdict]:
    """The five verdicts, P1 to P5."""
    return [check(run) for check in CHECKS]


def render_verdict(v: Verdict, *, max_evidence: int = 20) -> str:
    """A verdict in words a person can follow: the headline, then one line per violation."""
    state = "holds" if v.ok else "VIOLATED"
    lines = [f"{v.prop} {v.title}: {state}", f"  {v.summary}"]
    for e in v.evidence[:max_evidence]:
        lines.append(f"  - [{e['clause']}] {e['explain']}")
    if len(v.evidence) > max_evidence:
        lines.append(f"  … and {len(v.evidence) - max_evidence} more")
    if v.measured:
        shown = ", ".join(f"{k}={_fmt(x)}" for k, x in v.measured.items())
        lines.append(f"  measured: {shown}")
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)
