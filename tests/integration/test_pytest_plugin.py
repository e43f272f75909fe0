"""The pytest plugin, used the way the README shows: its example is extracted and run.

``pytester`` runs the README's own example in a fresh pytest process (the
plugin loads through its ``pytest11`` entry point, as in a user's suite), on
real servers the plugin's fixtures start.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- pytest-plugin-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "the README has no pytest plugin example"
    return m.group(1)


def test_the_readme_example_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_my_client=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=600)
    result.assert_outcomes(passed=2)


def test_the_plugin_flags_a_broken_client(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_broken="""
from harness.lease import LeaseClient
from harness.lease.fence import FenceAction


class NoFence(LeaseClient):
    def fence_action(self, now, expected_duration):
        return FenceAction.SEND


def test_it(thawproof_scenario):
    result = thawproof_scenario("thaw_storm", client=f"{__name__}:NoFence")
    assert result.result == "fail"
    assert "P1" in [v.prop for v in result.verdicts if v.failed]
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=600)
    result.assert_outcomes(passed=1)
