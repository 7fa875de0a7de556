"""The demo can only ever talk to its own in-process mock and write its own files.

Regression tests for issue 6: with a `.env` naming a production One, credentials and state database, the
demo sent the client secret there, created and deleted flags and wrote to the production state store;
`demo --workdir var` replaced var/consent.db and var/flagsync-state.db.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from flagsync.demo import CONSENT_DB, MARKER, STATE_DB, check_own_mock, demo_settings, run_demo
from flagsync.errors import ConfigError

PROD_SECRET = "PRODUCTION-client-secret-4411"


class Trap:
    """A loopback port standing in for production One: it records every byte anyone sends it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received = bytearray()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(1)
                try:
                    self.received += conn.recv(65536)
                except OSError:
                    continue


@pytest.fixture
def trap() -> Iterator[Trap]:
    made = Trap()
    yield made
    made.sock.close()


@pytest.fixture
def hostile_cwd(tmp_path: Path, trap: Trap, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory whose .env, secrets directory and environment all point at 'production'."""
    cwd = tmp_path / "ops"
    secrets = cwd / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "FLAGSYNC_ONE__CLIENT_SECRET").write_text(PROD_SECRET)
    production = {
        "FLAGSYNC_ONE__BASE_URL": trap.url,
        "FLAGSYNC_ONE__CLIENT_ID": "production-client",
        "FLAGSYNC_STATE__URL": f"sqlite:///{cwd / 'production-state.db'}",
        "FLAGSYNC_SOURCE__URL": f"sqlite:///{cwd / 'production-consent.db'}",
        "FLAGSYNC_SECRETS_DIR": str(secrets),
        "FLAGSYNC_CONFIG": str(cwd / "flagsync.toml"),
    }
    (cwd / ".env").write_text("".join(f"{k}={v}\n" for k, v in production.items()))
    (cwd / "flagsync.toml").write_text(f'[one]\nbase_url = "{trap.url}"\n')
    (cwd / "config").mkdir()
    (cwd / "config" / "flagsync.toml").write_text(f'[one]\nbase_url = "{trap.url}"\n')
    monkeypatch.chdir(cwd)
    for name, value in production.items():
        monkeypatch.setenv(name, value)
    return cwd


def test_the_demo_ignores_env_dotenv_secrets_and_config_files(hostile_cwd: Path, trap: Trap) -> None:
    """With every outside source naming production, the demo still runs against its own mock and files only."""
    out = io.StringIO()
    assert run_demo(workdir=None, out=out) == 0
    assert "Second run: 0 added, 0 removed" in out.getvalue()
    assert bytes(trap.received) == b""
    assert not (hostile_cwd / "production-state.db").exists()
    assert not (hostile_cwd / "production-consent.db").exists()
    assert PROD_SECRET not in out.getvalue()


def test_the_demo_refuses_settings_that_are_not_its_own(tmp_path: Path, trap: Trap) -> None:
    """The last check before any request: a base URL, token URL, proxy or database outside the demo is refused."""
    mock_url = "http://127.0.0.1:1"
    good = demo_settings(tmp_path, mock_url)
    check_own_mock(good, tmp_path, mock_url)
    for changed in (
        good.model_copy(update={"one": good.one.model_copy(update={"base_url": trap.url})}),
        good.model_copy(update={"one": good.one.model_copy(update={"token_url": trap.url + "/connect/token"})}),
        good.model_copy(update={"one": good.one.model_copy(update={"proxy": trap.url})}),
        good.model_copy(update={"state": good.state.model_copy(update={"url": SecretStr("sqlite:///var/flagsync-state.db")})}),
        good.model_copy(update={"source": good.source.model_copy(update={"url": SecretStr("sqlite:///var/consent.db")})}),
    ):
        with pytest.raises(ConfigError, match="demo refused to start"):
            check_own_mock(changed, tmp_path, mock_url)


@pytest.mark.parametrize("existing", ["consent.db", "flagsync-state.db", "notes.txt"])
def test_a_workdir_with_files_the_demo_did_not_create_is_refused(tmp_path: Path, existing: str) -> None:
    """`demo --workdir DIR` refuses a directory holding anything it did not create, and leaves it untouched."""
    (tmp_path / existing).write_bytes(b"production data")
    with pytest.raises(ConfigError, match="holds files the demo did not create"):
        run_demo(workdir=tmp_path, out=io.StringIO())
    assert (tmp_path / existing).read_bytes() == b"production data"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_the_demo_reuses_its_own_workdir_with_names_of_its_own(tmp_path: Path) -> None:
    """A new or empty directory is used, a second run replaces the demo's own files, and none is named like production's."""
    work = tmp_path / "demo"
    assert run_demo(workdir=work, out=io.StringIO()) == 0
    assert run_demo(workdir=work, out=io.StringIO()) == 0
    names = {p.name for p in work.iterdir()}
    assert {MARKER, CONSENT_DB, STATE_DB} <= names
    assert not names & {"consent.db", "flagsync-state.db"}
