"""``report.html``: one page with the verdicts, their evidence, the plot and the files."""

from __future__ import annotations

import html
import json
from pathlib import Path

from harness.check import render_verdict
from harness.report.result import ScenarioResult

_WORD = {"ok": "holds", "fail": "FAILS", "unknown": "NOT JUDGED"}
_CSS = {"ok": "ok", "fail": "bad", "unknown": "unknown"}


def write_html(outcome: ScenarioResult, path: Path, *, with_timeline: bool) -> None:
    """A single page: verdicts with their evidence, counts, timings, the plot, the files."""
    e = html.escape
    rows = "".join(
        f"<tr class={_CSS[v.status]}><td>{e(v.prop)}</td><td>{e(v.title)}</td>"
        f"<td>{_WORD[v.status]}</td><td>{e(v.summary)}</td></tr>"
        for v in outcome.verdicts
    )
    details = "".join(
        f"<h3>{e(v.prop)} evidence</h3><pre>{e(render_verdict(v))}</pre>"
        for v in outcome.verdicts
        if not v.ok
    )
    unjudged = (
        f"<p class=bad>Could not be judged: {e(outcome.unjudged)}</p>" if outcome.unjudged else ""
    )
    plot = '<img src="timeline.png" alt="timeline" width="1100">' if with_timeline else ""
    files = "".join(
        f'<li><a href="{n}">{n}</a></li>'
        for n in ("summary.json", "history.jsonl", "activity.csv", "junit.xml")
        if (path.parent / n).exists()
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>thawproof: {e(outcome.scenario)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:4px 10px;text-align:left}}
.ok{{color:#1a7f37}}.bad{{color:#cf222e}}.unknown{{color:#9a6700}}pre{{background:#f6f8fa;padding:1em;overflow:auto}}</style>
</head><body>
<h1>{e(outcome.scenario)} — {e(outcome.result)}</h1>
{unjudged}
<table><tr><th>property</th><th></th><th>verdict</th><th>summary</th></tr>{rows}</table>
{plot}
{details}
<h2>Counts</h2><pre>{e(json.dumps(outcome.counts, indent=2, default=str))}</pre>
<h2>Timings</h2><pre>{e(json.dumps(outcome.timings, indent=2, default=str))}</pre>
<h2>Notes</h2><ul>{"".join(f"<li>{e(n)}</li>" for n in outcome.notes)}</ul>
<h2>Files</h2><ul>{files}</ul>
</body></html>
"""
    path.write_text(page)
