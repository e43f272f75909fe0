"""The project's Hypothesis profiles and example databases."""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    GitHubArtifactDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)

from harness.chaos.profiles import EXAMPLES_DIR, example_database, register_profiles
from harness.errors import UsageError


def test_local_database_is_the_repository_directory() -> None:
    db = example_database({})
    assert isinstance(db, DirectoryBasedExampleDatabase)
    assert str(db.path) == str(EXAMPLES_DIR)


def test_nightly_artifact_is_read_only_beside_the_local_one() -> None:
    db = example_database({"THAWPROOF_GITHUB_REPO": "acme/thawproof"})
    assert isinstance(db, MultiplexedDatabase)
    local, nightly = db._wrapped
    assert isinstance(local, DirectoryBasedExampleDatabase)
    assert isinstance(nightly, ReadOnlyDatabase)
    assert isinstance(nightly._wrapped, GitHubArtifactDatabase)
    assert (nightly._wrapped.owner, nightly._wrapped.repo) == ("acme", "thawproof")


def test_bad_repository_name_is_refused() -> None:
    with pytest.raises(UsageError, match="owner/repo"):
        example_database({"THAWPROOF_GITHUB_REPO": "thawproof"})


def test_profiles_keep_examples_and_skip_explain() -> None:
    register_profiles()
    for name in ("dev", "ci", "nightly", "replay"):
        p = settings.get_profile(name)
        assert p.database is not None, name
        assert Phase.explain not in p.phases, name
        assert p.deadline is None
        assert p.print_blob
    assert settings.get_profile("replay").phases == (Phase.explicit, Phase.reuse)
    assert settings.get_profile("nightly").max_examples > settings.get_profile("ci").max_examples
