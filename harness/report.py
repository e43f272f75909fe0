"""Reports of a run: ``reports/<scenario>/<UTC timestamp>/`` and ``reports/latest``.

A run directory holds, as the run goes: ``history.jsonl`` (the fleet writes it
as things happen) and ``activity.jsonl`` (the sampler's); at the end:
``summary.json`` (verdict per property, timings, counts), ``activity.csv``,
``timeline.png`` (the service's backend count against the limit, frozen workers
as bands, reaper kills as marks, failed operations as ticks), ``junit.xml`` and
``report.html`` that shows all of it. ``reports/latest`` points at the newest.

Exit status of a scenario: 0 every property holds, 1 a property failed, 2 the
run could not be judged (setup failure, bad input).
"""

from __future__ import annotations

import html
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from harness.checks import Verdict, is_routine_freeze, render_verdict
from harness.history import Event, FaultEvent, OpEvent, ReapEvent, Sample
from harness.observe import write_activity_csv
from harness.timeline import Timeline

REPORTS_ROOT = Path(__file__).resolve().parent.parent / "reports"

EXIT_OK, EXIT_FAILED, EXIT_UNJUDGED = 0, 1, 2


@dataclass
class Outcome:
    """What a scenario concluded: verdicts, or why it could not judge."""

    scenario: str
    verdicts: list[Verdict] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unjudged: str | None = None  # the reason, when the run could not be judged
    # the evidence the report draws (not in summary.json: history.jsonl holds it)
    events: Sequence[Event] = ()
    samples: Sequence[Sample] = ()
    limit: int | None = None
    service_prefix: str | None = None

    @property
    def exit_code(self) -> int:
        if self.unjudged is not None:
            return EXIT_UNJUDGED
        return EXIT_OK if all(v.ok for v in self.verdicts) else EXIT_FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "result": {EXIT_OK: "pass", EXIT_FAILED: "fail", EXIT_UNJUDGED: "unjudged"}[
                self.exit_code
            ],
            "exit_code": self.exit_code,
            "unjudged": self.unjudged,
            "verdicts": [v.to_json() for v in self.verdicts],
            "counts": self.counts,
            "timings": self.timings,
            "notes": self.notes,
        }


class RunDir:
    """One run's directory under ``reports/<scenario>/``."""

    def __init__(self, scenario: str, root: Path = REPORTS_ROOT) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = root / scenario
        path = base / stamp
        n = 1
        while path.exists():  # two runs in one second
            n += 1
            path = base / f"{stamp}-{n}"
        path.mkdir(parents=True)
        self.root = root
        self.path = path
        self.scenario = scenario

    def finish(self, outcome: Outcome) -> Path:
        """Write the summary and its views; point ``reports/latest`` here."""
        events, samples = outcome.events, outcome.samples
        limit, service_prefix = outcome.limit, outcome.service_prefix
        (self.path / "summary.json").write_text(
            json.dumps(outcome.to_json(), indent=2, default=str) + "\n"
        )
        write_junit(outcome, self.path / "junit.xml")
        if samples:
            write_activity_csv(samples, self.path / "activity.csv")
        plotted = False
        if samples or events:
            plotted = plot_timeline(
                events, samples, self.path / "timeline.png", limit=limit, prefix=service_prefix
            )
        write_html(outcome, self.path / "report.html", with_timeline=plotted)
        latest = self.root / "latest"
        tmp = self.root / f".latest-{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(self.path.relative_to(self.root))
        tmp.replace(latest)
        return self.path


def write_junit(outcome: Outcome, path: Path) -> None:
    """One test case per property (or one error when the run was not judged)."""
    suite = ET.Element("testsuite", name=f"thawproof.{outcome.scenario}")
    failures = errors = 0
    if outcome.unjudged is not None:
        case = ET.SubElement(suite, "testcase", classname=outcome.scenario, name="setup")
        ET.SubElement(case, "error", message=outcome.unjudged)
        errors = 1
    for v in outcome.verdicts:
        case = ET.SubElement(
            suite, "testcase", classname=outcome.scenario, name=f"{v.prop} {v.title}"
        )
        if not v.ok:
            failures += 1
            fail = ET.SubElement(case, "failure", message=v.summary)
            fail.text = render_verdict(v)
    suite.set("tests", str(max(1, len(outcome.verdicts))))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def plot_timeline(
    events: Sequence[Event],
    samples: Sequence[Sample],
    path: Path,
    *,
    limit: int | None,
    prefix: str | None,
) -> bool:
    """``timeline.png``; False (and no file) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    times = [e.time for e in events] + [s.time for s in samples]
    t0 = min(times) if times else 0.0
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=100)
    if samples:
        xs = [s.time - t0 for s in samples]
        counts = [
            sum(
                1 for r in s.rows if prefix is None or (r.application_name or "").startswith(prefix)
            )
            for s in samples
        ]
        ax.step(xs, counts, where="post", color="tab:blue", label="service backends")
        ymax = max([*counts, limit or 0, 1])
    else:
        ymax = max(limit or 0, 1)
    if limit is not None:
        ax.axhline(limit, color="tab:red", linestyle="--", label=f"limit {limit}")
    tl = Timeline(events)
    workers = sorted({e.worker for e in events if isinstance(e, FaultEvent) and e.worker})
    for w in workers:
        for iv in tl.frozen_during(w, -math.inf, math.inf):
            if is_routine_freeze(iv.opened_by):  # parked between invocations: Lambda's normal
                continue
            end = iv.end if math.isfinite(iv.end) else tl.end
            ax.axvspan(
                iv.start - t0,
                end - t0,
                ymin=0,
                ymax=1,
                color="tab:gray",
                alpha=0.12,
                label="frozen by a fault",
            )
    kills = [e for e in events if isinstance(e, ReapEvent) and e.result == "killed"]
    if kills:
        ax.scatter(
            [k.time - t0 for k in kills],
            [ymax * 1.05] * len(kills),
            marker="v",
            color="tab:red",
            label="reaper kill",
            zorder=3,
        )
    errors = [e for e in events if isinstance(e, OpEvent) and e.type in ("fail", "info")]
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


def write_html(outcome: Outcome, path: Path, *, with_timeline: bool) -> None:
    """A single page: verdicts with their evidence, counts, timings, the plot, the files."""
    e = html.escape
    rows = "".join(
        f"<tr class={'ok' if v.ok else 'bad'}><td>{e(v.prop)}</td><td>{e(v.title)}</td>"
        f"<td>{'holds' if v.ok else 'FAILS'}</td><td>{e(v.summary)}</td></tr>"
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
.ok{{color:#1a7f37}}.bad{{color:#cf222e}}pre{{background:#f6f8fa;padding:1em;overflow:auto}}</style>
</head><body>
<h1>{e(outcome.scenario)} — {e(outcome.to_json()["result"])}</h1>
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
