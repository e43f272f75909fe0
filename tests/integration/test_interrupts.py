"""One signal stops the harness, and nothing it started survives it — not even its SIGKILL.

Each test runs the real scenario runner (``python -m scenarios``) in a session
of its own, reads the records of what it owns (``harness.infra.owned``: its
cluster, its proxy server, its workers, its forkserver, its directories)
while it runs, signals it at a chosen moment — each moment an event in its
output, never a time — and then asserts the exit status, the word
``interrupted``, and that every recorded process is gone (none left stopped),
the postmaster is gone, and every recorded directory is removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.fleet.procs import STOPPED_STATES, proc_state
from harness.infra.owned import Record, read_records, runs_dir, same_process, start_time
from harness.wait import poll

REPO = Path(__file__).resolve().parents[2]
WAIT = 120.0

pytestmark = pytest.mark.slow


@dataclass
class Runner:
    """``python -m scenarios ARGS`` in its own session, its output read as it comes."""

    args: tuple[str, ...]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scenarios", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            start_new_session=True,
        )
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.records = runs_dir() / f"{self.proc.pid}-{start_time(self.proc.pid)}.jsonl"
        self.seen: dict[str, Record] = {}
        self.postmasters: set[int] = set()
        self.cursor = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = WAIT) -> str:
        """The next output line (after the last one matched) matching ``pattern``;
        noting what the run owns meanwhile."""
        regex = re.compile(pattern)

        def found() -> str | None:
            with self._cond:
                for i in range(self.cursor, len(self.lines)):
                    if regex.search(self.lines[i]):
                        self.cursor = i + 1
                        return self.lines[i]
            self.note_owned()
            return None

        hit = poll(found, timeout=timeout, what=f"a line matching {pattern!r}")
        self.note_owned()
        return hit

    def note_owned(self) -> None:
        _, records = read_records(self.records)
        for r in records:
            self.seen[r.key] = r
            if r.kind == "cluster" and r.path:
                pid_file = Path(r.path) / "postmaster.pid"
                with contextlib.suppress(OSError, ValueError):
                    self.postmasters.add(int(pid_file.read_text().split("\n", 1)[0]))

    def signal(self, signum: int, *, group: bool = False) -> None:
        self.note_owned()
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)

    def finish(self, timeout: float = WAIT) -> tuple[int, str]:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        with self._cond:
            return code, "".join(self.lines)

    def leftovers(self) -> list[str]:
        """What of the run is still there: live processes, directories, its records."""
        out = [
            f"process {r.pid} ({r.label})"
            for r in self.seen.values()
            if r.pid is not None and same_process(r.pid, r.started)
        ]
        out += [f"postmaster {p}" for p in self.postmasters if start_time(p) is not None]
        out += [
            f"directory {r.path}"
            for r in self.seen.values()
            if r.kind == "dir" and r.path and os.path.exists(r.path)
        ]
        if self.records.exists():
            out.append(f"records {self.records}")
        return out

    def assert_nothing_left(self) -> None:
        """Every process it owned is gone (none left stopped), every directory removed."""
        assert any(r.kind == "dir" for r in self.seen.values()), "nothing was recorded"
        stopped = [
            r.pid for r in self.seen.values() if r.pid and proc_state(r.pid) in STOPPED_STATES
        ]
        poll(
            lambda: None if self.leftovers() else True,
            timeout=10,
            what="everything the run owned to be gone",
            describe=self.leftovers,
        )
        assert not stopped or all(start_time(p) is None for p in stopped)


@pytest.fixture
def runners() -> Iterator[list[Runner]]:
    made: list[Runner] = []
    yield made
    for r in made:  # a failed test must not leave a runner behind either
        if r.proc.poll() is None:
            os.killpg(r.proc.pid, signal.SIGKILL)
            r.finish()


def _start(runners: list[Runner], *args: str) -> Runner:
    r = Runner(args)
    runners.append(r)
    return r


MOMENTS = {
    "start-up": r"starting PostgreSQL and the proxy server",
    "mid-scenario": r"step 2/",
    "settling": r"settling for",
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_one_signal_stops_all(runners: list[Runner], moment: str, signum: int) -> None:
    r = _start(runners, "all")
    r.wait_for_line(r"== scenario 2/")  # past smoke: a fleet scenario is running
    r.wait_for_line(MOMENTS[moment])
    r.signal(signum)
    code, out = r.finish(timeout=30)
    assert code == 128 + signum, out
    assert "interrupted" in out
    assert "== scenario 3/" not in out, "a scenario started after the signal"
    r.assert_nothing_left()


def test_a_signal_during_teardown_still_leaves_nothing(runners: list[Runner]) -> None:
    r = _start(runners, "thaw_storm")
    r.wait_for_line(r"settling for")
    r.signal(signal.SIGTERM)
    r.signal(signal.SIGTERM)  # a second one while the first is being torn down
    r.signal(signal.SIGINT)
    code, out = r.finish(timeout=30)
    assert code == 128 + signal.SIGTERM, out
    assert "interrupted" in out
    r.assert_nothing_left()


def test_ctrl_c_to_the_process_group_is_an_interruption(runners: list[Runner]) -> None:
    """The terminal's Ctrl-C reaches every process of the group; the servers are in
    sessions of their own, so the run is torn down, not left UNJUDGED by a dead proxy."""
    r = _start(runners, "frozen_reaper")
    r.wait_for_line(r"step 3/")
    r.signal(signal.SIGINT, group=True)
    code, out = r.finish(timeout=30)
    assert code == 130, out
    assert "interrupted by SIGINT" in out
    assert "unreachable" not in out
    r.assert_nothing_left()


def test_a_single_scenario_stops_on_sigint(runners: list[Runner]) -> None:
    r = _start(runners, "lost_ack")
    r.wait_for_line(r"step 1/")
    r.signal(signal.SIGINT)
    code, out = r.finish(timeout=30)
    assert code == 130, out
    assert "interrupted" in out
    r.assert_nothing_left()


def test_sigkill_of_the_runner_leaves_nothing_within_10_s(runners: list[Runner]) -> None:
    r = _start(runners, "thaw_storm")
    r.wait_for_line(r"step 4/")  # workers frozen and reclaimed, zombies held open
    assert any(rec.kind == "process" and "worker" in rec.label for rec in r.seen.values())
    r.signal(signal.SIGKILL)
    code, _ = r.finish(timeout=10)
    assert code == -signal.SIGKILL
    r.assert_nothing_left()  # polls up to 10 s: the watchdog's work
