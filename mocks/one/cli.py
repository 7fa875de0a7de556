"""The `flagsync-mock` command: runs the One-style mock server in the foreground for testers."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from mocks.one.app import create_app
from mocks.one.schemas import TEAM_PATTERN, PeopleSeed
from mocks.one.server import bind_socket, build_core, url_of, uvicorn_config


class _ForegroundServer(uvicorn.Server):
    """uvicorn's server, but a SIGINT/SIGTERM ends `run()` normally (uvicorn would re-raise it and skip our clean-up)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


DEFAULT_CLIENT = "flagsync-local:local-secret"
DEFAULT_TEAM = "PIAS"


def _client(text: str) -> tuple[str, tuple[str, str]]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError("expected ID:SECRET or ID:SECRET:TEAM")
    team = parts[2] if len(parts) == 3 else DEFAULT_TEAM
    if not re.fullmatch(TEAM_PATTERN, team):
        raise argparse.ArgumentTypeError("TEAM must be upper-case letters, digits or _")
    return parts[0], (parts[1], team)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="flagsync-mock",
        description="Run the One-style mock server (the One API, the /_mock control plane and a tester page at /_mock/).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on; 0 picks a free one (default: 8080)")
    parser.add_argument(
        "--client",
        action="append",
        type=_client,
        metavar="ID:SECRET[:TEAM]",
        help=f"an accepted OAuth2 client and its service team (repeatable; default {DEFAULT_CLIENT}:{DEFAULT_TEAM})",
    )
    parser.add_argument("--any-person", action="store_true", help="treat every well-formed person id as an active person")
    parser.add_argument("--people", type=Path, metavar="FILE", help='seed people from a JSON file like {"people": [...]}')
    parser.add_argument("--state-file", type=Path, metavar="FILE", help="keep state in this JSON file across restarts")
    parser.add_argument("--seed", type=int, default=0, help="random seed for probabilistic faults (default: 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, start the server and serve until interrupted."""
    args = build_parser().parse_args(argv)
    clients = dict(args.client or [_client(DEFAULT_CLIENT)])
    people = None
    if args.people is not None:
        try:
            people = PeopleSeed.model_validate(json.loads(args.people.read_text(encoding="utf-8"))).people
        except (OSError, ValueError, ValidationError) as error:
            print(f"flagsync-mock: cannot read --people file: {type(error).__name__}", file=sys.stderr)
            return 2
    core = build_core(clients=clients, any_person=args.any_person, state_file=args.state_file, seed=args.seed, people=people)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as error:
        print(f"flagsync-mock: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        core.close()
        return 2
    url = url_of(sock)
    print(f"flagsync-mock listening on {url} - tester page {url}/_mock/ - docs {url}/docs", flush=True)
    try:
        _ForegroundServer(uvicorn_config(create_app(core))).run(sockets=[sock])
    finally:
        sock.close()
        core.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
