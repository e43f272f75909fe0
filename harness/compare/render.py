"""The comparison's report: ``compare.md``, ``index.html``, ``compare.json`` and plots.

Everything is derived from the :class:`~harness.compare.aggregate.Cell` figures
(computed from the recorded runs); each cell links to its runs' own reports.
The findings are sentences built from the verdicts' own evidence: where each
strategy fails, which clause, and the numbers that show why.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from harness.compare.aggregate import PROPS, Cell
from harness.history import load_samples

WHY = {
    "P1a": "the server ended a connection while a statement ran on it",
    "P1b": "the server ended the connection of a live, unfrozen sandbox in the middle of"
    " its invocation",
    "P1c": "a connection was ended while its lease was still valid",
    "P1d": "a sandbox that was not frozen saw its connection terminated (57P01) under a"
    " valid lease",
    "P2-count": "backends left by frozen and reclaimed sandboxes were not ended in time, so"
    " the service held more backends than its limit",
    "P2-53300": "invocations were refused with 53300 (too many clients) after the bound",
    "P3-dup": "a write whose answer was lost was run again: the ledger holds it twice",
    "P3-ok": "a write reported ok is missing from the ledger",
    "P3-fail": "a write reported failed is in the ledger",
    "P3-info": "a write with an unknown outcome is in the ledger more than once",
    "P3-counter": "the counter and the ledger disagree",
    "P4-crash": "a sandbox process died (an exception escaped, or the driver hung or broke"
    " the protocol)",
    "P4-recovery": "after the faults healed, a sandbox's first invocation did not succeed:"
    " the driver used a connection that had died (killed, cut or restarted) instead of"
    " checking it or reconnecting",
    "P4-escaped": "a raw driver error reached the handler after the faults healed",
    "P5-foreign": "a backend of another application was ended",
    "P5-prefix": "a backend that is not the service's was ended",
    "P5-signature": "a backend carrying a forged or foreign lease was ended",
    "P5-vanished": "a foreign backend disappeared with nothing to explain it",
}
_MARK = {"ok": "✓", "fail": "✗", "unknown": "?"}


def _clauses(summary: str) -> list[str]:
    m = re.match(r"\d+ violation\(s\) \(([^)]*)\)", summary)
    return [c.strip() for c in m.group(1).split(",")] if m else []


def _fmt(x: float | int | None, unit: str = "") -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.3f}{unit}" if abs(x) < 100 else f"{x:.0f}{unit}"
    return f"{x}{unit}"


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base)


def _seq(x: object) -> list[object]:
    return list(x) if isinstance(x, list | tuple) else []


def findings(cells: Sequence[Cell], drivers: Sequence[str]) -> list[str]:
    """One paragraph per driver: what it kept, where it failed and why, with evidence."""
    out: list[str] = []
    for d in drivers:
        mine = [c for c in cells if c.driver == d]
        if not mine:
            continue
        failed = [(c, p) for c in mine for p in PROPS if c.verdicts[p] == "fail"]
        unknown = [(c, p) for c in mine for p in PROPS if c.verdicts[p] == "unknown"]
        kept = [p for p in PROPS if all(c.verdicts[p] == "ok" for c in mine)]
        terms: dict[str, int] = {}
        for c in mine:
            for k, n in c.terminations.items():
                terms[k] = terms.get(k, 0) + n
        shown = ", ".join(f"{n} {k}" for k, n in sorted(terms.items())) or "none"
        head = f"**{d}**: "
        if not failed and not unknown:
            head += f"kept every property in every scenario ({len(mine)} scenario(s))."
        else:
            head += f"kept {', '.join(kept) or 'no property'} everywhere."
        lines = [head, f"The server ended these backends during its runs: {shown}."]
        for c, p in failed:
            run = next((r for r in c.runs if r.verdicts[p] == "fail"), c.runs[0])
            reasons = "; ".join(WHY.get(cl, cl) for cl in _clauses(run.why[p]))
            lines.append(f"In {c.scenario}, {p} fails — {reasons}. Evidence: {run.why[p]}")
        said: set[str] = set()
        for c, p in unknown:
            run = next((r for r in c.runs if r.verdicts[p] == "unknown"), c.runs[0])
            if run.unjudged is not None:
                if c.scenario not in said:
                    said.add(c.scenario)
                    lines.append(f"{c.scenario} could not be judged: {run.unjudged}.")
                continue
            lines.append(f"In {c.scenario}, {p} could not be judged: {run.why[p]}")
        out.append(" ".join(lines))
    return out


def _table_rows(cells: Sequence[Cell], base: Path) -> list[list[str]]:
    rows = []
    for c in cells:
        links = " ".join(
            f"[seed {r.seed}]({_rel(r.run_dir / 'report.html', base)})" for r in c.runs
        )
        rows.append(
            [
                c.driver,
                c.scenario,
                f"{_fmt(c.peak_backends)} / {_fmt(c.limit)}",
                _fmt(c.convergence_s, " s") if c.convergence_s is not None else "never",
                str(c.total("refused_53300")),
                str(c.total("active_killed")),
                str(c.total("duplicated_writes")),
                str(c.total("info_outcomes")),
                _fmt(c.p50_ms(), " ms"),
                _fmt(c.p99_ms(), " ms"),
                " ".join(f"{p}{_MARK[c.verdicts[p]]}" for p in PROPS),
                links,
            ]
        )
    return rows


HEADERS = [
    "driver",
    "scenario",
    "peak backends / limit",
    "converged",
    "53300",
    "active killed",
    "dup writes",
    "info",
    "p50",
    "p99",
    "P1-P5",
    "runs",
]


def plot_driver(cells: Sequence[Cell], driver: str, prefix: str, path: Path) -> bool:
    """Service backends over time against the limit, one panel per scenario (first seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [c for c in cells if c.driver == driver]
    if not mine:
        return False
    fig, axes = plt.subplots(len(mine), 1, figsize=(8, 2.2 * len(mine)), squeeze=False)
    for ax, c in zip(axes[:, 0], mine, strict=True):
        run = c.runs[0]
        activity = run.run_dir / "activity.jsonl"
        samples = load_samples(activity) if activity.exists() else []
        if samples:
            t0 = samples[0].time
            xs = [s.time - t0 for s in samples]
            ys = [
                sum(1 for r in s.rows if (r.application_name or "").startswith(prefix))
                for s in samples
            ]
            ax.step(xs, ys, where="post", label="service backends")
        if c.limit is not None:
            ax.axhline(c.limit, color="red", linestyle="--", label="limit")
        ax.set_title(f"{driver} — {c.scenario}", fontsize=9)
        ax.set_ylabel("backends")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds since the first sample")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def write_report(
    out_dir: Path,
    cells: Sequence[Cell],
    drivers: Sequence[str],
    prefixes: dict[str, str],
    meta: dict[str, object],
) -> Path:
    """Write the report into ``out_dir``; the path of ``index.html``."""
    plots: dict[str, str] = {}
    for d in drivers:
        png = out_dir / f"backends-{re.sub(r'[^A-Za-z0-9_.-]', '_', d)}.png"
        if plot_driver(cells, d, prefixes[d], png):
            plots[d] = png.name
    rows = _table_rows(cells, out_dir)
    story = findings(cells, drivers)
    md = [f"# Which connection strategy survives a Lambda fleet? ({meta.get('started')})", ""]
    md += [
        f"Scenarios {', '.join(str(s) for s in _seq(meta.get('scenarios')))}, seeds "
        f"{meta.get('seeds')}, {meta.get('elapsed_s')} s in all. Every figure is computed"
        " from the recorded runs (history, pg_stat_activity samples, the verdicts).",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", "## Findings", ""]
    md += [f"- {s}" for s in story]
    md += ["", "## Plots", ""] + [f"![{d}]({p})" for d, p in plots.items()]
    (out_dir / "compare.md").write_text("\n".join(md) + "\n")
    (out_dir / "compare.json").write_text(
        json.dumps(
            {
                **meta,
                "runs": [r.to_json() for c in cells for r in c.runs],
                "findings": story,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    esc = html.escape
    body = [
        "<!doctype html><meta charset='utf-8'><title>thawproof compare</title>",
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;"
        "padding:3px 6px;font-size:13px}table{border-collapse:collapse}</style>",
        f"<h1>Which connection strategy survives a Lambda fleet?</h1><p>{esc(str(meta))}</p>",
        "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in HEADERS) + "</tr>",
    ]
    for c, r in zip(cells, rows, strict=True):
        links = " ".join(
            f"<a href='{esc(_rel(run.run_dir / 'report.html', out_dir))}'>seed {run.seed}</a>"
            for run in c.runs
        )
        body.append(
            "<tr>" + "".join(f"<td>{esc(x)}</td>" for x in r[:-1]) + f"<td>{links}</td></tr>"
        )
    body.append("</table><h2>Findings</h2><ul>")
    body += [f"<li>{esc(s)}</li>" for s in story]
    body.append("</ul><h2>Plots</h2>")
    body += [f"<h3>{esc(d)}</h3><img src='{esc(p)}'>" for d, p in plots.items()]
    index = out_dir / "index.html"
    index.write_text("\n".join(body) + "\n")
    return index


__all__ = ["HEADERS", "WHY", "findings", "plot_driver", "write_report"]
