"""The optional state file: read once at start, then rewritten atomically by a background thread after every change."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

# Coalesce bursts of changes so that 10,000 creates do not mean 10,000 full rewrites.
WRITE_INTERVAL_SECONDS = 0.05


def read_state_file(path: Path) -> dict[str, Any] | None:
    """Return the saved state, or None when the file does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError("the mock state file does not hold a JSON object")
    return loaded


def write_atomically(path: Path, document: dict[str, Any]) -> None:
    """Write `document` as JSON to `path` so that a reader sees either the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, separators=(",", ":"))
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class StateFileWriter:
    """Writes a snapshot shortly after each change (at most every WRITE_INTERVAL_SECONDS) and once more on close."""

    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._path = path
        self._snapshot = snapshot
        self._condition = threading.Condition()
        self._requested = 0
        self._written = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="mock-state-writer", daemon=True)
        self._thread.start()

    def mark_dirty(self) -> None:
        """Note that the state changed and must be written."""
        with self._condition:
            self._requested += 1
            self._condition.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every change noted so far is on disk; return whether that happened within `timeout`."""
        with self._condition:
            target = self._requested
            return self._condition.wait_for(lambda: self._written >= target, timeout)

    def close(self) -> None:
        """Write any pending change and stop the thread."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._closing or self._requested > self._written)
                if self._requested == self._written:
                    return
                deadline = time.monotonic() + WRITE_INTERVAL_SECONDS
                while not self._closing and (remaining := deadline - time.monotonic()) > 0:
                    self._condition.wait(remaining)
                target = self._requested
            try:
                write_atomically(self._path, self._snapshot())
            except OSError as error:
                _log.error("mock state file not written: %s", type(error).__name__)
            with self._condition:
                self._written = target
                self._condition.notify_all()
