"""A command run from another directory uses the files its config file names, not new ones beside the working directory.

Regression test for issue 10: `check` run from elsewhere silently created a new, empty state database.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flagsync.cli import main


def test_status_from_elsewhere_reads_the_state_store_next_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `state.url = "sqlite:///state/flagsync-state.db"` in /x/flagsync.toml, `status` run in /y uses /x/state/."""
    for name in [n for n in os.environ if n.startswith("FLAGSYNC_")]:
        monkeypatch.delenv(name)
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    config = home / "flagsync.toml"
    config.write_text('[state]\nurl = "sqlite:///state/flagsync-state.db"\n[audit]\nhmac_key = "a-private-key-0123456789"\n')
    monkeypatch.setenv("FLAGSYNC_SECRETS_DIR", str(tmp_path))
    monkeypatch.chdir(elsewhere)
    assert main(["status", "--config", str(config)]) == 0
    # status only reads: it names the store beside the config (not there yet) and creates nothing anywhere.
    assert f"no state store at sqlite:///{home / 'state' / 'flagsync-state.db'} yet" in capsys.readouterr().out
    assert not (elsewhere / "state").exists()
