"""The HTML page in a real headless browser (Debian's chromium, over the DevTools
Protocol): it loads without console errors, fetches nothing but itself, and draws its
charts. A full-page screenshot is kept in ``$BATCHER_TEST_ARTIFACTS`` (default: the
system's temporary directory).

Without chromium the test is skipped on a developer's machine; under CI (``CI=true``),
where .ci/run installs it, it fails instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser import artifact_dir, find_chromium, load_page_async
from test_html import HOSTILE, busy_report

from batcher.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def chromium() -> str:
    found = find_chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI must run the browser test")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


async def test_the_page_loads_offline_and_draws_its_charts(
    chromium: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = busy_report(tmp_path / "r.jsonl")
    page = tmp_path / "report.html"
    assert main(["report", str(report), "--html", str(page)]) == 0
    capsys.readouterr()

    loaded = await load_page_async(page.resolve().as_uri(), screenshot=True)
    shot = artifact_dir() / "batcher-report-page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.write_bytes(loaded.png)

    assert loaded.errors == []
    assert loaded.requests == [page.resolve().as_uri()]
    probe = loaded.probe
    assert probe["charts"] == "4" and probe["uplots"] == 4
    assert len(probe["canvases"]) == 4
    for canvas in probe["canvases"]:
        assert canvas["width"] > 300 and canvas["height"] > 100
        assert canvas["inked"] > 2000, canvas  # axes, grid and series drawn
    assert probe["tables"] >= 5
    assert HOSTILE in probe["text"]  # shown as text, never run
    assert "X-Amz-Signature" not in probe["text"]
    assert loaded.png.startswith(b"\x89PNG") and len(loaded.png) > 10_000
