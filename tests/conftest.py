"""Shared test configuration: fixture modules and Hypothesis profiles."""

from __future__ import annotations

import pytest

from harness import interrupt
from harness.chaos.profiles import apply_ci_seed, load_profile
from harness.infra.owned import clean_dead_runs

pytest_plugins = ["tests.fixtures.fix_pg", "tests.fixtures.fix_proxy", "tests.fixtures.fix_chaos"]

load_profile()


def pytest_configure(config: pytest.Config) -> None:
    """The first SIGINT or SIGTERM unwinds like Ctrl-C, so session fixtures stop their
    clusters and proxies (``atexit`` does not run when a process dies of a signal); a
    second one during that teardown does not cut it short (``harness.interrupt``)."""
    interrupt.install()


def pytest_sessionstart(session: pytest.Session) -> None:
    """What an earlier run that died left behind is cleaned before anything starts."""
    for cleaned in clean_dead_runs():
        print(f"thawproof: cleaned up after an earlier run that died: {cleaned}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Interrupted by a signal: exit 128 + the signal (130 SIGINT, 143 SIGTERM)."""
    code = interrupt.exit_code()
    if code is not None:
        session.exitstatus = code


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under the ``ci`` profile every Hypothesis test runs with the project's fixed seed;
    the situation gate (it reads what every chaos run before it recorded) runs last."""
    for item in items:
        fn = getattr(item, "obj", None)
        if fn is not None and getattr(fn, "is_hypothesis_test", False):
            apply_ci_seed(getattr(fn, "__func__", fn))
    items.sort(key=lambda item: item.get_closest_marker("situations_gate") is not None)
