"""report.html as a person sees it: rendered by a real headless Chromium.

The pages are rendered from the recorded runs in ``tests/fixtures/runs`` (one
passing, one failing) with :func:`harness.report.render`, copied into a fresh
directory with nothing else beside them, and opened from ``file://``. Chromium is
Debian's ``chromium`` (``make setup`` installs it as root), driven through
Playwright's Python package; Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.report import render

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not installed (it is in the dev extra: make setup)",
)
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} not found: install Debian's chromium package (make setup does, as root)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _fixture(result: str) -> str:
    for d in sorted(FIXTURES.iterdir()):
        summary = d / "summary.json"
        if summary.exists() and json.loads(summary.read_text())["result"] == result:
            return d.name
    raise AssertionError(f"no recorded {result} run in {FIXTURES}")


@pytest.mark.parametrize("result", ["pass", "fail"])
def test_the_report_shows_verdicts_chart_and_evidence_and_no_link_is_broken(
    browser: Any, tmp_path: Path, result: str
) -> None:
    run_dir = tmp_path / "zipped-and-opened-elsewhere"
    shutil.copytree(FIXTURES / _fixture(result), run_dir)
    page_path = render(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    requests: list[str] = []
    page = browser.new_page()
    page.on("request", lambda r: requests.append(r.url))
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")

    table = page.locator("#verdicts")
    assert table.is_visible()
    rows = table.locator("tr")
    assert rows.count() == 1 + len(summary["verdicts"])
    words = {"ok": "holds", "fail": "FAILS", "unknown": "NOT JUDGED"}
    for i, v in enumerate(summary["verdicts"], start=1):
        text = rows.nth(i).inner_text()
        assert v["property"] in text
        assert words[v["status"]] in text

    assert page.locator("#why").inner_text() == summary["why"]
    chart = page.locator("#chart")
    assert chart.is_visible()
    assert chart.evaluate("img => img.complete && img.naturalWidth") >= 1000
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 300
    assert box["height"] > 150

    _shows_evidence_schedule_identity(page, summary, result)
    _every_link_resolves(page, run_dir, requests, failed)


def _shows_evidence_schedule_identity(page: Any, summary: dict[str, Any], result: str) -> None:
    failing = [v for v in summary["verdicts"] if v["status"] == "fail"]
    if result == "fail":
        assert failing
        for v in failing:
            section = page.locator(f"#evidence-{v['property']}")
            assert section.is_visible()
            first = v["evidence"][0]["explain"]
            assert page.get_by_text(first, exact=False).first.is_visible()
    else:
        assert not failing
        assert page.locator("#evidence").count() == 0

    assert page.locator("#schedule li").count() >= 1
    assert page.locator("#identity").is_visible()


def _every_link_resolves(page: Any, run_dir: Path, requests: list[str], failed: list[str]) -> None:
    refs = page.evaluate(
        "() => [...document.querySelectorAll('[href],[src]')]"
        ".map(e => e.getAttribute('href') || e.getAttribute('src'))"
    )
    assert "timeline.png" in refs
    for ref in refs:
        assert "://" not in ref, f"not a relative link: {ref}"
        assert not ref.startswith("/"), f"not a relative link: {ref}"
        assert (run_dir / ref).is_file(), f"broken link: {ref}"
    assert not failed, f"requests that failed: {failed}"
    outside = [u for u in requests if not u.startswith(run_dir.as_uri())]
    assert not outside, f"the page loaded something from outside its directory: {outside}"
    page.close()
