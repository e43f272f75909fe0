"""The ``ci`` profile reaches every situation the spec describes, at least once.

Every judged chaos run appends its situation counts to the file named by
``THAWPROOF_SITUATIONS`` (:func:`harness.chaos.env.record_situations`): the state
machine's examples, the bug zoo's searches, the scenario runs, in whatever process
ran them. ``make test`` names a fresh file and runs this test last; it fails
naming each situation no run reached. Run alone it has nothing to read, and skips
saying so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.chaos.env import SITUATIONS_LOG
from harness.check.situations import BY_NAME, unreached

pytestmark = pytest.mark.situations_gate


def _totals(path: Path) -> tuple[dict[str, int], int]:
    totals: dict[str, int] = {}
    runs = 0
    for line in path.read_text().splitlines():
        runs += 1
        for name, n in json.loads(line)["situations"].items():
            totals[name] = totals.get(name, 0) + int(n)
    return totals, runs


def test_every_situation_was_reached_by_the_chaos_runs_before() -> None:
    named = os.environ.get(SITUATIONS_LOG)
    if not named:
        pytest.skip(
            f"{SITUATIONS_LOG} is unset: this gate reads what the session's chaos runs"
            " recorded; `make test` sets it"
        )
    path = Path(named)
    assert path.exists(), f"no chaos run recorded its situations in {path}"
    totals, runs = _totals(path)
    missing = unreached(totals)
    assert not missing, f"{runs} chaos run(s) never reached: " + "; ".join(
        f"{name} ({BY_NAME[name].what})" for name in missing
    )
