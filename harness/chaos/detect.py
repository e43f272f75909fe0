"""Searching for a bug: a Hypothesis test over one detector's schedules, against one client.

The detection tests, ``thawproof replay`` and the benchmark all run the same
search: Hypothesis draws schedules from ``DETECTORS[detector]``, each is run and
judged on live components, a property failure shrinks to the smallest schedule.
Each (detector, client) pair has its own key in the example database
(``bug-zoo:<detector>:<client>``), so a saved failure replays for its own bug.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given

from harness.chaos.env import ChaosEnv, judge
from harness.chaos.profiles import apply_ci_seed
from harness.chaos.steps import Step
from harness.chaos.strategies import DETECTORS
from harness.chaos.zoo import Bug


def search(env: ChaosEnv, bug: Bug | None, detector: str) -> Callable[[], None]:
    """A Hypothesis test over ``detector``'s schedules, judging ``bug``'s client (None:
    the correct one); it raises ``PropertyViolation`` when a property fails."""

    @given(DETECTORS[detector]())
    def suite(schedule: list[Step]) -> None:
        judge(env, schedule, bug)

    # What Hypothesis's pytest plugin does for a parametrized test: a distinct
    # database key per case (the function's source is the same for every bug).
    key = f"bug-zoo:{detector}:{bug.name if bug else 'correct'}".encode()
    suite.hypothesis.inner_test._hypothesis_internal_add_digest = key  # type: ignore[attr-defined]
    return apply_ci_seed(suite)
