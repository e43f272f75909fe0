"""Hypothesis profiles of the project: ``dev``, ``ci``, ``nightly`` and ``replay``.

``HYPOTHESIS_PROFILE`` selects one; otherwise ``ci`` when ``CI`` is set and
``dev`` elsewhere. Every profile keeps examples in the repository's example
database (``.hypothesis-examples/``) so a failure can be replayed with
``make replay``. Hypothesis's built-in ``ci`` profile has no database, which is
why the project registers its own.

``ci`` is deterministic through a fixed seed (``CI_SEED``, applied to every
Hypothesis test by :func:`apply_ci_seed`), not ``derandomize``, which Hypothesis
refuses together with a database ("derandomize=True implies database=None").
Measured on Hypothesis 6.155: a seeded test neither replays nor saves examples,
so in Hypothesis determinism and the example database exclude each other. CI
runs on a throwaway clone, so ``ci`` takes determinism (the same schedules every
run; a failure prints its ``@reproduce_failure`` blob); ``dev`` and ``nightly``
are random and save every failure to ``.hypothesis-examples/``, which
``replay`` (``make replay``) re-runs and the nightly job uploads.

No profile runs Hypothesis's ``explain`` phase: it re-runs dozens of variations
of the shrunk example only to annotate which parts did not matter, and here an
example is seconds of real processes (measured: 60 extra runs, over five
minutes, for one bug-zoo entry). Nor do they hunt for a second, distinct
failure once one is found (``report_multiple_bugs=False``), for the same
reason. Shrinking itself is kept everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    ExampleDatabase,
    GitHubArtifactDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)

from harness.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = REPO / ".hypothesis-examples"
CI_SEED = 20261121
T = TypeVar("T")

_NO_EXPLAIN = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


NIGHTLY_ARTIFACT = "hypothesis-example-db"


def example_database(env: Mapping[str, str] | None = None) -> ExampleDatabase:
    """The repository's example directory; with ``THAWPROOF_GITHUB_REPO=owner/repo``
    also, read-only, the example database the nightly CI job uploads as the artifact
    ``hypothesis-example-db`` (Hypothesis's ``GitHubArtifactDatabase``; it reads
    ``GITHUB_TOKEN``), so a nightly failure replays here with ``make replay``."""
    env = os.environ if env is None else env
    local = DirectoryBasedExampleDatabase(str(EXAMPLES_DIR))
    repo = env.get("THAWPROOF_GITHUB_REPO", "")
    if not repo:
        return local
    owner, sep, name = repo.partition("/")
    if not (owner and sep and name) or "/" in name:
        raise UsageError(f"THAWPROOF_GITHUB_REPO must look like owner/repo, got {repo!r}")
    nightly = GitHubArtifactDatabase(owner, name, artifact_name=NIGHTLY_ARTIFACT)
    return MultiplexedDatabase(local, ReadOnlyDatabase(nightly))


NIGHTLY_EXAMPLES = 200


def nightly_examples(env: Mapping[str, str] | None = None) -> int:
    """Examples per test in the nightly profile: 200, split over the CI matrix's shards
    (``THAWPROOF_SHARDS`` jobs; each draws its own random examples and keeps its own
    example database, merged afterwards)."""
    env = os.environ if env is None else env
    raw = env.get("THAWPROOF_SHARDS", "1")
    try:
        shards = int(raw)
    except ValueError:
        raise UsageError(f"THAWPROOF_SHARDS must be a whole number, got {raw!r}") from None
    if shards < 1:
        raise UsageError(f"THAWPROOF_SHARDS must be at least 1, got {shards}")
    return max(1, -(-NIGHTLY_EXAMPLES // shards))


def register_profiles() -> None:
    base = settings(
        phases=_NO_EXPLAIN,
        report_multiple_bugs=False,
        deadline=None,
        print_blob=True,
        database=example_database(),
        suppress_health_check=_SLOW_OK,
    )
    settings.register_profile("dev", base, max_examples=20)
    settings.register_profile("ci", base, max_examples=10)
    settings.register_profile("nightly", base, max_examples=nightly_examples())
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
