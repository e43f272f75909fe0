"""A storm at scale on this machine: 100 sandboxes against a server of 40 connections.

Real processes, a real PostgreSQL with ``max_connections=40`` (3 reserved for
superusers), the fault proxy: 60 cold starts in flight at once (more than the server
admits, so some are refused with 53300 and retry), 30 reclaimed with their links
blackholed (true zombies), the leases left to expire, a second wave of 60. The
correct client must hold every property, the server's refusals must be counted, its
zombies reaped, and nothing of the run left behind. Marked ``scale``: it loads both
cores, so ``make test N=2`` runs it after the parallel part, alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.chaos.test_scenarios_cli import run_dir_in
from tests.integration.runner_support import Runner

pytestmark = [pytest.mark.slow, pytest.mark.scale]


def test_a_storm_of_100_sandboxes_against_40_connections_holds_every_property() -> None:
    runner = Runner(("thaw_storm", "workers=100", "max_connections=40"))
    try:
        runner.wait_for_line(r"step 2")  # notes what the run owns while it has it
        code, out = runner.finish(timeout=600)
    finally:
        if runner.proc.poll() is None:
            runner.proc.kill()
            runner.proc.wait()
    assert code == 0, out
    runner.assert_nothing_left()
    run = run_dir_in(out)
    summary = json.loads((run / "summary.json").read_text())
    verdicts = {v["property"]: v for v in summary["verdicts"]}
    assert {p for p, v in verdicts.items() if v["status"] != "ok"} == set(), verdicts
    assert {"P1", "P2", "P3", "P4", "P5", "P6", "P7"} <= set(verdicts)
    config = json.loads((run / "config.json").read_text())["config"]
    # 40 - 3 reserved - two kept for the harness (the sampler, the run's turn)
    assert config["connection_limit"] == 35
    assert re.search(r"the server refused \d+ connection attempt\(s\) with 53300", out), out
    p2 = verdicts["P2"]["measured"]
    assert p2["zombies"] >= 10, p2  # the blackholed reclaims left real zombies...
    kills = sum(1 for _ in _kills(run / "history.jsonl"))
    assert kills >= 10, kills  # ...and the reapers ended them


def _kills(history: Path) -> list[dict[str, object]]:
    events = (json.loads(line) for line in history.read_text().splitlines())
    return [e for e in events if e.get("type") == "reap" and e.get("result") == "killed"]
