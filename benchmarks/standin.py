"""A minimal, fast stand-in for One's create endpoint (asyncio, keep-alive), so the client's CPU is what is measured.

It answers POST /connect/token with a token and every other request with 201 and a small involvement,
in a separate process, so that its own CPU never counts against the client being measured.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
from collections.abc import Iterator
from contextlib import contextmanager

_TOKEN = b'{"access_token":"t","token_type":"Bearer","expires_in":3600}'
_CREATED = (
    b'{"id":"INV-000001","personId":"P1","serviceTeam":"PIAS","involvementType":"PIAS_WORKING_WITH_FAMILY",'
    b'"status":"active","startDate":"2026-12-01","lastUpdated":"2026-12-01T00:00:00Z","version":1}'
)


def _response(status: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body


_TOKEN_RESPONSE = _response(b"200 OK", _TOKEN)
_CREATED_RESPONSE = _response(b"201 Created", _CREATED)


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            writer.write(_TOKEN_RESPONSE if head.startswith(b"POST /connect/token") else _CREATED_RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _run(sock: socket.socket) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_serve_connection, sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextmanager
def standin() -> Iterator[str]:
    """Run the stand-in in a child process; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    process = multiprocessing.get_context("fork").Process(target=_run, args=(sock,), daemon=True)
    process.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        process.kill()
        process.join()
        sock.close()
