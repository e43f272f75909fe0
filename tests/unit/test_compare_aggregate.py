"""The comparison's figures, computed from runs recorded by ``make compare`` on this machine.

``tests/fixtures/compare/<driver>/<scenario>/`` hold three real runs (summary,
history, pg_stat_activity samples): plain on thaw_storm (zombies never end: P2
fails), lease on lost_ack (lost answers: info outcomes), server_timeout on
server_faults (a dead connection handed to an invocation: P4 fails). Each figure
is checked against the raw files read independently here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.compare.aggregate import combine, measure_run
from harness.compare.render import findings, write_report

RUNS = Path(__file__).parents[1] / "fixtures" / "compare"
SVC = "thawproof-svc"
LEASE = "s=thawproof;"


def _raw(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _measure(driver: str, scenario: str, prefix: str):  # type: ignore[no-untyped-def]
    return measure_run(
        RUNS / driver / scenario, driver=driver, scenario=scenario, seed=1, prefix=prefix
    )


def test_peak_backends_and_convergence_come_from_the_samples_and_p2() -> None:
    fig = _measure("plain", "thaw_storm", SVC)
    samples = _raw(RUNS / "plain" / "thaw_storm" / "activity.jsonl")
    peak = max(
        sum(1 for r in s["rows"] if (r.get("application_name") or "").startswith(SVC))
        for s in samples
    )
    assert fig.peak_backends == peak
    assert fig.limit is not None
    assert peak > fig.limit
    assert fig.convergence_s is None  # never converged
    assert fig.verdicts["P2"] == "fail"
    assert fig.verdicts["P1"] == "ok"


def test_outcomes_and_latencies_come_from_the_history() -> None:
    fig = _measure("lease", "lost_ack", LEASE)
    events = _raw(RUNS / "lease" / "lost_ack" / "history.jsonl")
    ops = [
        e
        for e in events
        if e.get("type") in ("invoke", "ok", "fail", "info") and e.get("worker") != "peer"
    ]
    assert fig.info_outcomes == sum(1 for e in ops if e["type"] == "info") > 0
    assert fig.operations == sum(1 for e in ops if e["type"] == "invoke")
    assert len(fig.latencies_s) == sum(1 for e in ops if e["type"] != "invoke")
    assert fig.duplicated_writes == 0
    assert fig.result == "pass"
    row = fig.to_json()
    assert row["latency_p50_ms"] is not None
    assert row["latency_p99_ms"] >= row["latency_p50_ms"]


def test_terminations_are_counted_by_who_ended_them() -> None:
    fig = _measure("server_timeout", "server_faults", SVC)
    events = _raw(RUNS / "server_timeout" / "server_faults" / "history.jsonl")
    ended = [e for e in events if e.get("type") == "termination"]
    assert sum(fig.terminations.values()) == len(ended) > 0
    assert fig.verdicts["P4"] == "fail"


def test_cells_fold_seeds_and_the_findings_say_why_with_the_evidence(tmp_path: Path) -> None:
    runs = [
        _measure("plain", "thaw_storm", SVC),
        _measure("lease", "lost_ack", LEASE),
        _measure("server_timeout", "server_faults", SVC),
    ]
    cells = combine(runs)
    assert [(c.driver, c.scenario) for c in cells] == [
        ("plain", "thaw_storm"),
        ("lease", "lost_ack"),
        ("server_timeout", "server_faults"),
    ]
    story = findings(cells, ["lease", "plain", "server_timeout"])
    assert story[0].startswith("**lease**: kept every property")
    assert "P2 fails" in story[1]
    assert "P2-count" in story[1]
    assert "P4 fails" in story[2]
    assert "died" in story[2]
    index = write_report(
        tmp_path,
        cells,
        ["lease", "plain", "server_timeout"],
        {"lease": LEASE, "plain": SVC, "server_timeout": SVC},
        {"started": "test", "scenarios": ["thaw_storm"], "seeds": [1], "elapsed_s": 0},
    )
    md = (tmp_path / "compare.md").read_text()
    assert "| plain | thaw_storm |" in md
    assert "never" in md
    assert index.exists()
    assert (tmp_path / "backends-plain.png").stat().st_size > 0
    data = json.loads((tmp_path / "compare.json").read_text())
    assert {r["driver"] for r in data["runs"]} == {"lease", "plain", "server_timeout"}
