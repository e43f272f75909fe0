"""A run's directory: ``reports/<scenario>/<UTC timestamp>/`` and ``reports/latest``.

A run directory holds, as the run goes: ``history.jsonl`` (the fleet writes it
as things happen) and ``activity.jsonl`` (the sampler's); at the end:
``summary.json`` (verdict per property, timings, counts, identity, and in one
line why the run ended as it did), ``config.json`` and ``final.json`` (with the
two live files, enough to judge the run again: :mod:`harness.report.stored`),
``activity.csv``, ``timeline.png``, ``junit.xml`` and ``report.html`` that shows
all of it. ``reports/latest`` points at the newest run that was *judged* (every
property got a verdict, or one failed); a run that could not be judged never
moves it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from harness.report.activity_csv import write_activity_csv
from harness.report.html import write_html
from harness.report.junit import write_junit
from harness.report.plot import plot_timeline
from harness.report.result import ScenarioResult
from harness.report.stored import store_run

REPORTS_ROOT = Path(__file__).resolve().parents[2] / "reports"
SUMMARY = "summary.json"


def write_summary(outcome: ScenarioResult, path: Path) -> None:
    path.write_text(json.dumps(outcome.to_json(), indent=2, default=str) + "\n")


def write_views(outcome: ScenarioResult, path: Path) -> None:
    """``timeline.png`` and ``report.html`` (last: it links the files that exist)."""
    run = outcome.run
    plotted = False
    if run is not None and (run.samples or run.events):
        plotted = plot_timeline(run, path / "timeline.png", outcome.verdicts)
    write_html(outcome, path / "report.html", with_timeline=plotted)


class RunDir:
    """One run's directory under ``reports/<scenario>/``."""

    def __init__(self, scenario: str, root: Path = REPORTS_ROOT) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = root / scenario
        base.mkdir(parents=True, exist_ok=True)
        path, n = base / stamp, 1
        while True:  # two runs in one second, from one runner or from two at once
            try:
                path.mkdir()
                break
            except FileExistsError:
                n += 1
                path = base / f"{stamp}-{n}"
        self.root = root
        self.path = path
        self.scenario = scenario

    def finish(self, outcome: ScenarioResult) -> Path:
        """Write the summary, the stored run and its views; point ``reports/latest`` here
        if the run was judged."""
        write_summary(outcome, self.path / SUMMARY)
        write_junit(outcome, self.path / "junit.xml")
        run = outcome.run
        if run is not None:
            store_run(self.path, run)
            if run.samples:
                write_activity_csv(run.sorted_samples, self.path / "activity.csv")
        write_views(outcome, self.path)
        if outcome.judged:
            self._point_latest()
        return self.path

    def _point_latest(self) -> None:
        latest = self.root / "latest"
        tmp = self.root / f".latest-{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(self.path.relative_to(self.root))
        tmp.replace(latest)
