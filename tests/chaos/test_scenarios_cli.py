"""The scenario command as a user meets it: exit statuses, one-line errors, reports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scenarios", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def run_dir_of(done: subprocess.CompletedProcess[str]) -> Path:
    """The run directory the scenario printed (not reports/latest: under xdist another
    worker's run may have moved it)."""
    return run_dir_in(done.stdout)


def run_dir_in(output: str) -> Path:
    m = re.search(r"^\S+: (?:pass|fail|unjudged)  \((.+)\)$", output, re.M)
    assert m, output
    return Path(m.group(1))


def test_smoke_scenario_passes_and_reports() -> None:
    done = _run("smoke")
    assert done.returncode == 0, done.stdout + done.stderr
    latest = run_dir_of(done)
    summary = json.loads((latest / "summary.json").read_text())
    assert summary["scenario"] == "smoke"
    assert summary["result"] == "pass"
    assert {v["property"] for v in summary["verdicts"]} == {"S1", "S2", "S3"}
    assert "OperationalError" in summary["verdicts"][0]["summary"]
    assert (latest / "junit.xml").exists()
    assert (latest / "report.html").exists()
    assert "[smoke" in done.stderr  # progress lines


def test_unknown_scenario_is_one_line_and_exit_2() -> None:
    done = _run("no-such-scenario")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "unknown scenario 'no-such-scenario'" in done.stderr


def test_bad_option_is_one_line_and_exit_2() -> None:
    done = _run("smoke", "not-an-option")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("thawproof run: unknown scenario 'not-an-option'")
    done = _run("smoke", "workers=3")
    assert done.returncode == 2
    assert (
        done.stderr.strip() == "thawproof run: unknown option 'workers'; this scenario takes none"
    )
    done = _run("thaw_storm", "workers=3.5")
    assert done.returncode == 2
    assert done.stderr.strip() == "thawproof run: workers must be a whole number, got '3.5'"
    done = _run("thaw_storm", "lease_ttl=0")
    assert done.returncode == 2
    assert done.stderr.strip() == "thawproof run: lease_ttl must be between 0.2 and 60, got 0"


def test_list_names_every_scenario() -> None:
    done = _run("list")
    assert done.returncode == 0
    assert "smoke" in done.stdout


def test_fleet_scenario_with_a_bug_zoo_client_exits_1_with_evidence() -> None:
    done = _run("frozen_reaper", "client=session_lock")
    assert done.returncode == 1, done.stdout + done.stderr
    latest = run_dir_of(done)
    summary = json.loads((latest / "summary.json").read_text())
    p2 = next(v for v in summary["verdicts"] if v["property"] == "P2")
    assert not p2["ok"]
    assert p2["evidence"]
    assert (latest / "timeline.png").exists()
    assert (latest / "history.jsonl").exists()


def test_unknown_client_is_one_line_and_exit_2() -> None:
    done = _run("frozen_reaper", "client=nope")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "unknown client 'nope'" in done.stderr
    assert "[frozen_reaper" not in done.stderr  # refused before anything started


def test_fleet_scenario_passes_and_its_kills_match_the_server_log() -> None:
    done = _run("thaw_storm")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((run_dir_of(done) / "summary.json").read_text())
    assert [v["property"] for v in summary["verdicts"]] == [f"P{i}" for i in range(1, 8)]
    assert summary["counts"]["reaper_kills"] >= 1
    log_notes = [n for n in summary["notes"] if "server log" in n]
    assert log_notes, log_notes
    assert "all accounted for by the ledger" in log_notes[0], log_notes


@pytest.mark.parametrize(
    ("scenario", "situation"),
    [("clock_skew", "clock_skew"), ("freeze_mid_transaction", "write_on_locked_row")],
)
def test_a_named_scenario_passes_and_reaches_what_it_is_named_for(
    scenario: str, situation: str
) -> None:
    done = _run(scenario)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((run_dir_of(done) / "summary.json").read_text())
    assert summary["situations"][situation] >= 1, summary["situations"]
    assert "situations reached" in done.stdout
