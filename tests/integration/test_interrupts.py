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

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.wait import poll
from tests.integration.runner_support import Runner

REPO = Path(__file__).resolve().parents[2]
WAIT = 120.0

pytestmark = pytest.mark.slow


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
    live = r.live_processes()
    r.signal(signal.SIGTERM)
    # teardown has begun once the first of its processes is released; then two more
    poll(
        lambda: True if r.live_processes() < live or r.proc.poll() is not None else None,
        timeout=30,
        what="the run's teardown to release a process",
    )
    r.signal(signal.SIGTERM)
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
