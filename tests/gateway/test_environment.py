"""The process environment cannot redirect flagsync's traffic to One: no proxy variables, no CA bundle variable, no netrc.

Regression tests for issue 6: with HTTP_PROXY pointing elsewhere, the client secret and bearer token
went to that proxy. Only the explicit `one.proxy` setting may route traffic through a proxy (the
settings check it like One's own URL: tests/settings/test_settings.py::test_one_proxy_follows_the_https_rule).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from flagsync.adapters.one.endpoint import OneEndpoint
from flagsync.adapters.one.gateway import HttpFlagGateway
from mocks.one.server import RunningMock, start_in_thread

CLIENT = ("env-test", "env-test-SECRET-value-42")


class RecordingProxy:
    """A loopback socket that records whatever arrives and answers like a proxy forwarding to One would not."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.received = bytearray()
        self._answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.received += conn.recv(65536)
                    if self._answer is not None:
                        conn.sendall(self._answer)
                except OSError:
                    continue

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def one() -> Iterator[RunningMock]:
    with start_in_thread(clients={CLIENT[0]: (CLIENT[1], "PIAS")}) as running:
        yield running


@pytest.fixture
def trap() -> Iterator[RecordingProxy]:
    proxy = RecordingProxy()
    yield proxy
    proxy.close()


def _gateway(base_url: str, proxy: str | None = None, retry_attempts: int = 5) -> HttpFlagGateway:
    endpoint = OneEndpoint(
        base_url=base_url,
        token_url=base_url + "/connect/token",
        client_id=CLIENT[0],
        client_secret=SecretStr(CLIENT[1]),
        proxy=proxy,
    )
    return HttpFlagGateway(endpoint, retry_attempts=retry_attempts, sleep=lambda _s: None)


def test_proxy_variables_in_the_environment_are_ignored(
    one: RunningMock, trap: RecordingProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With every proxy variable pointing at a trap, the token request and the listing still go straight to One."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, trap.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login intruder password netrc-PASSWORD\n")
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "no-such-bundle.pem"))
    gateway = _gateway(one.url)
    try:
        gateway.probe()
    finally:
        gateway.close()
    assert bytes(trap.received) == b""


def test_an_explicit_proxy_setting_is_used(one: RunningMock, monkeypatch: pytest.MonkeyPatch) -> None:
    """one.proxy routes the calls through that proxy (and only through it)."""
    body = b'{"access_token":"t","token_type":"Bearer","expires_in":60}'
    proxy = RecordingProxy(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    monkeypatch.delenv("NO_PROXY", raising=False)
    gateway = _gateway("http://127.0.0.1:9", proxy=proxy.url, retry_attempts=1)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the fake proxy only knows the token answer
            gateway.probe()
    finally:
        gateway.close()
        proxy.close()
    assert bytes(proxy.received).startswith(b"POST http://127.0.0.1:9/connect/token")
