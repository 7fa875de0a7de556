"""TLS failures say what went wrong and are not retried: an untrusted certificate (hint: one.ca_bundle) or a port without TLS.

Regression tests for issue 10: a TLS failure was retried four times and said only "TLS failed".
"""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from flagsync.adapters.one.endpoint import OneEndpoint
from flagsync.adapters.one.gateway import HttpFlagGateway
from flagsync.errors import FatalRemoteError


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        listing = b'{"items": [], "nextPageToken": null}'
        body = listing if "involvements" in self.path else b'{"access_token": "t", "expires_in": 60}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _serve(server: http.server.HTTPServer) -> Iterator[str]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from _serve(server)


@pytest.fixture
def plain_server() -> Iterator[str]:
    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler))


def _gateway(address: str, sleeps: list[float], ca_bundle: Path | None = None) -> HttpFlagGateway:
    base = f"https://{address}"
    endpoint = OneEndpoint(
        base_url=base, token_url=base + "/connect/token", client_id="c", client_secret=SecretStr("s"), ca_bundle=ca_bundle
    )
    return HttpFlagGateway(endpoint, retry_attempts=4, sleep=sleeps.append)


def test_an_untrusted_certificate_says_so_and_points_at_ca_bundle(tls_server: str) -> None:
    """A certificate the trust store does not know fails at once as TLS_UNTRUSTED, naming one.ca_bundle."""
    sleeps: list[float] = []
    gateway = _gateway(tls_server, sleeps)
    with pytest.raises(FatalRemoteError) as info:
        gateway.probe()
    gateway.close()
    assert info.value.code == "TLS_UNTRUSTED"
    assert "one.ca_bundle" in str(info.value)
    assert sleeps == []


def test_the_right_ca_bundle_makes_it_work(tls_server: str, certificate: tuple[Path, Path]) -> None:
    """With one.ca_bundle naming the certificate's issuer, the same server is trusted."""
    gateway = _gateway(tls_server, [], ca_bundle=certificate[0])
    try:
        assert gateway.probe().items == 0
    finally:
        gateway.close()


def test_a_port_without_tls_says_so(plain_server: str) -> None:
    """https:// to a plain http port fails at once as TLS_NOT_TLS, saying the port does not speak TLS."""
    sleeps: list[float] = []
    gateway = _gateway(plain_server, sleeps)
    with pytest.raises(FatalRemoteError) as info:
        gateway.probe()
    gateway.close()
    assert info.value.code == "TLS_NOT_TLS"
    assert "does not speak TLS" in str(info.value)
    assert sleeps == []
