"""The layering is enforced by import-linter (contracts in pyproject.toml), and it bites.

The real tree keeps every contract; a copy of the tree with one deliberate
upward import breaks exactly the contract that forbids it. This runs the real
``lint-imports`` command, as ``make lint`` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason=f"import-linter is not installed ({LINT_IMPORTS} missing)"
)


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=300,
        check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("harness/history/upward.py", "import harness.fleet\n", "the harness's layers"),
        ("harness/check/upward.py", "from harness.chaos import env\n", "the harness's layers"),
        ("harness/lease/upward.py", "from harness.errors import HarnessError\n", "harness.lease"),
        ("harness/chaos/steps_helper.py", "", "schedule steps are pure data"),
        ("harness/faultproxy/upward.py", "import psycopg\n", "harness.faultproxy"),
    ],
)
def test_a_deliberate_violation_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    for name in ("harness", "scenarios", "bench"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    if module.endswith("steps_helper.py"):
        # the steps module itself reaches for the fleet
        steps = tmp_path / "harness/chaos/steps.py"
        steps.write_text(steps.read_text() + "\nfrom harness.fleet import Fleet  # noqa\n")
    else:
        (tmp_path / module).write_text(line)
    done = _lint(tmp_path)
    assert done.returncode != 0, done.stdout
    broken = [ln for ln in done.stdout.splitlines() if ln.endswith("BROKEN")]
    assert len(broken) == 1, done.stdout
    assert broken[0].startswith(contract), done.stdout
