"""The daemon's small HTTP endpoint: `/healthz` and `/metrics`, bounded in connections and in time per connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: How long a client of /healthz or /metrics may take to send its request before the connection is closed.
HTTP_READ_TIMEOUT_SECONDS = 5.0

#: Connections served at once; more are closed at once (each served connection holds a thread).
HTTP_MAX_CONNECTIONS = 16


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most `max_connections` connections at once and drops the rest.

    The standard library's threading server starts a thread for every connection, idle or not: a
    thousand half-sent requests held a thousand threads. Together with the handler's read timeout,
    this bounds what a client that connects and says nothing can cost.
    """

    daemon_threads = True
    request_queue_size = 64  # the listen backlog: a burst of probes waits to be accepted (or refused) instead of timing out

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, max_connections: int) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: refuse this one rather than queue a thread for it
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class HealthEndpoint:
    """Serves `/healthz` (200 while `healthy()`, else 503) and `/metrics` (whatever `metrics()` renders) on a thread."""

    def __init__(self, host: str, port: int, *, healthy: Callable[[], bool], metrics: Callable[[], tuple[str, bytes]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            timeout = HTTP_READ_TIMEOUT_SECONDS  # applied to the connection's socket before the request is read

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    ok = healthy()
                    self._send(200 if ok else 503, "text/plain; charset=utf-8", b"ok\n" if ok else b"unhealthy\n")
                elif self.path == "/metrics":
                    self._send(200, *metrics())
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Probes every few seconds would flood the logs; they are visible in /metrics instead."""

        self._server = _BoundedHTTPServer((host, port), Handler, max_connections=HTTP_MAX_CONNECTIONS)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name="flagsync-http", daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
