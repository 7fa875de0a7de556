"""Terminal helpers: plain tables, and a progress bar shown only to a person at a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from flagsync.service import Phase


class Progress:
    """A one-line progress bar on `stream`, drawn only when `enabled` (a terminal, not JSON mode)."""

    def __init__(self, stream: IO[str], enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled

    def __call__(self, phase: Phase, done: int, total: int | None) -> None:
        if not self._enabled:
            return
        if total is not None:
            width = 30
            filled = width if total == 0 else int(width * done / total)
            line = f"\r{phase.value:<26} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        else:
            line = f"\r{phase.value:<26} {done} so far"
        self._stream.write(line.ljust(72))
        if total is not None and done >= total:
            self._stream.write("\n")
        self._stream.flush()


def table(rows: Sequence[Sequence[object]], headers: Sequence[str], out: IO[str]) -> None:
    """Rows under headers, columns padded to their widest cell, a rule under the headers."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
