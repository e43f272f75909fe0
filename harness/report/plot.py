"""``timeline.png``: the service's backends against the limit, over the run.

The backend count is :meth:`harness.check.Run.service_count`, the very count P2
judges (foreign pids excluded), so the plot and the property cannot disagree.
Frozen-by-a-fault intervals are shaded, reaper kills marked, failed operations
ticked.
"""

from __future__ import annotations

import math
from pathlib import Path

from harness.check import Run, is_routine_freeze
from harness.history import OpEvent


def plot_timeline(run: Run, path: Path) -> bool:
    """Write the plot; False (and no file) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t0, limit = run.t0, run.config.connection_limit
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    samples = run.sorted_samples
    ymax = max(limit, 1)
    if samples:
        counts = [run.service_count(s) for s in samples]
        ax.step(
            [s.time - t0 for s in samples],
            counts,
            where="post",
            color="tab:blue",
            label="service backends",
        )
        ymax = max([*counts, ymax])
    ax.axhline(limit, color="tab:red", linestyle="--", label=f"limit {limit}")
    tl = run.timeline
    workers = sorted({e.worker for e in tl.faults if e.worker})
    for w in workers:
        for iv in tl.frozen_during(w, -math.inf, math.inf):
            if is_routine_freeze(iv.opened_by):  # parked between invocations: Lambda's normal
                continue
            end = iv.end if math.isfinite(iv.end) else tl.end
            ax.axvspan(
                iv.start - t0, end - t0, color="tab:gray", alpha=0.12, label="frozen by a fault"
            )
    if run.kills:
        ax.scatter(
            [k.time - t0 for k in run.kills],
            [ymax * 1.05] * len(run.kills),
            marker="v",
            color="tab:red",
            label="reaper kill",
            zorder=3,
        )
    errors = [e for e in tl.events if isinstance(e, OpEvent) and e.type in ("fail", "info")]
    if errors:
        ax.scatter(
            [e.time - t0 for e in errors],
            [0] * len(errors),
            marker="|",
            s=200,
            color="tab:orange",
            label="fail/info op",
            zorder=3,
        )
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("backends")
    ax.set_ylim(-0.5, ymax * 1.15 + 0.5)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


__all__ = ["plot_timeline"]
