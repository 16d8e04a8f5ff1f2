"""The HTML report opened in real headless Chromium: no console errors, every chart drawn, printable.

DUALRUN_REGEN_GOLDEN=1 also refreshes the README's screenshot, docs/report.png.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from comparators.report import render_run
from tests.unit.report.builders import rich_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS = Path(__file__).parents[3] / "docs"
REGEN = os.environ.get("DUALRUN_REGEN_GOLDEN") == "1"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup installs it)")


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless run with no network services, a throwaway profile and console logging on stderr."""
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def console_messages(stderr: str) -> list[str]:
    return re.findall(r"CONSOLE[^\]]*\] (.*)", stderr)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_run(rich_report(), "html"))
    return path


def test_console_capture_does_see_errors(tmp_path: Path) -> None:
    """The control for the next test: a page that errors is caught by the same capture."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><p>x</p><script>console.error('boom'); notDefined();</script>")
    messages = console_messages(chromium(tmp_path, bad, "--dump-dom").stderr)
    assert any("boom" in m for m in messages) and any("notDefined" in m for m in messages)


def test_report_loads_without_console_errors_and_draws_every_chart(tmp_path: Path, page: Path) -> None:
    run = chromium(tmp_path, page, "--dump-dom")
    assert console_messages(run.stderr) == []
    dom = run.stdout
    assert "DIFFERENCES: 7 unexplained" in dom
    assert re.findall(r'<svg data-chart="([a-z]+)"', dom) == ["causes", "columns", "parity", "lag"]
    for chart in re.findall(r'<svg data-chart="[a-z]+".*?</svg>', dom, flags=re.S):
        assert chart.count("<path") > 20, "a chart without drawn marks"
    assert dom.count("<details") >= 5


def test_screenshot_is_not_blank_and_shows_the_red_verdict(tmp_path: Path, page: Path) -> None:
    shot = tmp_path / "report.png"
    chromium(tmp_path, page, "--window-size=1280,1700", f"--screenshot={shot}")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1700)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200, "the page rendered almost nothing"
    banner = image.getpixel((image.width // 2, 40))
    assert banner == (0xC6, 0x28, 0x28), f"verdict banner is {banner}, expected the failure red"
    if REGEN:
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / "report.png")


def test_report_prints_to_pdf(tmp_path: Path, page: Path) -> None:
    pdf = tmp_path / "report.pdf"
    chromium(tmp_path, page, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", data)) >= 2
