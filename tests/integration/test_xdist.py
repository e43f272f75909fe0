"""Beyond one process: under pytest-xdist every worker has its own cluster and proxy server.

A small suite is run with ``-n 2 --dist each`` (every test on every worker): each
worker records the cluster and proxy server its session fixtures gave it, and
no two workers may share either.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

RECORDER = """
import json, os
from pathlib import Path

def test_record(pg, toxiproxy_server):
    out = Path(os.environ["XDIST_RECORD_DIR"]) / (os.environ["PYTEST_XDIST_WORKER"] + ".json")
    root = str(getattr(pg, "root", ""))
    out.write_text(json.dumps({"pg": [pg.port, root], "proxy": toxiproxy_server.url}))
"""


def test_two_xdist_workers_never_share_a_cluster_or_proxy(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    pytester.makeconftest(
        "pytest_plugins = ['tests.fixtures.fix_pg', 'tests.fixtures.fix_proxy']\n"
    )
    pytester.makepyfile(test_record=RECORDER)
    monkeypatch.setenv("XDIST_RECORD_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "each")
    result.assert_outcomes(passed=2)
    seen = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("gw*.json"))]
    assert len(seen) == 2
    assert seen[0]["pg"] != seen[1]["pg"]
    assert seen[0]["proxy"] != seen[1]["proxy"]
