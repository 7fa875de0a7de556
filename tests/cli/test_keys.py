"""No insecure pseudonym key outside the demo: a missing key is an error, a published key needs One on loopback.

Regression tests for issue 6: `status` and `audit` silently fell back to the demo's built-in key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from flagsync.cli import main
from flagsync.settings import PUBLISHED_HMAC_KEYS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLAGSYNC_")]:
        monkeypatch.delenv(name)
    (tmp_path / "secrets").mkdir()
    monkeypatch.setenv("FLAGSYNC_SECRETS_DIR", str(tmp_path / "secrets"))
    return tmp_path


def _config(workdir: Path, text: str) -> Path:
    path = workdir / "flagsync.toml"
    path.write_text(f'[state]\nurl = "sqlite:///{workdir / "state.db"}"\n' + text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["status", "audit"])
def test_state_readers_need_the_pseudonym_key(workdir: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`status` and `audit` without audit.hmac_key stop with a message naming it, and create no state store."""
    code = main([command, "--config", str(_config(workdir, ""))])
    assert code == 1
    assert "missing required setting audit.hmac_key" in capsys.readouterr().err
    assert not (workdir / "state.db").exists()


@pytest.mark.parametrize("command", ["status", "audit"])
def test_state_readers_work_with_a_key_and_nothing_else(workdir: Path, command: str) -> None:
    """With only the pseudonym key (no One credentials), `status` and `audit` run."""
    assert main([command, "--config", str(_config(workdir, '[audit]\nhmac_key = "a-private-key-0123456789"\n'))]) == 0


@pytest.mark.parametrize("key", sorted(PUBLISHED_HMAC_KEYS))
@pytest.mark.parametrize("base_url", [None, "https://one.council.example"])
def test_a_published_key_is_refused_away_from_loopback(
    workdir: Path, key: str, base_url: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key printed in this repository is refused unless one.base_url is on loopback (the local mock)."""
    one = f'[one]\nbase_url = "{base_url}"\n' if base_url else ""
    code = main(["status", "--config", str(_config(workdir, f'[audit]\nhmac_key = "{key}"\n{one}'))])
    assert code == 1
    err = capsys.readouterr().err
    assert "audit.hmac_key: is a published example key" in err
    assert key not in err


def test_a_published_key_is_accepted_with_the_local_mock(workdir: Path) -> None:
    """The local-mock configuration's key works against the mock on loopback."""
    text = f'[audit]\nhmac_key = "{sorted(PUBLISHED_HMAC_KEYS)[0]}"\n[one]\nbase_url = "http://127.0.0.1:8080"\n'
    assert main(["status", "--config", str(_config(workdir, text))]) == 0


def test_the_local_mock_configuration_key_is_known_as_published() -> None:
    """config/local-mock.toml's key is in the published list, so the list cannot drift from the file."""
    with (REPO / "config" / "local-mock.toml").open("rb") as file:
        assert tomllib.load(file)["audit"]["hmac_key"] in PUBLISHED_HMAC_KEYS
