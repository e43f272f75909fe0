"""The ``thawproof`` command as a user meets it: every command, and its errors.

Bad input is one line naming the real cause, exit 2, and nothing left running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.fleet.procs import descendants

REPO = Path(__file__).resolve().parents[2]


def thawproof(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in done.stderr


def test_help_everywhere() -> None:
    for args in (
        [],
        ["list"],
        ["run"],
        ["replay"],
        ["report"],
        ["analyze"],
        ["clean"],
        ["compare"],
        ["capacity"],
    ):
        done = thawproof(*args, "--help")
        assert done.returncode == 0, done.stderr
        assert "usage: thawproof" in done.stdout


def test_list_names_scenarios_options_and_clients() -> None:
    done = thawproof("list")
    assert done.returncode == 0
    for name in ("thaw_storm", "cold_start_wave", "checkpoint_restore", "smoke"):
        assert name in done.stdout
    assert "workers" in done.stdout
    assert "reaper_disabled" in done.stdout
    listed = json.loads(thawproof("list", "--json").stdout)
    assert len(listed["scenarios"]) >= 13
    assert "client" in listed["scenarios"]["thaw_storm"]["options"]


def test_list_into_a_closed_pipe_is_no_traceback() -> None:
    done = subprocess.run(
        f"'{sys.executable}' -m harness list | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["run", "nope"], ["unknown scenario 'nope'"]),
        (["run", "thaw_storm", "workers=x"], ["workers must be a whole number"]),
        (["run", "thaw_storm", "client=nope"], ["unknown client 'nope'"]),
        (["run", "thaw_storm", "client=no.such.module:Cls"], ["cannot be loaded"]),
        (["run", "thaw_storm", "client=harness.errors:UsageError"], ["not a subclass"]),
        (["run", "all", "bogus=1"], ["unknown option 'bogus'"]),
        (["replay", "nope"], ["unknown bug 'nope'"]),
        (["run", "thaw_storm", "preset=nope"], ["unknown preset 'nope'"]),
        (["run", "thaw_storm", "preset=self-hosted", "reserved=3"], ["exclude each other"]),
        (["run", "thaw_storm", "max_connections=3"], ["max_connections must be between 5"]),
        (["capacity", "concurrency=1", "pool=1", "preset=nope"], ["unknown preset 'nope'"]),
        (["capacity", "concurrency=x", "pool=1", "preset=self-hosted"], ["whole numbers"]),
        (["capacity", "pool=1", "preset=self-hosted"], ["missing concurrency"]),
        (["report", "/nonexistent"], ["not a run directory"]),
        (["analyze", "/nonexistent"], ["not a run directory"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needles: list[str]) -> None:
    one_line(thawproof(*args), *needles)


def test_an_unreachable_external_dsn_is_named_and_nothing_runs() -> None:
    before = set(descendants())
    done = thawproof(
        "run", "thaw_storm", env={"THAWPROOF_DSN": "host=127.0.0.1 port=1 dbname=x user=x"}
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "THAWPROOF_DSN cannot be reached" in done.stdout + done.stderr
    assert set(descendants()) <= before


def test_run_all_ends_with_the_table(tmp_path: Path) -> None:
    """A short run of two scenarios: the table has a row each, with figures and paths."""
    done = thawproof("run", "smoke", "reclaim_zombies", "workers=3")
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout.split("== chaos summary", 1)[1]
    rows = [ln for ln in table.splitlines() if ln.startswith(("smoke", "reclaim_zombies"))]
    assert len(rows) == 2
    fleet = next(r for r in rows if r.startswith("reclaim_zombies"))
    assert fleet.split()[1:8] == ["ok"] * 7  # P1 to P7
    assert "/3" in fleet
    assert "reports/reclaim_zombies/" in fleet


def test_a_users_client_class_runs_and_a_users_bug_is_caught() -> None:
    ok = thawproof("run", "thaw_storm", "client=tests.fixtures.user_client:CountingClient")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = thawproof("run", "thaw_storm", "client=tests.fixtures.user_client:NeverFencesClient")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "P1" in bad.stdout
    assert "FAILS" in bad.stdout


def test_clean_keeps_the_newest_runs(tmp_path: Path) -> None:
    for stamp in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z"):
        (tmp_path / "demo" / stamp).mkdir(parents=True)
    done = thawproof("clean", "--keep", "1", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (tmp_path / "demo").iterdir()] == ["20260103T000000Z"]
    assert "removed 2 old report(s)" in done.stdout


def test_capacity_lists_presets_and_answers_with_its_exit_status() -> None:
    listed = thawproof("capacity")
    assert listed.returncode == 0
    for name in ("self-hosted", "supabase-16xl", "neon-0.25cu", "rds-db.t3.micro"):
        assert name in listed.stdout
    fits = thawproof("capacity", "concurrency=90", "pool=1", "preset=self-hosted")
    assert fits.returncode == 0, fits.stderr
    assert "fits" in fits.stdout
    over = thawproof("capacity", "concurrency=50", "pool=2", "preset=supabase-micro")
    assert over.returncode == 1
    assert "does NOT fit" in over.stdout
