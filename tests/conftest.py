"""Shared test configuration: fixture modules and Hypothesis profiles."""

from harness.profiles import load_profile

pytest_plugins = ["tests.fixtures.fix_pg", "tests.fixtures.fix_proxy"]

load_profile()
