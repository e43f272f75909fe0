"""What a run owns is recorded, and cleaned after it dies — by its watchdog, or by the next run.

Each test starts a real owner process that records a directory and a child
process (stopped, the hardest kind to leave behind), kills the owner with
SIGKILL, and checks who cleans up: its watchdog at once, or — when the
watchdog died too — ``clean_dead_runs`` (what ``thawproof clean`` and the
start of every run call). A live owner's records are never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from harness.infra.owned import (
    clean_dead_runs,
    read_records,
    same_process,
    start_time,
)
from harness.wait import poll

REPO = Path(__file__).resolve().parents[2]

OWNER = textwrap.dedent(
    """
    import os, signal, subprocess, sys, tempfile, time
    from harness.infra.owned import Owned
    owned = Owned(watchdog={watchdog})
    d = tempfile.mkdtemp(prefix="owned-test-")
    owned.directory(d)
    child = subprocess.Popen(["sleep", "600"], start_new_session=True)
    os.kill(child.pid, signal.SIGSTOP)
    owned.process(child.pid, "a stopped child")
    print(owned.path, d, child.pid, flush=True)
    signal.pause()
    """
)


def _owner(watchdog: bool) -> tuple[subprocess.Popen[str], Path, Path, int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER.format(watchdog=watchdog)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    records, d, child = proc.stdout.readline().split()
    proc.stdout.close()
    return proc, Path(records), Path(d), int(child)


def _gone(path: Path, pid: int, started: int | None) -> bool | None:
    return True if not path.exists() and not same_process(pid, started) else None


def test_the_watchdog_cleans_up_after_a_sigkilled_owner() -> None:
    proc, records, d, child = _owner(watchdog=True)
    started = start_time(child)
    head, live = read_records(records)
    assert head["watchdog"]
    assert {r.kind for r in live} == {"dir", "process"}
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    poll(lambda: _gone(d, child, started), timeout=10, what="the watchdog to clean up")
    assert not records.exists()


def test_a_dead_run_without_its_watchdog_is_cleaned_by_the_next_run() -> None:
    proc, records, d, child = _owner(watchdog=False)
    started = start_time(child)
    clean_dead_runs()  # the owner is alive: none of its records may be touched
    assert records.exists(), "a live owner's things were touched"
    assert d.exists(), "a live owner's things were touched"
    assert same_process(child, started), "a live owner's things were touched"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cleaned = clean_dead_runs()
    assert any(str(child) in line for line in cleaned), cleaned
    assert any(str(d) in line for line in cleaned), cleaned
    poll(lambda: _gone(d, child, started), timeout=10, what="the dead run's leftovers to go")
    assert not records.exists()


CLOSER = textwrap.dedent(
    """
    import sys, tempfile
    from harness.infra.owned import Owned
    owned = Owned(watchdog=True)
    d = tempfile.mkdtemp(prefix="owned-test-")
    owned.directory(d)
    print(owned.watchdog.pid, owned.path, d, flush=True)
    owned.close()
    print("closed", flush=True)
    sys.stdin.read()
    """
)


def test_a_normal_close_releases_everything_and_ends_the_watchdog() -> None:
    # in a process of its own: a second Owned here would share this process's record
    proc = subprocess.Popen(
        [sys.executable, "-c", CLOSER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    try:
        watchdog, records, d = proc.stdout.readline().split()
        started = start_time(int(watchdog))
        assert proc.stdout.readline().strip() == "closed"
        # the owner is still alive: only close() can have ended its watchdog
        assert not same_process(int(watchdog), started), "the watchdog outlived a normal close"
        assert not Path(records).exists()
        assert not Path(d).exists()
    finally:
        proc.stdin.close()
        proc.stdout.close()
        proc.wait(timeout=10)
