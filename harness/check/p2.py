"""P2 — zombie connections converge below the limit, and each zombie goes.

Judged from the samples and the history, against the limit and the
convergence bound of :class:`~harness.check.run.RunConfig`: the service's
backend count from the deadline on, and every zombie backend within the bound
of when it became one. See :func:`check_p2`.
"""

from __future__ import annotations

import math
from typing import Any

from harness.check.run import ZOMBIE_FAULTS, Run, is_routine_freeze
from harness.check.verdict import Verdict, verdict
from harness.check.zombies import (
    Zombie,
    covered_deadline,
    overdue,
    refused_at_capacity,
    zombies,
)
from harness.history import Sample, to_json

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
                    to_json(r) for r in peak.rows if run.is_service_row(r.application_name, r.pid)
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


def _p2_too_many(
    run: Run, deadline: float, zs: list[Zombie]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Ops that completed with 53300 (too many clients) after the deadline while some
    zombie still held a slot or below the limit; and those refused at capacity
    (:func:`~harness.check.zombies.refused_at_capacity`)."""
    out, at_capacity = [], []
    for op in run.timeline.ops:
        if op.sqlstate != "53300" or op.end < deadline:
            continue
        if refused_at_capacity(run, zs, op):
            at_capacity.append(op.id)
            continue
        holding = overdue(run, zs, op.end)
        why = (
            f"while {len(holding)} zombie(s) older than the bound held slots (backend"
            f" {holding[0].pid} of {holding[0].worker}, {holding[0].why} since"
            f" {run.at(holding[0].since)})"
            if holding
            else "below the service's limit"
        )
        out.append(
            {
                "clause": "P2-53300",
                "explain": f"op {op.id} of worker {op.worker} failed with 53300 (too many"
                f" clients) at {run.at(op.end)}, after the deadline {run.at(deadline)}, {why}",
                "op": op.to_json(),
                "zombies": [z.pid for z in holding],
            }
        )
    return out, at_capacity


def _p2_zombies(
    run: Run, zs: list[Zombie]
) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """Every zombie gone within the bound of when it became one, counted while
    invocations arrive (:func:`~harness.check.zombies.covered_deadline`): evidence,
    reasons some could not be judged, and what was measured."""
    cfg, tl = run.config, run.timeline
    bound, gap = cfg.convergence_bound, cfg.max_cooldown + cfg.slack
    last_invoke = max((op.start for op in tl.ops), default=-math.inf)
    out: list[dict[str, Any]] = []
    unjudged: list[str] = []
    lived: list[float] = []
    after_last: list[int] = []
    for z in zs:
        deadline = covered_deadline(run, z.since, bound, gap)
        # presence is contiguous: it was there at every sample from since to last_seen
        there_until = min(z.last_seen, z.until)
        if deadline is not None and there_until >= deadline and last_invoke >= deadline:
            out.append(
                {
                    "clause": "P2-zombie",
                    "explain": f"backend {z.pid} of worker {z.worker} has been a zombie"
                    f" ({z.why}) since {run.at(z.since)} and was still there at"
                    f" {run.at(there_until)}, past its deadline {run.at(deadline)}"
                    f" (bound {bound:.3f}s while invocations arrive)",
                    "zombie": z.to_json(),
                    "deadline": deadline,
                    "bound_s": bound,
                }
            )
        elif z.until <= z.last_seen:
            lived.append(z.until - z.since)  # its worker thawed: no zombie any more
        elif z.gone_at is not None:
            lived.append(z.gone_at - z.since)
        elif z.since >= last_invoke:
            # it became one after the last invocation (the run's final parking): no
            # invocation arrived to oblige a reaper, so P2 says nothing about it
            after_last.append(z.pid)
        else:
            unjudged.append(
                f"zombie backend {z.pid} of worker {z.worker} ({z.why} since {run.at(z.since)})"
                " was still there when the record ends, before invocations had run for its"
                f" bound of {bound:.3f}s"
            )
    measured: dict[str, Any] = {
        "zombies": len(lived) + len(out) + len(unjudged),
        "longest_zombie_s": max(lived, default=None),
        "zombies_after_last_invocation": after_last,
    }
    return out, unjudged, measured


def check_p2(run: Run) -> Verdict:
    """P2: zombies converge.

    Anchor = the last freeze-type fault (``freeze``, ``freeze_mid_*``,
    ``reclaim``; not the routine parking of a worker after its invocation,
    see :func:`is_routine_freeze`), or the start of the history if there is none; deadline T =
    anchor + lease_ttl + min_idle + max_cooldown + slack. Judged only if an
    operation is invoked at or after T (invocations still arriving): then every
    sample at or after T must count at most ``connection_limit`` backends whose
    application_name starts with ``own_app_prefix``, and no op may complete
    with 53300 at or after T, unless refused at capacity (the service's own backends
    filled its limit and no zombie older than the bound held a slot: a fleet larger
    than the server; listed in ``measured["refused_at_capacity"]``). If nothing is
    invoked after T — or the sampler fell behind — and nothing was violated, the
    verdict is ``unknown``, never ``ok``.
    Measured: convergence time (anchor to the first sample from which the
    count stays within the limit; None if it never does) against the bound.

    And to zero (``P2-zombie``): every zombie (:func:`~harness.check.zombies.zombies`:
    a backend of a worker that is gone, or frozen past its lease, idle in
    transaction included) must be gone within the bound of when it became one,
    the bound counted only while invocations arrive
    (:func:`~harness.check.zombies.covered_deadline`, gap ``max_cooldown + slack``);
    a zombie still there at a sample past that deadline, with an invocation at or
    after it, fails P2 with its pid, worker and since-when. One still there when
    the record ends, before its deadline was reached with invocations arriving,
    cannot be judged (``unknown``, never ``ok``) — unless it became a zombie only
    after the last invocation (the run's final parking), when nothing obliged a
    reaper to run: it is listed in ``measured`` and not judged.
    """
    cfg, tl = run.config, run.timeline
    makers = [f for f in tl.faults_of(ZOMBIE_FAULTS) if not is_routine_freeze(f)]
    anchor = makers[-1].time if makers else tl.start
    bound = cfg.convergence_bound
    deadline = anchor + bound
    conv = _convergence(run, anchor)
    reached = any(op.start >= deadline for op in tl.ops)
    after = [run.service_count(s) for s in run.sorted_samples if s.time >= deadline]
    measured: dict[str, Any] = {
        "anchor": anchor,
        "anchor_fault": makers[-1].f if makers else None,
        "bound_s": bound,
        "deadline": deadline,
        "convergence_s": conv,
        "within_bound": conv is not None and conv <= bound,
        "reached": reached,
        "limit": cfg.connection_limit,
        "max_count_after_deadline": max(after, default=None),
    }
    # Without invocations after the deadline nothing obliges a reaper to have run:
    # what the samples show then is no violation, and no evidence of convergence.
    zs = zombies(run)
    refused, at_capacity = _p2_too_many(run, deadline, zs)
    measured["refused_at_capacity"] = at_capacity
    evidence = _p2_over_limit(run, deadline) + refused if reached else []
    zombie_evidence, zombie_unjudged, zombie_measured = _p2_zombies(run, zs)
    evidence += zombie_evidence
    measured.update(zombie_measured)
    cannot_judge = list(run.sampling_problems) + zombie_unjudged
    if not reached:
        cannot_judge.insert(
            0,
            f"no invocation arrived after the deadline {run.at(deadline)} (last zombie-making"
            f" fault at {run.at(anchor)} + bound {bound:.3f}s), so nothing shows the zombies"
            " converged",
        )
    conv_txt = "never" if conv is None else f"{conv:.3f}s"
    longest = zombie_measured["longest_zombie_s"]
    return verdict(
        "P2",
        P2_TITLE,
        evidence,
        f"backend count within {cfg.connection_limit} from the deadline on; converged in"
        f" {conv_txt} against a bound of {bound:.3f}s; {zombie_measured['zombies']} zombie(s),"
        f" each gone within the bound" + ("" if longest is None else f" (longest {longest:.3f}s)"),
        cannot_judge=cannot_judge,
        **measured,
    )
