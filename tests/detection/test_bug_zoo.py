"""The bug zoo: the property suite must catch every broken client, and pass the correct one.

For each of the nine entries of ``harness.zoo``: Hypothesis searches that bug's
schedules (``harness.strategies.DETECTORS``) against the broken client on real
PostgreSQL, a real proxy and real worker processes, shrinks the failure, and
the test asserts that the property the bug breaks is among the failures. The
shrunk schedule, and a few more of the same schedules, must then pass on the
correct client: a harness that flags everything would be as useless as one
that flags nothing.

Each suite is its own module-level function so the example database keeps a
separate key per bug (``make replay`` replays them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings

from harness.profiles import apply_ci_seed
from harness.schedule import ChaosEnv, PropertyViolation, Step, judge
from harness.strategies import DETECTORS
from harness.zoo import BY_NAME, ZOO, Bug

pytestmark = pytest.mark.slow

_ENV: list[ChaosEnv] = []


@pytest.fixture(autouse=True)
def _env(chaos: ChaosEnv) -> Iterator[None]:
    _ENV.append(chaos)
    yield
    _ENV.clear()


def _judge_broken(name: str, schedule: list[Step]) -> None:
    judge(_ENV[0], schedule, BY_NAME[name])


@given(DETECTORS["no_idle_filter"]())
def suite_no_idle_filter(schedule: list[Step]) -> None:
    _judge_broken("no_idle_filter", schedule)


@given(DETECTORS["ignores_expiry"]())
def suite_ignores_expiry(schedule: list[Step]) -> None:
    _judge_broken("ignores_expiry", schedule)


@given(DETECTORS["skips_signature"]())
def suite_skips_signature(schedule: list[Step]) -> None:
    _judge_broken("skips_signature", schedule)


@given(DETECTORS["no_recheck"]())
def suite_no_recheck(schedule: list[Step]) -> None:
    _judge_broken("no_recheck", schedule)


@given(DETECTORS["no_fencing"]())
def suite_no_fencing(schedule: list[Step]) -> None:
    _judge_broken("no_fencing", schedule)


@given(DETECTORS["reruns_writes"]())
def suite_reruns_writes(schedule: list[Step]) -> None:
    _judge_broken("reruns_writes", schedule)


@given(DETECTORS["escaping_socket_error"]())
def suite_escaping_socket_error(schedule: list[Step]) -> None:
    _judge_broken("escaping_socket_error", schedule)


@given(DETECTORS["reaper_disabled"]())
def suite_reaper_disabled(schedule: list[Step]) -> None:
    _judge_broken("reaper_disabled", schedule)


@given(DETECTORS["session_lock"]())
def suite_session_lock(schedule: list[Step]) -> None:
    _judge_broken("session_lock", schedule)


SUITES: dict[str, Callable[[], None]] = {
    name: apply_ci_seed(fn)
    for name, fn in globals().items()
    if name.startswith("suite_") and callable(fn)
}
SUITES = {name.removeprefix("suite_"): fn for name, fn in SUITES.items()}


def test_every_bug_has_a_suite() -> None:
    assert set(SUITES) == {b.name for b in ZOO} == set(DETECTORS)


@pytest.mark.parametrize("bug", ZOO, ids=lambda b: f"{b.number}-{b.name}")
def test_property_suite_catches(bug: Bug, chaos: ChaosEnv) -> None:
    with pytest.raises(PropertyViolation) as caught:
        SUITES[bug.name]()
    judged = caught.value.judged
    assert bug.expected in judged.failed, (
        f"{bug.name} should break {bug.expected}; it broke {judged.failed}\n{judged.narrative()}"
    )
    again = chaos.run(judged.schedule, None)
    assert again.ok, (
        "the correct client fails the shrunk schedule too, so the suite would flag "
        f"anything:\n{again.narrative()}\n{again.explain_failures()}"
    )


@pytest.mark.parametrize("bug", ZOO, ids=lambda b: f"{b.number}-{b.name}")
def test_correct_client_passes_the_same_schedules(bug: Bug, chaos: ChaosEnv) -> None:
    @settings(max_examples=2)
    @given(DETECTORS[bug.name]())
    def correct(schedule: list[Step]) -> None:
        judge(chaos, schedule, None)

    apply_ci_seed(correct)()
