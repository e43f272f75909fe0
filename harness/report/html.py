"""``report.html``: one self-contained page a person reads after a run.

In order: the verdicts (holds / FAILS / NOT JUDGED) and the one line that says
why the run ended as it did; for each property that failed or could not be
judged, its evidence in sentences; the schedule as a numbered list; the chart
(``timeline.png``); tables of operations, backends and the reaper's ledger;
the run's identity; counts, timings, notes and the files.

Promises: every time on the page is in seconds since the run's zero (the chart's
and the evidence's clock), never a raw clock value; every link and image is a
relative path to a file in the run directory, so the directory can be zipped and
opened anywhere; nothing is loaded from outside (no CDN, no font, no script).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.check import Run, Verdict, is_routine_freeze
from harness.check.situations import SITUATIONS
from harness.history import StepEvent
from harness.report.result import ScenarioResult
from harness.report.tables import backend_rows, fault_rows, ledger_rows, op_rows

WORD = {"ok": "holds", "fail": "FAILS", "unknown": "NOT JUDGED"}
_CSS_CLASS = {"ok": "ok", "fail": "bad", "unknown": "unknown"}
HEADLINE = {"pass": "PASS", "fail": "FAIL", "unjudged": "NOT JUDGED"}
TIME_KEYS = frozenset({"anchor", "deadline", "healed", "time", "from", "to", "invoked"})
"""``measured`` keys that hold a monotonic time (shown relative to the run's zero)."""
MAX_EVIDENCE = 50
FILES = (
    "summary.json",
    "history.jsonl",
    "history.judged.jsonl",
    "activity.jsonl",
    "activity.judged.jsonl",
    "activity.csv",
    "config.json",
    "final.json",
    "junit.xml",
    "timeline.png",
    "traceback.txt",
)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em 2em;color:#1f2328}
h1{margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5em 0} td,th{padding:3px 9px;text-align:left;
vertical-align:top;border-bottom:1px solid #eaeef2} th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.bad{color:#cf222e}.unknown{color:#9a6700}
.why{font-size:1.1em;padding:.5em .8em;border-left:4px solid #999;background:#f6f8fa}
.why.bad{border-color:#cf222e}.why.ok{border-color:#1a7f37}.why.unknown{border-color:#9a6700}
tr.fail td,tr.info td,tr.open td{background:#fff5f5}
.verdict{font-weight:bold} img.chart{max-width:100%;border:1px solid #d0d7de}
code,pre{background:#f6f8fa} pre{padding:.8em;overflow:auto} details{margin:.5em 0}
ol.evidence li{margin:.25em 0}
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _t(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:+.3f} s"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], *, cls: Sequence[str] = ()) -> str:
    """Rows of already-escaped cells; ``cls`` a CSS class per row."""
    classes = list(cls)
    body = []
    for i, r in enumerate(rows):
        c = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{c}>" + "".join(f"<td>{x}</td>" for x in r) + "</tr>")
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(body)}</table>"


class _Clock:
    """Times on the run's clock; the zero is the run's (or the result's clock_start)."""

    def __init__(self, run: Run | None, outcome: ScenarioResult) -> None:
        if run is not None:
            self.zero: float | None = run.t0
        else:
            self.zero = outcome.clock_start

    def measured(self, key: str, value: Any) -> str:
        if key in TIME_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
            if self.zero is None:
                return "(a time, but the run's zero is unknown)"
            return f"t={value - self.zero:+.3f}s"
        if isinstance(value, float):
            return f"{value:.3f}"
        if isinstance(value, list | dict):
            return json.dumps(value, default=str)
        return str(value)


def _verdict_table(outcome: ScenarioResult) -> str:
    if not outcome.verdicts:
        return "<p class=bad>No property was judged.</p>"
    rows = [
        (
            _e(v.prop),
            _e(v.title),
            f'<span class="verdict {_CSS_CLASS[v.status]}">{WORD[v.status]}</span>',
            _e(v.summary),
        )
        for v in outcome.verdicts
    ]
    return _table(("property", "promise", "verdict", "summary"), rows).replace(
        "<table>", '<table id="verdicts">', 1
    )


def _whose(run: Run, pid: int, t: float) -> str:
    """Whose backend ``pid`` was at ``t``, and what had become of that worker."""
    if pid in run.foreign_pids:
        return f"pid {pid} (a foreign backend)"
    owner = run.timeline.owner(pid, t)
    if owner is None:
        return f"pid {pid} (no worker's)"
    w, tl = owner.worker, run.timeline
    died = tl.deaths.get(w)
    if died is not None and died <= t:
        return f"pid {pid} (worker {w}, gone since t={died - run.t0:+.3f}s: a zombie)"
    frozen = tl.frozen_at(w, t)
    if frozen is not None:
        how = "parked" if is_routine_freeze(frozen.opened_by) else f"frozen by {frozen.opened_by.f}"
        return f"pid {pid} (worker {w}, {how} since t={frozen.start - run.t0:+.3f}s)"
    return f"pid {pid} (worker {w}, running)"


def _explain(ev: dict[str, Any], run: Run | None) -> str:
    """The evidence's sentence; for a count over the limit, whose backends they were."""
    text = str(ev["explain"])
    rows = ev.get("peak_rows")
    if run is None or not isinstance(rows, list) or not rows or "from" not in ev:
        return text
    at = float(ev["from"])
    pids = [int(r["pid"]) for r in rows if isinstance(r, dict) and "pid" in r]
    return f"{text}. At the peak: " + "; ".join(_whose(run, p, at) for p in pids) + "."


def _evidence(v: Verdict, clock: _Clock, run: Run | None) -> str:
    word = "failed" if v.failed else "could not be judged"
    parts = [f'<h3 id="evidence-{_e(v.prop)}">{_e(v.prop)} {_e(v.title)}: {word}</h3>']
    sentences = [_explain(ev, run) for ev in v.evidence if ev.get("explain")]
    if not sentences and v.unknown:
        sentences = [str(s) for s in v.measured.get("unjudged") or []] or [v.summary]
    items = "".join(f"<li>{_e(s)}</li>" for s in sentences[:MAX_EVIDENCE])
    parts.append(f'<ol class="evidence">{items}</ol>')
    if len(sentences) > MAX_EVIDENCE:
        parts.append(f"<p>… and {len(sentences) - MAX_EVIDENCE} more (see summary.json)</p>")
    shown = {k: x for k, x in v.measured.items() if k != "unjudged" or not v.unknown}
    if shown:
        cells = ", ".join(f"{_e(k)} = {_e(clock.measured(k, x))}" for k, x in shown.items())
        parts.append(f"<p>measured: {cells}</p>")
    return "".join(parts)


def _schedule(run: Run | None, outcome: ScenarioResult) -> str:
    steps = (
        sorted((e for e in run.events if isinstance(e, StepEvent)), key=lambda e: e.n)
        if run is not None
        else []
    )
    if not steps:
        return "<p>This run recorded no schedule steps.</p>"
    assert run is not None
    items = "".join(
        f'<li value="{s.n}">{_e(s.text)} <small>(t={s.time - run.t0:+.3f}s)</small></li>'
        for s in steps
    )
    settle = ""
    if any(n.strip().startswith("then:") for n in outcome.notes):
        settle = (
            "<p>then: faults healed, invocations kept arriving for the convergence bound,"
            " every frozen worker was thawed and invoked once.</p>"
        )
    return f'<ol id="schedule">{items}</ol>{settle}'


def _operations(run: Run) -> str:
    rows = op_rows(run)
    if not rows:
        return "<p>No operation was recorded.</p>"
    head = ("op", "worker", "f", "outcome", "invoked", "took", "backend", "error")

    def cells(r: Any) -> tuple[str, ...]:
        took = "never completed" if r.took is None else f"{r.took:.3f} s"
        return (
            _e(r.op),
            _e(r.worker or ""),
            _e(r.f),
            _e(r.outcome),
            _t(r.invoked),
            took,
            _e(r.backends),
            _e(r.error),
        )

    bad = [r for r in rows if r.outcome != "ok"]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    out = [f"<p>{len(rows)} operation(s): {_e(summary)}.</p>"]
    if bad:
        out.append("<h3>Operations that did not end ok</h3>")
        out.append(_table(head, (cells(r) for r in bad), cls=[r.outcome for r in bad]))
    out.append(
        f"<details><summary>All {len(rows)} operations</summary>"
        + _table(head, (cells(r) for r in rows), cls=[r.outcome for r in rows])
        + "</details>"
    )
    return "".join(out)


def _faults(run: Run) -> str:
    rows = fault_rows(run)
    if not rows:
        return "<p>No fault was injected (workers were only parked between invocations).</p>"
    return _table(
        ("time", "worker", "fault", "what", "detail"),
        ((_t(r.time), _e(r.worker or "all"), _e(r.f), _e(r.label), _e(r.detail)) for r in rows),
    )


def _backends(run: Run) -> str:
    rows = backend_rows(run)
    if not rows:
        return "<p>No pg_stat_activity sample was recorded.</p>"
    head = ("pid", "application name", "whose", "started", "first seen", "last seen", "states")
    return _table(
        head,
        (
            (
                str(r.pid),
                _e(r.application_name) + (f" <small>({r.names} names)</small>" * (r.names > 1)),
                _e(r.kind),
                _t(r.started),
                _t(r.first_seen),
                _t(r.last_seen),
                _e(r.states),
            )
            for r in rows
        ),
    )


def _ledger(run: Run) -> str:
    rows = ledger_rows(run)
    if not rows:
        return "<p>The reaper's ledger is empty: no backend was killed.</p>"
    kills = sum(1 for r in rows if r.result == "killed")
    head = ("time", "reaper", "result", "victim pid", "whose", "state", "since", "application")
    return f"<p>{kills} kill(s) in {len(rows)} ledger entr(y/ies).</p>" + _table(
        head,
        (
            (
                _t(r.time),
                _e(r.reaper or ""),
                _e(r.result),
                str(r.pid),
                _e(r.victim),
                _e(r.state or ""),
                _t(r.state_since),
                _e(r.application_name or ""),
            )
            for r in rows
        ),
    )


IDENTITY_WORDS = {
    "utc_date": "date (UTC)",
    "git_commit": "git commit",
    "python": "Python",
    "postgresql": "PostgreSQL server",
    "toxiproxy_server": "Toxiproxy server",
    "toxiproxy_python": "toxiproxy-python client",
    "platform": "platform",
}


def _identity(outcome: ScenarioResult) -> str:
    if not outcome.identity:
        return "<p>Not recorded.</p>"
    rows = [(_e(IDENTITY_WORDS.get(k, k)), _e(v)) for k, v in outcome.identity.items()]
    return _table(("", ""), rows).replace("<table>", '<table id="identity">', 1)


def _situations(outcome: ScenarioResult) -> str:
    """Each situation the spec describes, how often this run reached it."""
    counts = outcome.situations
    rows = (
        (_e(s.name), _e(s.what), _e(counts.get(s.name, 0)) if counts.get(s.name) else "not reached")
        for s in SITUATIONS
        if s.name in counts
    )
    return _table(("situation", "what", "times"), rows)


def _kv(d: dict[str, Any]) -> str:
    if not d:
        return "<p>None.</p>"
    return _table(("", ""), ((_e(k), _e(v)) for k, v in d.items()))


def write_html(
    outcome: ScenarioResult, path: Path, *, with_timeline: bool, run: Run | None = None
) -> None:
    """Write the page to ``path`` (its directory's files are linked if they exist)."""
    run = run if run is not None else outcome.run
    clock = _Clock(run, outcome)
    status = {"pass": "ok", "fail": "fail", "unjudged": "unknown"}[outcome.result]
    sections = [
        f"<h1>{_e(outcome.scenario)}: "
        f'<span class="{_CSS_CLASS[status]}">{HEADLINE[outcome.result]}</span></h1>',
        f'<p class="why {_CSS_CLASS[status]}" id="why">{_e(outcome.why)}</p>',
        "<h2>Verdicts</h2>",
        _verdict_table(outcome),
    ]
    not_ok = [v for v in outcome.verdicts if not v.ok]
    if not_ok:
        sections.append('<h2 id="evidence">Evidence</h2>')
        sections += [_evidence(v, clock, run) for v in not_ok]
    sections += ["<h2>Schedule</h2>", _schedule(run, outcome)]
    if with_timeline:
        sections += [
            "<h2>Timeline</h2>",
            "<p>Seconds since the start of the run, as in the evidence above.</p>",
            '<img class="chart" id="chart" src="timeline.png" alt="timeline: workers,'
            " operations, faults, kills and the service's backends over the run\">",
        ]
    if run is not None:
        sections += ["<h2>Faults</h2>", _faults(run)]
        sections += ["<h2>Operations</h2>", _operations(run)]
        sections += ["<h2>Backends</h2>", _backends(run)]
        sections += ["<h2>Reaper kills</h2>", _ledger(run)]
    if outcome.situations:
        sections += ['<h2 id="situations">Situations reached</h2>', _situations(outcome)]
    sections += ["<h2>Identity</h2>", _identity(outcome)]
    sections += ["<h2>Counts</h2>", _kv(outcome.counts), "<h2>Timings</h2>", _kv(outcome.timings)]
    if outcome.notes:
        sections.append("<h2>Notes</h2><ul>")
        sections += [f"<li>{_e(n)}</li>" for n in outcome.notes]
        sections.append("</ul>")
    files = [n for n in FILES if (path.parent / n).exists()]
    sections.append(
        "<h2>Files</h2><ul>" + "".join(f'<li><a href="{n}">{n}</a></li>' for n in files) + "</ul>"
    )
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>thawproof: {_e(outcome.scenario)} {HEADLINE[outcome.result]}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")


__all__ = ["write_html"]
