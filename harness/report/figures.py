"""The key figures of a scenario's run, computed from what was recorded.

The same :class:`~harness.check.Run` the properties judged, never typed in:

- ``peak_backends``: the most service backends any sample showed (P2's count), and
  ``limit``, the most it may hold;
- ``convergence_s``: P2's measured convergence time, and ``bound_s``, its bound;
- ``reaper_kills``: kills in the reaper's ledger; ``info_ops``: operations whose
  outcome is unknown; ``duplicates``: op ids with more than one ledger row;
  ``refused_53300``: invocations refused because the server was full;
- ``duration_s``: the scenario's wall time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.report.result import ScenarioResult


def figures(result: ScenarioResult) -> dict[str, Any]:
    """The key figures of one result (empty for a run with no recorded fleet)."""
    run = result.run
    out: dict[str, Any] = {
        "duration_s": result.timings.get("duration_s", result.timings.get("run_s"))
    }
    if run is None:
        return out
    counts = [run.service_count(s) for s in run.sorted_samples]
    p2 = next((v for v in result.verdicts if v.prop == "P2"), None)
    measured = p2.measured if p2 else {}
    ops = run.timeline.ops
    out.update(
        peak_backends=max(counts, default=0),
        limit=run.config.connection_limit,
        convergence_s=measured.get("convergence_s"),
        bound_s=measured.get("bound_s") if p2 is not None else None,
        reaper_kills=len(run.kills),
        info_ops=sum(1 for op in ops if op.outcome in ("info", "open")),
        duplicates=sum(1 for n in run.final.ledger_counts.values() if n > 1),
        refused_53300=sum(1 for op in ops if op.sqlstate == "53300"),
    )
    return out
