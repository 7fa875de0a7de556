"""Runs the mock under uvicorn: in a background thread for the demo and tests, or in the foreground for the CLI."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from mocks.one.app import create_app
from mocks.one.core import ClientCredential, Clock, MockCore
from mocks.one.middleware import TRANSPORT_EXTENSION
from mocks.one.schemas import PersonSeed

DEFAULT_CLIENTS: Mapping[str, tuple[str, str]] = {"flagsync-local": ("local-secret", "PIAS")}
STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 5.0


class _DroppableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, exposing the connection's transport to the app so a fault can drop it unanswered."""

    def handle_events(self) -> None:
        super().handle_events()
        # The request task was only scheduled, not started, so the scope can still be extended.
        if self.scope is not None and self.transport is not None:
            self.scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = {"transport": self.transport}


def build_core(
    *,
    clients: Mapping[str, tuple[str, str]] | None = None,
    any_person: bool = False,
    state_file: Path | None = None,
    seed: int = 0,
    people: list[PersonSeed] | None = None,
    clock: Clock = time.time,
) -> MockCore:
    """Build the mock's state from the options the CLI and `start_in_thread` share."""
    chosen = DEFAULT_CLIENTS if clients is None else clients
    credentials = [ClientCredential(client_id, secret, team) for client_id, (secret, team) in chosen.items()]
    core = MockCore(clients=credentials, any_person=any_person, state_file=state_file, seed=seed, clock=clock)
    if people:
        core.seed_people(people)
    return core


def uvicorn_config(app: Any, *, log_level: str = "warning") -> uvicorn.Config:
    """Return the uvicorn configuration the mock always runs with."""
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        http=_DroppableH11Protocol,
        lifespan="off",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
        server_header=False,
        proxy_headers=False,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on host:port (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0) so that asyncio sets TCP_NODELAY on accepted connections; without it every answer
    # (headers and body are written separately) stalls ~40 ms on delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def url_of(sock: socket.socket) -> str:
    """Return the http base URL a bound socket serves."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class RunningMock:
    """A mock server running in a background thread; `stop()` (or leaving the `with` block) shuts it down."""

    def __init__(self, url: str, core: MockCore, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket) -> None:
        self.url = url
        self.core = core
        self._server = server
        self._thread = thread
        self._socket = sock
        self._stopped = False

    def stop(self) -> None:
        """Stop serving, close the socket and flush the state file; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._server.should_exit = True
        self._thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        self._socket.close()
        self.core.close()

    def __enter__(self) -> RunningMock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.stop()


def start_in_thread(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clients: Mapping[str, tuple[str, str]] | None = None,
    any_person: bool = False,
    state_file: Path | None = None,
    seed: int = 0,
    people: list[PersonSeed] | None = None,
    clock: Clock = time.time,
) -> RunningMock:
    """Start the mock on host:port in a daemon thread and return once it accepts connections.

    `clients` maps client id to (secret, service team); the default is flagsync-local / local-secret / PIAS.
    """
    core = build_core(clients=clients, any_person=any_person, state_file=state_file, seed=seed, people=people, clock=clock)
    sock = bind_socket(host, port)
    server = uvicorn.Server(uvicorn_config(create_app(core)))
    # uvicorn installs signal handlers only on the main thread, so the host process keeps its own.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="one-mock-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            core.close()
            raise RuntimeError("the One mock server did not start")
        time.sleep(0.01)
    return RunningMock(url_of(sock), core, server, thread, sock)
