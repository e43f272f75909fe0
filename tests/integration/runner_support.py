"""A scenario runner under test: ``python -m scenarios ...`` in its own session.

It reads the runner's output as it comes (so a test can act on an event in it,
never on a time) and the records of what the runner owns
(``harness.infra.owned``), so a test can check that nothing of it is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from harness.fleet.procs import STOPPED_STATES, proc_state
from harness.infra.owned import Record, read_records, runs_dir, same_process, start_time
from harness.wait import poll

REPO = Path(__file__).resolve().parents[2]
WAIT = 120.0


@dataclass
class Runner:
    """``python -m scenarios ARGS`` in its own session, its output read as it comes."""

    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scenarios", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env={**os.environ, **self.env},
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

    def live_processes(self) -> int:
        """How many processes the run's records still hold (released ones drop out)."""
        _, records = read_records(self.records)
        return sum(1 for r in records if r.kind == "process")

    def signal(self, signum: int, *, group: bool = False) -> None:
        self.note_owned()
        if self.proc.poll() is not None:
            return  # it already ended: there is nothing left to signal
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
