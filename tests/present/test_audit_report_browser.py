"""The HTML audit report in a real headless Chromium: it renders to a real picture with its charts, and prints to PDF."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from flagsync.cli import main
from tests.present.browser import CHROMIUM, PNG_SIGNATURE, chromium, read_png, screenshot
from tests.present.seed import Seeded

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (scripts/test installs Debian's chromium when it can)"),
]

WIDTH, HEIGHT = 1100, 2400
BLUE = (0x1F, 0x5F, 0xA8)  # the first series in every chart
VERMILION = (0xC1, 0x44, 0x0E)  # the second series


@pytest.fixture
def report_file(seeded: Seeded, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Three weeks of seeded history as an HTML report file, made by the command line."""
    target = tmp_path / "audit-report.html"
    assert main(["audit", "--config", str(config), "--format", "html", "--output", str(target)]) == 0, capsys.readouterr().err
    return target


def _near(colours: Counter[bytes], colour: tuple[int, int, int], tolerance: int = 12) -> int:
    """How many sampled pixels are within `tolerance` of `colour` on every channel."""
    return sum(n for c, n in colours.items() if all(abs(c[i] - colour[i]) <= tolerance for i in range(3)))


def test_the_report_renders_to_a_real_picture_with_its_charts(report_file: Path, tmp_path: Path) -> None:
    """Chromium's screenshot of the report is a full-size PNG of many colours, with the charts' series colours drawn."""
    png = tmp_path / "audit-report.png"
    screenshot(report_file, png, tmp_path, width=WIDTH, height=HEIGHT)
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 40_000  # a blank page of this size compresses to a few kilobytes

    image = read_png(data)
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    step = image.channels * 2  # every other pixel is plenty
    colours = Counter(image.pixels[i : i + 3] for i in range(0, len(image.pixels), step))
    assert len(colours) > 100  # text anti-aliasing, tiles, charts: far from a uniform page
    white = colours[b"\xff\xff\xff"] / sum(colours.values())
    assert 0.3 < white < 0.97  # mostly paper, but plenty drawn on it
    assert _near(colours, BLUE) > 1_000  # lines, markers and bars of the first series
    assert _near(colours, VERMILION) > 500  # bars and line of the second series


def test_the_report_prints_to_pdf(report_file: Path, tmp_path: Path) -> None:
    """Chromium prints the report to a multi-page PDF (A4, from the print CSS)."""
    pdf = tmp_path / "audit-report.pdf"
    done = chromium(tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", report_file.as_uri())
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(data) > 20_000
    pages = re.findall(rb"/Type\s*/Page(?!s)", data)
    assert len(pages) >= 2
    # A4 is 595 x 842 points (Chromium writes 594.96 x 841.92).
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    assert len(boxes) == len(pages)
    assert all(abs(float(w) - 595) < 1 and abs(float(h) - 842) < 1 for w, h in boxes)
