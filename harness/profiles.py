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

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

REPO = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO / ".hypothesis-examples"

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def example_database() -> DirectoryBasedExampleDatabase:
    return DirectoryBasedExampleDatabase(str(EXAMPLES_DIR))


def register_profiles() -> None:
    db = example_database()
    common = {"deadline": None, "print_blob": True, "database": db,
              "suppress_health_check": _SLOW_OK}
    settings.register_profile("dev", max_examples=20, **common)
    settings.register_profile("ci", max_examples=10, derandomize=True, **common)
    settings.register_profile("nightly", max_examples=200, **common)
    settings.register_profile(
        "replay", max_examples=1, phases=[Phase.explicit, Phase.reuse], **common
    )


def selected_profile() -> str:
    name = os.environ.get("HYPOTHESIS_PROFILE")
    if name:
        return name
    return "ci" if os.environ.get("CI") else "dev"


def load_profile() -> str:
    register_profiles()
    name = selected_profile()
    settings.load_profile(name)
    return name
