"""A stored run, rendered or judged again from its files alone (Jepsen's ``analyze``).

:func:`render` re-draws ``timeline.png`` and re-writes ``report.html`` from the
run directory's files, with the verdicts the run gave (``summary.json``); it
needs no server. :func:`analyze` judges the stored run again with
:func:`harness.check.check_all` from ``history.jsonl``, ``activity.jsonl``,
``final.json`` and ``config.json`` — exactly the events and samples the run
judged — without re-running anything, and says whether its verdicts are the
ones the run gave.

The signature check (``RunConfig.verify``) holds a secret and is never stored:
the caller passes ``verify_for(service)``, which gives it back for a service it
knows (the CLI knows the harness's own chaos service) and None otherwise; a run
judged with a check and re-judged without one says so in its notes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness.check import Verdict, check_all
from harness.errors import HistoryFormatError, UsageError
from harness.report.result import ScenarioResult
from harness.report.rundir import SUMMARY, write_views
from harness.report.stored import StoredRun, has_stored_run, load_run

VerifyFor = Callable[[str], Callable[[str], bool] | None]


def load_summary(run_dir: Path) -> ScenarioResult:
    """The result ``summary.json`` holds (without its run)."""
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no {SUMMARY})")
    try:
        return ScenarioResult.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise HistoryFormatError(f"{path}: {e}") from e


def load_result(run_dir: Path, verify_for: VerifyFor | None = None) -> ScenarioResult:
    """The stored result with its run (when the directory holds one)."""
    outcome = load_summary(run_dir)
    if has_stored_run(Path(run_dir)):
        outcome.run = load_run(Path(run_dir), verify_for).run
    return outcome


def render(run_dir: Path) -> Path:
    """Re-draw ``timeline.png`` and re-write ``report.html`` in ``run_dir`` from its files,
    with the verdicts the run gave; returns the page's path."""
    run_dir = Path(run_dir)
    write_views(load_result(run_dir), run_dir)
    return run_dir / "report.html"


def _same(a: list[Verdict], b: list[Verdict]) -> list[str]:
    """How verdict lists differ (empty: same properties, statuses and evidence)."""
    if [v.prop for v in a] != [v.prop for v in b]:
        return [f"properties {[v.prop for v in a]} vs {[v.prop for v in b]}"]
    out = []
    for x, y in zip(a, b, strict=True):
        if x.status != y.status:
            out.append(f"{x.prop} was {x.status}, now {y.status}")
        elif json.dumps(x.to_json(), default=str) != json.dumps(y.to_json(), default=str):
            out.append(f"{x.prop} {x.status} both times, with different evidence or figures")
    return out


def analyze(run_dir: Path, verify_for: VerifyFor | None = None) -> ScenarioResult:
    """Judge the run stored in ``run_dir`` again from its files; nothing is written.

    The result's notes say whether the verdicts match those in ``summary.json`` and,
    when the run had a signature check that could not be rebuilt, that P5 was judged
    without it. :class:`UsageError` if ``run_dir`` holds no stored run (a scenario that
    judges no recorded run, like ``smoke``, or a run that never started)."""
    run_dir = Path(run_dir)
    before = load_summary(run_dir)
    stored: StoredRun = load_run(run_dir, verify_for)
    run = stored.run
    verdicts = check_all(run)
    notes = [f"re-judged from the files in {run_dir.name}/ without re-running it"]
    if stored.had_verify and run.config.verify is None:
        notes.append(
            f"judged without a signature check: service {run.config.service!r} is not one"
            " whose secret the harness knows, so signed leases could not be verified"
        )
    diff = _same(before.verdicts, verdicts)
    notes.append(
        "the same verdicts as the run gave"
        if not diff
        else "DIFFERENT verdicts from the run's: " + "; ".join(diff)
    )
    return ScenarioResult(
        before.scenario,
        verdicts,
        counts=dict(before.counts),
        timings=dict(before.timings),
        notes=notes,
        run=run,
        identity=dict(before.identity),
        clock_start=before.clock_start,
    )


__all__ = ["VerifyFor", "analyze", "load_result", "load_summary", "render"]
