"""The bug zoo: the property suite must catch every broken client, and pass the correct one.

For each of the nine entries of ``harness.chaos.zoo``: Hypothesis searches that
bug's schedules (``harness.chaos.strategies.DETECTORS``) against the broken
client on real PostgreSQL, a real proxy and real worker processes, shrinks the
failure, and the test asserts that the property the bug breaks is among the
failures. The shrunk schedule, and a few more of the same schedules, must then
pass on the correct client: a harness that flags everything would be as
useless as one that flags nothing.

Each bug's search is its own Hypothesis test with its own example-database key
(``bug-zoo:<name>``), so ``make replay`` replays each bug's saved failure.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from harness.chaos.detect import search
from harness.chaos.env import ChaosEnv
from harness.chaos.judge import PropertyViolation
from harness.chaos.strategies import DETECTORS
from harness.chaos.zoo import ZOO, Bug

pytestmark = pytest.mark.slow

BUGS = pytest.mark.parametrize("bug", ZOO, ids=lambda b: f"{b.number}-{b.name}")


def test_every_bug_has_a_detector() -> None:
    assert {b.name for b in ZOO} == set(DETECTORS)


@BUGS
def test_property_suite_catches(bug: Bug, chaos: ChaosEnv) -> None:
    with pytest.raises(PropertyViolation) as caught:
        search(chaos, bug, bug.name)()
    judged = caught.value.judged
    assert bug.expected in judged.failed, (
        f"{bug.name} should break {bug.expected}; it broke {judged.failed}\n{judged.narrative()}"
    )
    again = chaos.run(judged.schedule, None)
    assert again.ok, (
        "the correct client fails the shrunk schedule too, so the suite would flag "
        f"anything:\n{again.narrative()}\n{again.explain_failures()}"
    )


@BUGS
def test_correct_client_passes_the_same_schedules(bug: Bug, chaos: ChaosEnv) -> None:
    settings(max_examples=2)(search(chaos, None, bug.name))()
