"""Shared test configuration: fixture modules and Hypothesis profiles."""

from __future__ import annotations

import signal
from types import FrameType

import pytest

from harness.chaos.profiles import apply_ci_seed, load_profile

pytest_plugins = ["tests.fixtures.fix_pg", "tests.fixtures.fix_proxy", "tests.fixtures.fix_chaos"]

load_profile()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM unwinds like Ctrl-C, so session fixtures stop their clusters and
    proxies (``atexit`` does not run when a process is terminated by a signal)."""
    signal.signal(signal.SIGTERM, _interrupt)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under the ``ci`` profile every Hypothesis test runs with the project's fixed seed."""
    for item in items:
        fn = getattr(item, "obj", None)
        if fn is not None and getattr(fn, "is_hypothesis_test", False):
            apply_ci_seed(getattr(fn, "__func__", fn))
