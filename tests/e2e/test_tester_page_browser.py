"""The mock's tester page in a real headless Chromium, after a real sync: it shows what flagsync made, and renders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.browser import CHROMIUM_ARGS, chromium_path
from tests.e2e.conftest import E2E, record

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run headless Chromium once with a throwaway profile and nothing reaching the internet."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    command = [chromium_path(), *CHROMIUM_ARGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, timeout=90, check=False)


def test_tester_page_shows_the_sync_in_a_real_browser(e2e: E2E, tmp_path: Path) -> None:
    """After a sync, Chromium's rendered tester page lists the involvements and people, and a screenshot of it is made."""
    chromium_path()
    people = ["PCANPAGE1", "PCANPAGE2", "PCANPAGE3"]
    e2e.seed_people(*people)
    e2e.add_records(*(record(p) for p in people))
    e2e.flagsync("sync")
    flags = e2e.ours()
    assert {f["personId"] for f in flags} == set(people)
    page = f"{e2e.mock.url}/_mock/"

    dumped = chromium(tmp_path, "--dump-dom", page)
    assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")[-2000:]
    dom = dumped.stdout.decode()
    for flag in flags:
        assert flag["id"] in dom
        assert flag["personId"] in dom
    assert "PIAS_WORKING_WITH_FAMILY" in dom

    screenshot = tmp_path / "tester-page.png"
    shot = chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,1000", "--hide-scrollbars", page)
    assert shot.returncode == 0, shot.stderr.decode(errors="replace")[-2000:]
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000  # a blank 1280x1000 page compresses to a few kilobytes
