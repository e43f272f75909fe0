"""A stored run judged and drawn again from its files alone: render() and analyze()."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from harness.chaos.timings import OTHER_SECRET, SECRET
from harness.check import Run, RunConfig, check_all
from harness.cli import analyze as cli_analyze
from harness.errors import HistoryFormatError, UsageError
from harness.history import dumps
from harness.report import RunDir, ScenarioResult, analyze, load_run, render
from harness.report.stored import config_from_json, config_to_json, store_run
from tests.unit.builders import H, final, lease, row, sample
from tests.unit.test_checks import config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
RECORDED = sorted(p.name for p in FIXTURES.iterdir() if (p / "config.json").exists())


def _copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


def test_the_recorded_fixtures_are_one_passing_and_one_failing_run() -> None:
    results = {
        n: json.loads((FIXTURES / n / "summary.json").read_text())["result"] for n in RECORDED
    }
    assert sorted(results.values()) == ["fail", "pass"], results


@pytest.mark.parametrize("name", RECORDED)
def test_analyze_gives_the_verdicts_the_run_gave(name: str, tmp_path: Path) -> None:
    d = _copy(name, tmp_path)
    stored = json.loads((d / "summary.json").read_text())
    again = cli_analyze(d)
    assert [v.to_json() for v in again.verdicts] == stored["verdicts"]
    assert again.result == stored["result"]
    assert "the same verdicts as the run gave" in again.notes
    assert not any("without a signature check" in n for n in again.notes)


@pytest.mark.parametrize("name", RECORDED)
def test_render_draws_again_from_the_files_alone(name: str, tmp_path: Path) -> None:
    d = _copy(name, tmp_path)
    assert not (d / "report.html").exists()
    assert not (d / "timeline.png").exists()
    page = render(d)
    assert page == d / "report.html"
    assert (d / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    stored = json.loads((d / "summary.json").read_text())
    assert stored["why"].split(":")[0] in text
    for v in stored["verdicts"]:
        assert f"<td>{v['property']}</td>" in text


def test_analyze_without_the_secret_says_it_judged_without_signatures(tmp_path: Path) -> None:
    d = _copy(RECORDED[0], tmp_path)
    again = analyze(d)  # no verify_for: the secret is nowhere in the directory
    assert any("judged without a signature check" in n for n in again.notes)
    assert load_run(d).run.config.verify is None


def test_analyze_reports_a_different_verdict_when_the_files_changed(tmp_path: Path) -> None:
    name = next(n for n in RECORDED if "fail" in n)
    d = _copy(name, tmp_path)
    summary = json.loads((d / "summary.json").read_text())
    for v in summary["verdicts"]:
        v["status"] = "ok"
    (d / "summary.json").write_text(json.dumps(summary))
    again = cli_analyze(d)
    assert any(
        n.startswith("DIFFERENT verdicts") and "P2 was ok, now fail" in n for n in again.notes
    )


def test_no_secret_is_written_into_a_run_directory() -> None:
    for name in RECORDED:
        for f in (FIXTURES / name).iterdir():
            text = f.read_text(errors="replace")
            assert SECRET not in text, f
            assert OTHER_SECRET not in text, f


def test_every_run_config_field_but_verify_round_trips() -> None:
    cfg = config(
        foreign_pids=frozenset({7, 3}),
        escaped_error_classes=frozenset({"OperationalError"}),
        sample_interval=0.05,
        clock_start=12.5,
        own_app_prefix="s=orders;",
    )
    raw = json.loads(json.dumps(config_to_json(cfg)))
    assert "verify" not in raw
    names = {f.name for f in dataclasses.fields(RunConfig)} - {"verify"}
    assert set(raw) == names
    assert raw["foreign_pids"] == [3, 7]
    back = config_from_json(raw, cfg.verify)
    assert back == cfg
    with pytest.raises(HistoryFormatError, match="unknown RunConfig field 'secret'"):
        config_from_json({**raw, "secret": "x"})


def _small_run() -> Run:
    h = H()
    h.spawn("w1", 0.0)
    h.backend("w1", 101, 0.1, until=50)
    h.ok(h.write("w1", 1.0, "op-1"), 1.1)
    h.spawn("w2", 5.5)
    h.ok(h.invoke("w2", 6.0), 6.1)
    samples = [sample(t / 10, row(101, lease("w1", 50))) for t in range(62)]
    return Run(h.events, samples, final({"op-1": 1}), config(sample_interval=0.1))


def test_only_what_was_judged_is_judged_again(tmp_path: Path) -> None:
    """The live files grow after the verdicts (the fleet's teardown, the sampler): the
    stored run reads exactly the judged prefix."""
    run = _small_run()
    d = tmp_path / "run"
    d.mkdir()
    with (d / "history.jsonl").open("w") as f:
        for e in run.events:
            f.write(dumps(e))
        later = H()
        later.crash("w1", 9.0)  # after the verdicts: must not be judged
        f.write(dumps(later.events[0]))
    with (d / "activity.jsonl").open("w") as f:
        for s in [*run.samples, sample(9.0, *(row(200 + i, lease("z", 0)) for i in range(9)))]:
            f.write(dumps(s))
    verdicts = check_all(run)
    assert all(v.ok for v in verdicts), [v.summary for v in verdicts if not v.ok]
    store_run(d, run)
    (d / "summary.json").write_text(json.dumps(ScenarioResult("demo", verdicts).to_json()))
    stored = load_run(d)
    assert list(stored.run.events) == list(run.events)
    assert list(stored.run.samples) == list(run.samples)
    again = analyze(d, lambda service: config().verify)
    assert [v.to_json() for v in again.verdicts] == [v.to_json() for v in verdicts]
    assert "the same verdicts as the run gave" in again.notes


def test_a_live_file_that_does_not_begin_with_the_judged_run_is_kept_beside(
    tmp_path: Path,
) -> None:
    run = _small_run()
    (tmp_path / "history.jsonl").write_text(dumps(run.events[-1]))  # something else
    store_run(tmp_path, run)
    assert (tmp_path / "history.jsonl").read_text() == dumps(run.events[-1])
    assert (tmp_path / "history.judged.jsonl").exists()
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["judged"]["history"] == {"file": "history.judged.jsonl", "count": len(run.events)}
    assert list(load_run(tmp_path).run.events) == list(run.events)


def test_a_directory_without_a_stored_run_cannot_be_analyzed(tmp_path: Path) -> None:
    d = RunDir("smoke", root=tmp_path)
    d.finish(ScenarioResult("smoke", unjudged="no proxy"))
    with pytest.raises(UsageError, match="holds no stored run"):
        analyze(d.path)
    with pytest.raises(UsageError, match="not a run directory"):
        analyze(tmp_path)
    render(d.path)  # a result without a run still renders: the verdicts and why
    assert "no proxy" in (d.path / "report.html").read_text()


def test_a_malformed_config_is_a_format_error(tmp_path: Path) -> None:
    d = _copy(RECORDED[0], tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(HistoryFormatError):
        analyze(d)
