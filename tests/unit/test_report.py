"""Run directories: every file a person reads, the latest link, the why, the exit status."""

from __future__ import annotations

import csv
import json
import re
import threading
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness.check import Run, check_all
from harness.history import Sample, StepEvent
from harness.report import EXIT_FAILED, EXIT_OK, EXIT_UNJUDGED, RunDir, ScenarioResult
from harness.report.html import write_html
from tests.unit.builders import H, final, lease, row, sample
from tests.unit.test_checks import config

PNG = b"\x89PNG\r\n\x1a\n"


def _run_with_duplicate(duplicate: bool, **cfg: object) -> Run:
    h = H()
    h.events.append(StepEvent(1, "invoke write (a warm worker, else a cold start)", 0.9, 0.9))
    h.spawn("w1", 0.0)
    h.backend("w1", 101, 0.1, until=50)
    op = h.write("w1", 1.0, "op-1")
    h.ok(op, 1.1)
    h.fault("freeze", 1.2, "w1", cause="fault")
    h.reap(102, 2.0, until=1.0)
    h.spawn("w2", 5.5)
    h.ok(h.invoke("w2", 6.0), 6.1)  # an invocation after P2's deadline: P2 is judged
    samples = [sample(t / 10, row(101, lease("w1", 50))) for t in range(30)]
    samples += [sample(6.0 + t / 10, row(101, lease("w1", 50))) for t in range(3)]
    return Run(h.events, samples, final({"op-1": 2 if duplicate else 1}), config(**cfg))


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (the file must be a real PNG)."""
    data = path.read_bytes()
    assert data[:8] == PNG, "not a PNG"
    assert data[12:16] == b"IHDR", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_passing_run_writes_every_file_and_points_latest(tmp_path: Path) -> None:
    run = _run_with_duplicate(False)
    outcome = ScenarioResult("demo", check_all(run), counts={"ops": 1}, run=run)
    outcome.identity = {"utc_date": "2026-01-01 00:00:00 UTC", "git_commit": "abc"}
    d = RunDir("demo", root=tmp_path)
    d.finish(outcome)
    for name in (
        "summary.json",
        "junit.xml",
        "report.html",
        "activity.csv",
        "timeline.png",
        "config.json",
        "final.json",
        "history.jsonl",
        "activity.jsonl",
    ):
        assert (d.path / name).stat().st_size > 0, name
    assert (tmp_path / "latest").resolve() == d.path.resolve()
    summary = json.loads((d.path / "summary.json").read_text())
    assert summary["result"] == "pass"
    assert outcome.exit_code == EXIT_OK
    assert summary["why"] == "every property holds (P1, P2, P3, P4, P5, P6, P7)"
    assert summary["identity"]["git_commit"] == "abc"
    assert [v["property"] for v in summary["verdicts"]] == [f"P{i}" for i in range(1, 8)]
    width, height = _png_size(d.path / "timeline.png")
    assert width >= 1000
    assert height >= 400
    suite = ET.parse(d.path / "junit.xml").getroot()
    assert suite.get("tests") == "7"
    assert suite.get("failures") == "0"
    with (d.path / "activity.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(run.samples)
    assert rows[0]["pid"] == "101"
    assert json.loads((d.path / "final.json").read_text())["ledger_counts"] == {"op-1": 1}


def test_failing_property_shows_in_junit_html_why_and_exit_code(tmp_path: Path) -> None:
    run = _run_with_duplicate(True)
    outcome = ScenarioResult("demo", check_all(run), run=run)
    assert outcome.exit_code == EXIT_FAILED
    d = RunDir("demo", root=tmp_path)
    d.finish(outcome)
    suite = ET.parse(d.path / "junit.xml").getroot()
    assert suite.get("failures") == "1"
    assert suite.get("tests") == "7"
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert "op-1" in (failure.text or "")
    page = (d.path / "report.html").read_text()
    assert "FAILS" in page
    assert 'id="evidence-P3"' in page
    why = json.loads((d.path / "summary.json").read_text())["why"]
    assert why.startswith("P3 no duplicate writes failed:")
    assert "op-1" in why
    assert "\n" not in why
    assert (tmp_path / "latest").resolve() == d.path.resolve()  # a failure is judged


def test_an_unjudged_run_says_why_and_never_moves_latest(tmp_path: Path) -> None:
    judged = RunDir("demo", root=tmp_path)
    run = _run_with_duplicate(False)
    judged.finish(ScenarioResult("demo", check_all(run), run=run))
    assert (tmp_path / "latest").resolve() == judged.path.resolve()
    second = RunDir("demo", root=tmp_path)
    outcome = ScenarioResult("demo", unjudged="no proxy server could be started")
    second.finish(outcome)
    assert outcome.exit_code == EXIT_UNJUDGED
    assert judged.path != second.path
    assert (tmp_path / "latest").resolve() == judged.path.resolve()
    summary = json.loads((second.path / "summary.json").read_text())
    assert summary["why"] == "not judged: no proxy server could be started"
    suite = ET.parse(second.path / "junit.xml").getroot()
    assert suite.get("errors") == "1"
    assert "NOT JUDGED" in (second.path / "report.html").read_text()


def test_a_first_unjudged_run_makes_no_latest(tmp_path: Path) -> None:
    RunDir("demo", root=tmp_path).finish(ScenarioResult("demo", unjudged="interrupted"))
    assert not (tmp_path / "latest").exists()
    assert not (tmp_path / "latest").is_symlink()


def test_a_result_without_verdicts_is_not_a_pass() -> None:
    outcome = ScenarioResult("demo")
    assert outcome.result == "unjudged"
    assert outcome.exit_code == EXIT_UNJUDGED
    assert outcome.why == "not judged: the scenario returned no verdict"


def test_a_history_that_fails_validation_is_unjudged_and_exits_2(tmp_path: Path) -> None:
    h = H()
    a = h.invoke("w1", 1.0)
    h.ok(a, 1.1)
    h.fail(a, 1.2)  # completed twice: the history cannot be trusted
    run = Run(h.events, [], final(), config())
    verdicts = check_all(run)
    assert [v.status for v in verdicts] == ["unknown"] * 7
    assert "fails validation" in verdicts[0].summary
    assert "double_completion" in verdicts[0].summary
    outcome = ScenarioResult("demo", verdicts, run=run)
    assert outcome.result == "unjudged"
    assert outcome.exit_code == EXIT_UNJUDGED
    assert outcome.why.startswith("not judged: P1 NOT JUDGED: the history fails validation")
    d = RunDir("demo", root=tmp_path)
    d.finish(outcome)
    suite = ET.parse(d.path / "junit.xml").getroot()
    assert suite.get("errors") == "7"
    assert suite.get("failures") == "0"
    assert "NOT JUDGED" in (d.path / "report.html").read_text()
    assert not (tmp_path / "latest").exists()


def test_summary_round_trips_through_from_json() -> None:
    run = _run_with_duplicate(True)
    outcome = ScenarioResult(
        "demo",
        check_all(run),
        counts={"a": 1},
        timings={"run_s": 1.5},
        notes=["n"],
        identity={"python": "CPython 3.11"},
        clock_start=12.5,
    )
    back = ScenarioResult.from_json(json.loads(json.dumps(outcome.to_json(), default=str)))
    assert back.to_json() == json.loads(json.dumps(outcome.to_json(), default=str))


# --------------------------------------------------------------- the page's clock

ZERO = 48_213.25
"""A monotonic zero far from 0, as a real run's, so a raw clock value would show."""


