"""P3 — retries never duplicate a non-idempotent write.

Judged from the history's write outcomes against the final database state.
See :func:`check_p3`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.check.run import Run
from harness.check.timeline import Op
from harness.check.verdict import Verdict, verdict
from harness.history import WRITE_FS

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
    return verdict(
        "P3",
        P3_TITLE,
        evidence,
        f"{writes} write(s), {run.final.ledger_rows} ledger row(s): every outcome matches",
        writes=writes,
        ledger_rows=run.final.ledger_rows,
    )
