"""``timeline.png``: the whole run on one time axis, drawn from :mod:`harness.report.lanes`.

Top to bottom, sharing one clock (seconds since the run's zero):

- the schedule's steps, numbered, with a few words each;
- one lane per worker: its state (cold-starting, running, parked between
  invocations, frozen by a fault, reclaimed, crashed) as the lane's background,
  its operations as bars coloured by outcome, the faults that hit it as labelled
  bands (windows) or marks (points), the reaper's kills of its backends as
  crosses; restarts and heals as lines across every lane;
- with many lanes, how many workers are in each state;
- the service's backends (the count P2 judges) against the limit, P2's deadline
  and what it judges from there shaded, its violation windows shaded red, the
  kills marked.

Rectangles go into one collection per colour, so a few hundred lanes with
thousands of operations draw in seconds; with many lanes the per-mark labels
are left out and the lane names thinned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.check import Run, Verdict
from harness.report.lanes import STATES, Chart, Lane, build_chart, folded_steps, state_counts

STATE_COLOURS = {
    "cold-starting": "#f6d365",
    "running": "#cfe3f7",
    "parked": "#dcdcdc",
    "frozen": "#8f86c4",
    "reclaimed": "#4a4a4a",
    "crashed": "#b2182b",
}
STATE_WORDS = {
    "cold-starting": "cold-starting",
    "running": "running (warm)",
    "parked": "parked between invocations (frozen, routine)",
    "frozen": "frozen by a fault",
    "reclaimed": "reclaimed (gone)",
    "crashed": "crashed",
}
OUTCOME_COLOURS = {"ok": "#1a9641", "fail": "#d7191c", "info": "#f28e2b"}
FAULT_COLOURS = {
    "socket_reset": "#e15759",
    "ack_lost": "#ff7f0e",
    "latency": "#edc948",
    "bandwidth": "#b07aa1",
    "proxy_down": "#9c755f",
    "terminate_backend": "#d62728",
    "clock_skew": "#17becf",
    "freeze": "#5e3c99",
    "freeze_mid_query": "#5e3c99",
    "freeze_mid_tx": "#5e3c99",
    "freeze_mid_reap": "#5e3c99",
    "reclaim": "#222222",
}
KILL_COLOUR = "#c00000"
_LABEL_BOX = {"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.8, "lw": 0}
LABELLED_LANES = 40
"""Up to this many lanes, every mark is labelled and every lane named."""
SUMMARY_LANES = 24
"""From this many lanes on, a panel counts the workers in each state."""


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _rects(ax: Any, boxes: Iterable[tuple[float, float, float, float]], **kw: Any) -> None:
    """Rectangles (x0, x1, y0, y1) as one PolyCollection."""
    from matplotlib.collections import PolyCollection

    verts = [((a, c), (b, c), (b, d), (a, d)) for a, b, c, d in boxes if b >= a]
    if verts:
        ax.add_collection(PolyCollection(verts, **kw))


def _widen(a: float, b: float, least: float) -> tuple[float, float]:
    """A span at least ``least`` wide, so an instant operation is still seen."""
    return (a, b) if b - a >= least else (a, a + least)


def _draw_lanes(ax: Any, chart: Chart, least: float, char_w: float) -> None:
    lanes, n = chart.lanes, len(chart.lanes)
    labelled = n <= LABELLED_LANES
    for st in STATES:
        _rects(
            ax,
            (
                (s.start, s.end, i - 0.45, i + 0.45)
                for i, lane in enumerate(lanes)
                for s in lane.states
                if s.state == st
            ),
            facecolors=STATE_COLOURS[st],
            edgecolors="none",
            zorder=1,
        )
    for outcome, colour in OUTCOME_COLOURS.items():
        _rects(
            ax,
            (
                (*_widen(o.start, o.end, least), i - 0.16, i + 0.16)
                for i, lane in enumerate(lanes)
                for o in lane.ops
                if o.outcome == outcome
            ),
            facecolors=colour,
            edgecolors="#00000055" if labelled else "none",
            linewidths=0.4,
            zorder=3,
        )
    for i, lane in enumerate(lanes):
        _draw_lane_faults(ax, lane, i, labelled, least, char_w)
    kx = [k.time for lane in lanes for k in lane.kills]
    ky = [i for i, lane in enumerate(lanes) for _ in lane.kills]
    if kx:
        ax.scatter(
            kx,
            ky,
            marker="X",
            s=90 if labelled else 30,
            color=KILL_COLOUR,
            edgecolors="white",
            linewidths=0.6,
            zorder=6,
        )
        if labelled and len(kx) <= 24:
            for i, lane in enumerate(lanes):
                for k in lane.kills:
                    by = f" by {k.reaper}" if k.reaper else ""
                    right = k.time > chart.end * 0.8
                    ax.annotate(
                        f"killed pid {k.pid}{by}",
                        (k.time, i),
                        xytext=(-6 if right else 6, -10),
                        ha="right" if right else "left",
                        textcoords="offset points",
                        fontsize=6.5,
                        color=KILL_COLOUR,
                        zorder=7,
                        bbox=_LABEL_BOX,
                    )
    for g in chart.globals:
        colour = "#8c2d04" if g.f == "pg_restart" else "#1a9641"
        ax.axvline(g.time, color=colour, linewidth=1.4, linestyle="-" if g.f != "heal" else "--")
    step = 1 if labelled else max(1, n // 30)
    ax.set_yticks(range(0, n, step))
    ax.set_yticklabels([lanes[i].name for i in range(0, n, step)], fontsize=8 if labelled else 6)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_ylabel("workers")


HATCHES = ("////", "\\\\\\\\", "xx", "..")


def _draw_lane_faults(
    ax: Any, lane: Lane, i: int, labelled: bool, least: float, char_w: float
) -> None:
    """Windows as hatched bands (overlapping ones hatched differently), points as marks;
    labels staggered in three rows inside the lane so close ones do not cover each other."""
    rows = _rows([(fm.start, (len(fm.label) + 1) * char_w) for fm in lane.faults], 3)
    windows = 0
    for fm, r in zip(lane.faults, rows, strict=True):
        colour = FAULT_COLOURS.get(fm.f, "#555555")
        if fm.window:
            a, b = _widen(fm.start, fm.end, least)
            _rects(
                ax,
                [(a, b, i - 0.48, i + 0.48)],
                facecolors=colour + "40",
                edgecolors=colour,
                linewidths=1.0,
                hatch=HATCHES[windows % len(HATCHES)],
                zorder=4,
            )
            windows += 1
        else:
            ax.plot(
                [fm.start],
                [i - 0.32],
                marker="v",
                markersize=7 if labelled else 3,
                color=colour,
                zorder=5,
            )
        if labelled:
            ax.annotate(
                fm.label,
                (fm.start, i - 0.47 + 0.31 * r),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize=6.5,
                color=colour,
                va="top",
                zorder=7,
                bbox=_LABEL_BOX,
            )


def _rows(items: Sequence[tuple[float, float]], rows: int) -> list[int]:
    """A row for each (x, width) label so that labels in one row do not overlap (greedy)."""
    ends = [-float("inf")] * rows
    out = []
    for x, w in items:
        free = [r for r in range(rows) if ends[r] <= x]
        r = free[0] if free else min(range(rows), key=lambda k: ends[k])
        ends[r] = x + w
        out.append(r)
    return out


def _draw_steps(ax: Any, chart: Chart, char_w: float) -> None:
    """Numbered marks for the steps and labelled ones for restarts and heals (the words of
    each step are listed under the chart)."""
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel("steps", rotation=0, ha="right", va="center")
    labels: list[tuple[float, str, str, str]] = [
        (a.time, str(a.n) if a is b else f"{a.n}-{b.n}", "#222222", "-")
        for a, b in folded_steps(chart.steps)
    ]
    for g in chart.globals:
        colour = "#8c2d04" if g.f == "pg_restart" else "#1a9641"
        labels.append((g.time, g.label, colour, "-" if g.f != "heal" else "--"))
    labels.sort(key=lambda x: x[0])
    rows = _rows([(t, (len(text) + 2) * char_w) for t, text, _, _ in labels], 4)
    for (t, text, colour, style), r in zip(labels, rows, strict=True):
        ax.axvline(t, color=colour, linewidth=1.0, linestyle=style)
        ax.text(
            t,
            0.86 - 0.24 * r,
            text,
            fontsize=7,
            color=colour,
            va="center",
            ha="left",
            clip_on=True,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": colour},
        )


def _draw_states(ax: Any, chart: Chart) -> None:
    grid, counts = state_counts(chart)
    shown = [st for st in STATES if st in counts]
    ax.stackplot(
        grid,
        *(counts[st] for st in shown),
        colors=[STATE_COLOURS[st] for st in shown],
        step="post",
        linewidth=0,
    )
    ax.set_ylabel("workers\nby state")


def _draw_backends(ax: Any, chart: Chart) -> None:
    from matplotlib.ticker import MaxNLocator

    ymax = max([chart.limit, *(n for _, n in chart.counts)], default=chart.limit)
    if chart.deadline is not None:
        ax.axvspan(chart.deadline, max(chart.end, chart.deadline), color="#fff3c4", zorder=0, lw=0)
        ax.axvline(chart.deadline, color="#b8860b", linewidth=1.2, linestyle="-.")
        ax.text(
            chart.deadline,
            ymax + 0.6,
            " P2 deadline: judged from here",
            fontsize=7,
            color="#8a6d00",
            va="top",
            zorder=6,
            bbox=_LABEL_BOX,
        )
    for v in chart.violations:
        ax.axvspan(
            v.start,
            max(v.end, v.start + 0.02),
            facecolor="#d7191c30",
            edgecolor="#d7191c",
            hatch="xx",
            lw=0.8,
            zorder=1,
        )
    if chart.counts:
        ax.step(
            [t for t, _ in chart.counts],
            [n for _, n in chart.counts],
            where="post",
            color="#1f4e99",
            linewidth=1.3,
            zorder=3,
        )
    ax.axhline(chart.limit, color=KILL_COLOUR, linestyle="--", linewidth=1.0, zorder=2)
    ax.text(0, chart.limit + 0.1, f" limit {chart.limit}", color=KILL_COLOUR, fontsize=7)
    if chart.kills:
        ax.scatter(
            [t for t, _ in chart.kills],
            [n for _, n in chart.kills],
            marker="X",
            s=50,
            color=KILL_COLOUR,
            edgecolors="white",
            zorder=5,
        )
    ax.set_ylim(-0.3, ymax + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("service\nbackends")


def _legend_handles(chart: Chart) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    present = {s.state for lane in chart.lanes for s in lane.states}
    handles: list[Any] = [
        Patch(facecolor=STATE_COLOURS[s], label=STATE_WORDS[s]) for s in STATES if s in present
    ]
    handles += [
        Patch(facecolor=c, label=f"op {o}" + (" / unknown" if o == "info" else ""))
        for o, c in OUTCOME_COLOURS.items()
    ]
    seen: dict[str, str] = {}
    for lane in chart.lanes:
        for fm in lane.faults:
            seen.setdefault(fm.f, fm.f.replace("_", " "))
    for f, word in sorted(seen.items()):
        handles.append(Patch(facecolor=FAULT_COLOURS.get(f, "#555555"), label=f"fault: {word}"))
    handles.append(
        Line2D([], [], marker="X", color=KILL_COLOUR, linestyle="none", label="reaper kill")
    )
    if any(g.f == "pg_restart" for g in chart.globals):
        handles.append(Line2D([], [], color="#8c2d04", label="PostgreSQL restart"))
    if any(g.f == "heal" for g in chart.globals):
        handles.append(Line2D([], [], color="#1a9641", linestyle="--", label="faults healed"))
    handles += [
        Line2D([], [], color="#1f4e99", label="service backends (P2's count)"),
        Line2D([], [], color=KILL_COLOUR, linestyle="--", label="connection limit"),
    ]
    if chart.deadline is not None:
        handles.append(Patch(facecolor="#fff3c4", label="after P2's deadline"))
    if chart.violations:
        handles.append(
            Patch(facecolor="#d7191c30", edgecolor="#d7191c", hatch="xx", label="P2 violation")
        )
    return handles


LEGEND_COLUMNS = 4
STEP_COLUMNS = 2
LINE_IN = 0.17
"""Height of one line of legend or step list, in inches."""


def _draw_shared_marks(ax: dict[str, Any], chart: Chart, span: float, run: Run) -> None:
    """Steps across the lanes and the backend plot, run-wide faults, the axis and title."""
    for s in chart.steps:
        for name in ("lanes", "backends"):
            ax[name].axvline(s.time, color="#33333355", linewidth=0.7, linestyle=":", zorder=2)
    for g in chart.globals:
        colour = "#8c2d04" if g.f == "pg_restart" else "#1a9641"
        ax["backends"].axvline(g.time, color=colour, linewidth=1.2, linestyle="--", alpha=0.7)
    lo = min(0.0, *(s.start for lane in chart.lanes for s in lane.states[:1]))
    ax["backends"].set_xlim(lo, span * 1.01)
    zero = (
        "where the progress output starts"
        if run.config.clock_start is not None
        else "the first recorded event"
    )
    ax["backends"].set_xlabel(f"seconds since the start of the run (0 = {zero})")
    ax["steps"].set_title(
        f"{len(chart.lanes)} worker(s), {sum(len(la.ops) for la in chart.lanes)} operation(s),"
        f" {len(chart.kills)} reaper kill(s)",
        fontsize=9,
        loc="left",
    )


def _write_steps(
    fig: Any, step_lines: list[str], left: float, right: float, steps_h: float, height: float
) -> None:
    """The schedule's steps in columns under the chart."""
    per_col = -(-len(step_lines) // STEP_COLUMNS)
    for c in range(STEP_COLUMNS):
        chunk = step_lines[c * per_col : (c + 1) * per_col]
        if chunk:
            fig.text(
                left + c * (right - left) / STEP_COLUMNS,
                (steps_h - 0.1) / height,
                "\n".join(chunk),
                fontsize=7.5,
                va="top",
                ha="left",
                linespacing=1.35,
            )
    if step_lines:
        fig.text(left, (steps_h + 0.02) / height, "steps", fontsize=8, weight="bold", va="top")


def plot_timeline(run: Run, path: Path, verdicts: Sequence[Verdict] = ()) -> bool:
    """Write ``timeline.png``; False (and no file) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    chart = build_chart(run, verdicts)
    n = len(chart.lanes)
    lane_h = min(max(0.34 * n, 1.0), 10.0)
    rows: list[tuple[str, float]] = [("steps", 0.9), ("lanes", lane_h)]
    if n >= SUMMARY_LANES:
        rows.append(("states", 1.3))
    rows.append(("backends", 2.0))
    handles = _legend_handles(chart)
    leg_h = -(-len(handles) // LEGEND_COLUMNS) * LINE_IN + 0.15
    step_lines = [
        f"{a.n}. (t={a.time:+.2f}s) {_short(a.text, 90)}"
        if a is b
        else f"{a.n}-{b.n}. (t={a.time:+.2f}s to {b.time:+.2f}s)"
        f" {_short(a.text, 70)} (x{b.n - a.n + 1})"
        for a, b in folded_steps(chart.steps)
    ]
    steps_h = -(-len(step_lines) // STEP_COLUMNS) * LINE_IN + (0.25 if step_lines else 0)
    top, xlab = 0.4, 0.55
    panels = sum(h for _, h in rows) + 0.08 * len(rows)
    height = top + panels + xlab + leg_h + steps_h + 0.1
    width = 15.0
    fig, axes = plt.subplots(
        len(rows),
        1,
        figsize=(width, height),
        dpi=100,
        sharex=True,
        gridspec_kw={"height_ratios": [h for _, h in rows], "hspace": 0.08},
    )
    ax = dict(zip((r for r, _ in rows), axes, strict=True))
    span = max(chart.end, 1e-3)
    least = span / 1500  # about one pixel
    left, right = 0.06, 0.985
    char_w = span / ((right - left) * width * 100 / 5.2)
    _draw_steps(ax["steps"], chart, char_w)
    _draw_lanes(ax["lanes"], chart, least, char_w)
    if "states" in ax:
        _draw_states(ax["states"], chart)
    _draw_backends(ax["backends"], chart)
    _draw_shared_marks(ax, chart, span, run)
    bottom_in = xlab + leg_h + steps_h
    fig.subplots_adjust(left=left, right=right, top=1 - top / height, bottom=bottom_in / height)
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(left, (leg_h + steps_h + 0.05) / height),
        ncol=LEGEND_COLUMNS,
        fontsize=7.5,
        frameon=False,
    )
    _write_steps(fig, step_lines, left, right, steps_h, height)
    fig.savefig(path)
    plt.close(fig)
    return True


__all__ = ["plot_timeline"]
