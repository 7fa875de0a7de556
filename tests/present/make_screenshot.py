"""Make docs/screenshots/audit-report.png: eight weeks of seeded history, reported as HTML by `flagsync audit`, in Chromium.

.venv/bin/python -m tests.present.make_screenshot [docs/screenshots/audit-report.png]
"""

from __future__ import annotations

import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from flagsync.adapters.state import SqlStateStore
from flagsync.cli import main as flagsync
from flagsync.core.pseudonym import Pseudonymizer
from tests.present.browser import CHROMIUM, screenshot
from tests.present.seed import seed_history

FIRST_DAY = date(2026, 9, 28)  # a Monday
WEEKS = 8
KEY = "screenshot-key-not-a-secret-00"


def make(target: Path) -> None:
    """Seed a throw-away state store, render the report for its eight weeks, and screenshot the top of it."""
    if CHROMIUM is None:
        raise SystemExit("chromium is not on PATH")
    with tempfile.TemporaryDirectory(prefix="flagsync-screenshot-") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'state.db'}"
        store = SqlStateStore(url, Pseudonymizer(KEY.encode()))
        seed_history(store, FIRST_DAY, 7 * WEEKS, seed=11)
        store.close()
        config = root / "flagsync.toml"
        config.write_text(f'[state]\nurl = "{url}"\n\n[audit]\nhmac_key = "{KEY}"\n', encoding="utf-8")
        page = root / "audit-report.html"
        last = FIRST_DAY + timedelta(days=7 * WEEKS - 1)
        period = ["--since", FIRST_DAY.isoformat(), "--until", last.isoformat()]
        code = flagsync(["audit", "--config", str(config), *period, "--format", "html", "--output", str(page)])
        if code != 0:
            raise SystemExit(f"flagsync audit exited {code}")
        target.parent.mkdir(parents=True, exist_ok=True)
        screenshot(page, target, root, width=1100, height=2640)
    print(f"wrote {target}")


if __name__ == "__main__":
    make(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots/audit-report.png"))
