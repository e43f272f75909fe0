"""The schedule in words: repeated steps fold into one line."""

from __future__ import annotations

from harness.chaos.steps import Age, Invoke, Reclaim, described_runs, numbered


def test_consecutive_equal_steps_fold_and_others_stay_apart() -> None:
    steps = [Invoke("write"), Reclaim(0), Reclaim(0), Reclaim(0), Age(), Reclaim(0)]
    runs = described_runs(steps)
    assert [(first, last) for first, last, _ in runs] == [(1, 1), (2, 4), (5, 5), (6, 6)]
    assert runs[1][2] == Reclaim(0).describe()
    assert numbered(*runs[1]) == f"2-4. {Reclaim(0).describe()} (x3)"
    assert numbered(*runs[0]) == f"1. {Invoke('write').describe()}"


def test_an_empty_schedule_has_no_lines() -> None:
    assert described_runs([]) == []
