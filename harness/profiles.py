"""Hypothesis profiles of the project: ``ci``, ``nightly`` and ``replay``.

``HYPOTHESIS_PROFILE`` selects one; otherwise ``ci`` when ``CI`` is set and
``dev`` elsewhere. Every profile keeps examples in the repository's example
database (``.hypothesis-examples/``) so a failure can be replayed with
``make replay``. Hypothesis's built-in ``ci`` profile has no database, which is
why the project registers its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase

REPO = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO / ".hypothesis-examples"
CI_SEED = 20261121
T = TypeVar("T")

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def example_database() -> DirectoryBasedExampleDatabase:
    return DirectoryBasedExampleDatabase(str(EXAMPLES_DIR))


def register_profiles() -> None:
    base = settings(
        deadline=None,
        print_blob=True,
        database=example_database(),
        suppress_health_check=_SLOW_OK,
    )
    settings.register_profile("dev", base, max_examples=20)
    settings.register_profile("ci", base, max_examples=10)
    settings.register_profile("nightly", base, max_examples=200)
    settings.register_profile("replay", base, max_examples=1, phases=[Phase.explicit, Phase.reuse])


def selected_profile() -> str:
    name = os.environ.get("HYPOTHESIS_PROFILE")
    if name:
        return name
    return "ci" if os.environ.get("CI") else "dev"


def apply_ci_seed(test: T) -> T:
    """Fix the seed of a Hypothesis test (or state machine class) under ``ci``."""
    if selected_profile() == "ci" and getattr(test, "_hypothesis_internal_use_seed", None) is None:
        decorated: Any = seed(CI_SEED)(test)  # type: ignore[type-var]
        return decorated  # type: ignore[no-any-return]
    return test


def load_profile() -> str:
    register_profiles()
    name = selected_profile()
    settings.load_profile(name)
    return name
