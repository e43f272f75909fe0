"""Run directories: every file a person reads, the latest link, and the exit status."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

from harness.check import Run, check_all
from harness.report import EXIT_FAILED, EXIT_OK, EXIT_UNJUDGED, RunDir, ScenarioResult
from tests.unit.builders import H, final, lease, row, sample
from tests.unit.test_checks import config


def _run_with_duplicate(duplicate: bool) -> Run:
    h = H()
    h.spawn("w1", 0.0)
    h.backend("w1", 101, 0.1, until=50)
    op = h.write("w1", 1.0, "op-1")
    h.ok(op, 1.1)
    h.fault("freeze", 1.2, "w1")
    h.reap(102, 2.0, until=1.0)
    h.spawn("w2", 5.5)
    h.ok(h.invoke("w2", 6.0), 6.1)  # an invocation after P2's deadline: P2 is judged
    samples = [sample(t / 10, row(101, lease("w1", 50))) for t in range(30)]
    return Run(h.events, samples, final({"op-1": 2 if duplicate else 1}), config())


def test_passing_run_writes_every_file_and_points_latest(tmp_path: Path) -> None:
    run = _run_with_duplicate(False)
    outcome = ScenarioResult("demo", check_all(run), counts={"ops": 1}, run=run)
    d = RunDir("demo", root=tmp_path)
    d.finish(outcome)
    for name in ("summary.json", "junit.xml", "report.html", "activity.csv", "timeline.png"):
        assert (d.path / name).stat().st_size > 0, name
    assert (tmp_path / "latest").resolve() == d.path.resolve()
    summary = json.loads((d.path / "summary.json").read_text())
    assert summary["result"] == "pass" and outcome.exit_code == EXIT_OK
    assert [v["property"] for v in summary["verdicts"]] == [f"P{i}" for i in range(1, 8)]
    assert (d.path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failing_property_shows_in_junit_html_and_exit_code(tmp_path: Path) -> None:
    run = _run_with_duplicate(True)
    outcome = ScenarioResult("demo", check_all(run), run=run)
    assert outcome.exit_code == EXIT_FAILED
    d = RunDir("demo", root=tmp_path)
    d.finish(outcome)
    suite = ET.parse(d.path / "junit.xml").getroot()
    assert suite.get("failures") == "1" and suite.get("tests") == "7"
    failure = suite.find("testcase/failure")
    assert failure is not None and "op-1" in (failure.text or "")
    assert "FAILS" in (d.path / "report.html").read_text()


def test_unjudged_run_exits_2_and_latest_moves(tmp_path: Path) -> None:
    first = RunDir("demo", root=tmp_path)
    first.finish(ScenarioResult("demo", unjudged="no proxy"))
    second = RunDir("demo", root=tmp_path)
    outcome = ScenarioResult("demo", unjudged="no proxy")
    second.finish(outcome)
    assert outcome.exit_code == EXIT_UNJUDGED
    assert first.path != second.path
    assert (tmp_path / "latest").resolve() == second.path.resolve()
    suite = ET.parse(second.path / "junit.xml").getroot()
    assert suite.get("errors") == "1"


def test_a_history_that_fails_validation_is_unjudged_and_exits_2(tmp_path: Path) -> None:
    h = H()
    a = h.invoke("w1", 1.0)
    h.ok(a, 1.1)
    h.fail(a, 1.2)  # completed twice: the history cannot be trusted
    run = Run(h.events, [], final(), config())
    verdicts = check_all(run)
    assert [v.status for v in verdicts] == ["unknown"] * 7
    assert "fails validation" in verdicts[0].summary and "double_completion" in verdicts[0].summary
    outcome = ScenarioResult("demo", verdicts, run=run)
    assert outcome.result == "unjudged" and outcome.exit_code == EXIT_UNJUDGED
    d = RunDir("demo", root=tmp_path)
    d.finish(outcome)
    suite = ET.parse(d.path / "junit.xml").getroot()
    assert suite.get("errors") == "7" and suite.get("failures") == "0"
    assert "NOT JUDGED" in (d.path / "report.html").read_text()
