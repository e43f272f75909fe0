"""P4 — liveness: no worker dies, and every worker recovers once the faults heal.

Judged from the history. See :func:`check_p4`.
"""

from __future__ import annotations

import math
from typing import Any

from harness.check.evidence import class_in, programming_error
from harness.check.run import Run
from harness.check.timeline import Op, Timeline
from harness.check.verdict import Verdict, verdict
from harness.history import FREEZE_FAULTS, UNFREEZE_FAULTS, FaultEvent, WorkerEvent

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
    """The first op after the worker's next thaw/spawn after ``healed``; skips ops that
    were interrupted, or refused by the server (53300 is P2's matter: before its
    deadline zombies may still hold the slots, after it P2 judges the refusal)."""
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
        if not _interrupted(tl, op) and op.sqlstate != "53300":
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
        and class_in(classes, op.error.cls)
        and op.end > healed
    ]


_GAVE_UP_EARLY = frozenset({"ConnectionDead", "LeaseExpired"})
"""Lease-spec errors that say "nothing applied, and not retried": the spec's answer only
for work the caller did not let the client run again."""

_GAVE_UP_LATE = frozenset({"OutcomeUnknown", "RetriesExhausted"})
"""Lease-spec errors that say "the outcome is unknown" or "retried to the end"."""

_CONNECT_GAVE_UP = frozenset({"ConnectFailed"})
_SWALLOWED = frozenset({"InFailedSqlTransaction"})
"""The client's word for "the body went on past a failed statement"."""

_RETRYABLE_AT_CONNECT = frozenset({"53300", "57P01", "57P02", "57P03"})
"""SQLSTATEs a refused connect is retried after (LEASE_SPEC: "Retryable on connect"),
besides class 08."""

_RETRIED_FS = frozenset({"read", "slow_read", "burst"})
"""Operations whose every statement the worker marks idempotent."""


def _contract(op: Op) -> str | None:
    """Why ``op``'s failure is one the lease spec does not allow for what it was, or None.

    The spec (LEASE_SPEC.md, "Retries"): an idempotent statement whose connection died
    is run again, so it ends in its result, a definite error reply, or
    ``RetriesExhausted``, never ``OutcomeUnknown`` or ``ConnectionDead``; a transaction
    the caller marked retryable is run again as a whole when lost before COMMIT
    (nothing applied), so it never ends ``ConnectionDead`` or ``LeaseExpired``; and
    ``InFailedSqlTransaction`` is raised only when the body went on past a failed
    statement, which the worker's ``long_tx`` body never does; a write the server
    refuses (or the driver, before sending) is a plain error reply, raised as it is
    (LEASE_SPEC: "a plain error reply: FAIL"), never retried nor called unknown, and
    never a success; and the client never gives up connecting (``ConnectFailed``) on
    a refusal the spec makes retryable (53300, 57P01-57P03, class 08): that ends in a
    connection or ``RetriesExhausted``.
    """
    if op.invoke.f == "rejected" and op.outcome == "ok":
        return "the client reported success for a write the server or the driver refuses"
    if op.error is None or op.outcome not in ("fail", "info"):
        return None
    cls, state = op.error.cls, op.error.sqlstate or ""
    if class_in(_CONNECT_GAVE_UP, cls) and (
        state.startswith("08") or state in _RETRYABLE_AT_CONNECT
    ):
        return f"a connect refused with {state} is retried (the spec's retryable connect errors)"
    if op.invoke.f == "rejected" and class_in(_GAVE_UP_EARLY | _GAVE_UP_LATE, cls):
        return "a refused write is handed back as its refusal (nothing was applied)"
    if op.invoke.f in _RETRIED_FS and class_in(_GAVE_UP_EARLY | {"OutcomeUnknown"}, cls):
        return "an idempotent statement is run again when its connection dies"
    if (
        op.invoke.f == "long_tx"
        and op.invoke.value.get("retryable")
        and class_in(_GAVE_UP_EARLY, cls)
    ):
        return "a retryable transaction lost before COMMIT is run again as a whole"
    if op.invoke.f == "long_tx" and class_in(_SWALLOWED, cls):
        return (
            "that error says the body swallowed a failed statement, and the worker's"
            " transaction body lets every statement's error through"
        )
    return None


def _p4_contract(run: Run) -> list[dict[str, Any]]:
    out = []
    for op in run.timeline.ops:
        why = _contract(op)
        if why is not None:
            out.append(
                {
                    "clause": "P4-contract",
                    "explain": f"op {op.id} ({op.invoke.f}) of worker {op.worker} ended at"
                    f" {run.at(op.end)} with {_err_txt(op)}; {why}, within the retry"
                    " budget, so the spec gives it no such ending",
                    "op": op.to_json(),
                }
            )
    return out


def _p4_bug(run: Run) -> list[dict[str, Any]]:
    return [
        {
            "clause": "P4-bug",
            "explain": f"op {op.id} of worker {op.worker} ended at {run.at(op.end)} with"
            f" {_err_txt(op)}: a mistake in the client's own code, not a fault's effect",
            "op": op.to_json(),
        }
        for op in run.timeline.ops
        if op.error is not None and programming_error(op.error.cls)
    ]


def check_p4(run: Run) -> Verdict:
    """P4: liveness.

    No worker ``crash`` event. With H = :func:`healed_at`: for every worker,
    the first op it invokes at or after its first ``thaw``/``spawn`` at or
    after H completes ``ok`` within ``retry_budget_s`` of its invoke. An op
    interrupted by a freeze or reclaim of its own worker does not count; the
    next thaw/spawn after it is tried instead; so is one the server refused with
    53300 (P2 judges refusals). An op still open when the
    history ends, less than the budget after its invoke, cannot be judged and
    is listed in ``measured["unjudged"]``. And no op completing ``fail`` after
    H has an error class in ``escaped_error_classes``; and no op, at any time, ends
    with a programming error of the client's (``P4-bug``, see
    :func:`~harness.check.evidence.programming_error`).
    And no op ends with an error the lease spec does not allow for its kind
    (``P4-contract``, see :func:`_contract`).
    """
    healed = healed_at(run.timeline)
    recovery, unjudged = _p4_recovery(run, healed)
    evidence = (
        _p4_crashes(run) + recovery + _p4_escaped(run, healed) + _p4_contract(run) + _p4_bug(run)
    )
    return verdict(
        "P4",
        P4_TITLE,
        evidence,
        "no worker crashed; every worker's first op after the faults healed succeeded"
        f" within {run.config.retry_budget_s:.3f}s",
        healed=None if math.isinf(healed) else healed,
        unjudged=unjudged,
    )


# ------------------------------------------------------------------------------ P5