def _shifted(run: Run, by: float) -> Run:
    """The same run with every monotonic time moved by ``by`` (walls stay)."""
    import dataclasses

    events = [dataclasses.replace(e, time=e.time + by) for e in run.events]
    samples = [Sample(s.time + by, s.wall, s.rows) for s in run.samples]
    return Run(events, samples, run.final, run.config)


@pytest.mark.parametrize("duplicate", [False, True])
def test_the_page_shows_no_raw_clock_value(tmp_path: Path, duplicate: bool) -> None:
    run = _shifted(_run_with_duplicate(duplicate, clock_start=ZERO - 0.5), ZERO)
    outcome = ScenarioResult("demo", check_all(run), run=run)
    write_html(outcome, tmp_path / "report.html", with_timeline=False)
    page = (tmp_path / "report.html").read_text()
    raw = {f"{t:.{p}f}" for e in run.events for t in (e.time,) for p in (1, 2, 3)}
    raw |= {str(e.time) for e in run.events} | {str(int(ZERO))}
    shown = sorted(r for r in raw if r in page)
    assert not shown, f"raw monotonic values on the page: {shown[:5]}"
    # the tables and the schedule count from the clock start instead: op-1 was invoked
    # at ZERO + 1.0, the step began at ZERO + 0.9, the clock started at ZERO - 0.5
    assert re.search(r"<td>op-1</td><td>w1</td><td>write</td><td>ok</td><td>\+1\.500 s", page)
    assert "(t=+1.400s)" in page


def test_every_link_on_the_page_is_a_relative_file_of_the_directory(tmp_path: Path) -> None:
    run = _run_with_duplicate(True)
    d = RunDir("demo", root=tmp_path)
    d.finish(ScenarioResult("demo", check_all(run), run=run))
    page = (d.path / "report.html").read_text()
    refs = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert "timeline.png" in refs
    assert "history.jsonl" in refs
    for ref in refs:
        assert "://" not in ref, ref
        assert not ref.startswith("/"), ref
        assert (d.path / ref).is_file(), ref


def test_run_directories_made_at_once_in_one_second_are_distinct(tmp_path: Path) -> None:
    # two runners started together (tests/chaos/test_many_runners.py) once collided
    # here: both saw the stamp free, both made it, one failed with FileExistsError
    start = threading.Barrier(8)
    made: list[Path] = []

    def make() -> None:
        start.wait()
        made.append(RunDir("demo", root=tmp_path).path)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 8
    assert len(set(made)) == 8, made
