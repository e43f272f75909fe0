"""A run recorded with real processes is judged again from its directory with the same verdicts.

Real PostgreSQL, a real proxy server and real worker processes (the module's
``ChaosEnv``); the run directory is written the way a scenario's is, then
:func:`harness.cli.analyze` re-judges it from the files alone and
:func:`harness.report.render` draws it again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.chaos.env import ChaosEnv
from harness.chaos.steps import Age, Burst, Invoke, Reclaim, Step
from harness.chaos.timings import OTHER_SECRET, SECRET
from harness.chaos.zoo import BY_NAME, Bug
from harness.cli import analyze
from harness.report import RunDir, ScenarioResult, render

pytestmark = pytest.mark.slow

SCHEDULE: tuple[Step, ...] = (Burst(3), Reclaim(0), Age(), Invoke("write"))
"""A zombie from a reclaimed worker, then invocations: the correct client passes, a fleet
without a reaper leaves the zombie over the limit (P2)."""


def _record(chaos: ChaosEnv, root: Path, bug: Bug | None) -> tuple[RunDir, ScenarioResult]:
    run_dir = RunDir("recorded", root=root)
    with chaos.begin(bug, run_dir=run_dir.path) as live:
        for step in SCHEDULE:
            live.apply(step)
        judged = live.finish()
    outcome = ScenarioResult("recorded", judged.verdicts, notes=judged.story(), run=judged.run)
    run_dir.finish(outcome)
    return run_dir, outcome


@pytest.mark.parametrize(("client", "result"), [("correct", "pass"), ("reaper_disabled", "fail")])
def test_analyze_rejudges_a_real_run_with_the_same_verdicts(
    chaos: ChaosEnv, tmp_path: Path, client: str, result: str
) -> None:
    bug = None if client == "correct" else BY_NAME[client]
    run_dir, outcome = _record(chaos, tmp_path, bug)
    assert outcome.result == result, [v.summary for v in outcome.verdicts]
    if bug is not None:
        assert bug.expected in [v.prop for v in outcome.verdicts if v.failed]
    d = run_dir.path
    # the live files kept growing after the verdicts (the fleet's teardown): the stored
    # run still names exactly what was judged
    stored = json.loads((d / "config.json").read_text())
    assert stored["judged"]["history"]["file"] == "history.jsonl"
    assert stored["judged"]["history"]["count"] == len(outcome.run.events)  # type: ignore[union-attr]
    lines = (d / "history.jsonl").read_text().count("\n")
    assert lines > stored["judged"]["history"]["count"]

    again = analyze(d)
    summary = json.loads((d / "summary.json").read_text())
    assert [v.to_json() for v in again.verdicts] == summary["verdicts"]
    assert again.result == result
    assert "the same verdicts as the run gave" in again.notes

    for f in d.iterdir():
        text = f.read_text(errors="replace")
        assert SECRET not in text, f"a secret in {f.name}"
        assert OTHER_SECRET not in text, f"a secret in {f.name}"

    (d / "timeline.png").unlink()
    (d / "report.html").unlink()
    render(d)
    assert (d / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["why"] in (d / "report.html").read_text().replace("&#x27;", "'")
    assert (tmp_path / "latest").resolve() == d.resolve()
