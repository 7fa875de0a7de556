"""From the consent CSV's bytes to checked records: line-by-line decoding, the csv field-length limit, errors that name a line.

A file that cannot be read as a whole (not UTF-8, a required column missing from the header,
malformed quoting, a row with the wrong number of fields, a field longer than `FIELD_LIMIT`)
raises `SourceError` naming the line (and for a long field its column index), never a cell's
content.

Field size: Python's csv module refuses fields over 128 KiB by default, which a legal export (a
long `notes` column) can exceed. Its limit is process-global (`csv.field_size_limit`); this module
sets it to `FIELD_LIMIT` (16 MiB) when imported, and every read sets it again if something else
changed it. A field above the limit fails the read.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from io import BufferedReader
from operator import itemgetter
from pathlib import Path
from typing import Protocol

from flagsync.core.model import CONTRACT_COLUMNS
from flagsync.core.records import OPTIONAL_COLUMNS
from flagsync.errors import SourceError

#: The longest field (in characters) a consent CSV may hold; longer fails the read.
FIELD_LIMIT = 16 * 1024 * 1024

#: Bytes read at a time where the file is read in chunks rather than lines.
CHUNK = 1 << 20

_FIELD_LIMIT_MESSAGE = "field larger than field limit"


def apply_field_limit() -> None:
    """Set csv's process-global field size limit to FIELD_LIMIT (if something changed it since)."""
    if csv.field_size_limit() != FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)


apply_field_limit()


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


class NoHash:
    def update(self, data: bytes, /) -> None:
        """Hash nothing (rows read at an offset through the index)."""


@dataclass(frozen=True, slots=True)
class Header:
    """The header as found: its width and, in contract order, the position of each contract column."""

    width: int
    positions: tuple[int, ...]  # `width` for an absent optional column (an empty cell is appended to each row)

    def values(self, fields: list[str]) -> tuple[str, ...]:
        """The contract values of a row, in contract order (an absent optional column reads as empty)."""
        fields.append("")
        picked: tuple[str, ...] = itemgetter(*self.positions)(fields)
        return picked


class RecordReader:
    """Splits an open consent CSV file into its header layout and records; `path` only names it in errors.

    `columns` maps contract names to header names (a header name is matched exactly, else
    case-insensitively).
    """

    def __init__(self, path: Path, columns: Mapping[str, str]) -> None:
        self._path = path
        self._columns = columns

    def records(self, binary: BufferedReader, hasher: Hasher) -> tuple[Header, Iterator[tuple[int, list[str]]]]:
        """The header layout, and the data records as (byte offset where the record starts, fields).

        Every record has the header's width; blank lines are skipped. Structural faults raise
        SourceError naming the line.
        """
        feed = LineFeed(self, binary, hasher)
        reader = csv.reader(feed, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise self._malformed(exc, reader.line_num, 0, binary) from None
        if header is None:
            raise SourceError(f"the consent CSV file {self._path} is empty (no header row)")
        layout = self._header(header)
        return layout, self.data(reader, feed, layout.width, binary)

    def data(
        self, reader: Iterator[list[str]], feed: LineFeed, width: int, binary: BufferedReader
    ) -> Iterator[tuple[int, list[str]]]:
        """The data records `reader` splits from `feed`'s lines, as (byte offset where the record starts, fields)."""
        line_num = getattr(reader, "line_num", 0)
        while True:
            start = feed.consumed
            try:
                fields = next(reader, None)
            except csv.Error as exc:
                raise self._malformed(exc, getattr(reader, "line_num", line_num), start, binary) from None
            if fields is None:
                return
            if not fields:
                continue  # a blank line
            if len(fields) != width:
                raise SourceError(
                    f"the consent CSV file {self._path} has {len(fields)} fields on line {getattr(reader, 'line_num', 0)}"
                    f" where the header has {width}"
                )
            yield start, fields

    def lines(
        self, binary: Iterable[bytes], hasher: Hasher, *, bom: bool = True, counter: LineFeed | None = None
    ) -> Iterator[str]:
        """Decode line by line, so a decoding error names its line; feed every byte to `hasher` (and count it in `counter`).

        Each line is decoded on its own: UTF-8 never splits a character across lines (no byte of a
        multi-byte character is a newline), so this reads exactly what decoding the whole file would.
        Only the first line may begin with a byte order mark. One generator does all of it: this
        runs for every line of every read.
        """
        number = 0
        update = hasher.update
        encoding = "utf-8-sig" if bom else "utf-8"
        try:
            for raw in binary:
                number += 1
                if counter is not None:
                    counter.consumed += len(raw)
                update(raw)
                yield raw.decode(encoding)
                encoding = "utf-8"
        except UnicodeDecodeError:
            raise SourceError(f"the consent CSV file {self._path} is not valid UTF-8 (line {max(number, 1)})") from None
        except OSError as exc:
            raise SourceError(f"cannot read the consent CSV file {self._path} ({type(exc).__name__})") from None

    def _malformed(self, exc: csv.Error, line: int, start: int, binary: BufferedReader) -> SourceError:
        if _FIELD_LIMIT_MESSAGE in str(exc):
            column = _long_field_column(self._text_from(binary, start), FIELD_LIMIT)
            where = f"column index {column}" if column is not None else "a column"
            return SourceError(
                f"the consent CSV file {self._path} has a field longer than {FIELD_LIMIT:,} characters in {where} at line {line}"
            )
        return SourceError(f"the consent CSV file {self._path} is malformed at line {line}")

    def _text_from(self, binary: BufferedReader, start: int) -> Iterator[str]:
        """The file's text from byte `start` on, in chunks (for finding an overlong field; never kept)."""
        decoder = codecs.getincrementaldecoder("utf-8-sig" if start == 0 else "utf-8")(errors="replace")
        binary.seek(start)
        while chunk := binary.read(CHUNK):
            yield decoder.decode(chunk)

    def _header(self, header: list[str]) -> Header:
        names = [name.strip() for name in header]
        index: dict[str, int] = {}
        for contract, wanted in self._columns.items():
            positions = [i for i, name in enumerate(names) if name == wanted]
            if not positions:
                positions = [i for i, name in enumerate(names) if name.lower() == wanted.lower()]
            if len(positions) > 1:
                raise SourceError(f"column {wanted!r} appears more than once in the header of the consent CSV file {self._path}")
            if positions:
                index[contract] = positions[0]
            elif contract not in OPTIONAL_COLUMNS:
                raise SourceError(
                    f"column {wanted!r} (for {contract}) missing from the header of the consent CSV file {self._path}"
                )
        width = len(header)
        return Header(width=width, positions=tuple(index.get(name, width) for name in CONTRACT_COLUMNS))


class LineFeed:
    """The decoded lines of a file for csv.reader, counting the bytes handed over (`consumed`)."""

    __slots__ = ("_lines", "consumed")

    def __init__(self, reader: RecordReader, binary: BufferedReader, hasher: Hasher, *, bom: bool = True) -> None:
        self.consumed = binary.tell()
        self._lines = reader.lines(binary, hasher, bom=bom, counter=self)

    def __iter__(self) -> Iterator[str]:
        return self._lines

    def __next__(self) -> str:
        return next(self._lines)


def _long_field_column(chunks: Iterator[str], limit: int) -> int | None:  # noqa: PLR0912 - a small state machine
    """The index of the first field longer than `limit` characters in the CSV record the text starts with.

    Follows the csv module's default dialect (comma, double quote, doubled quotes inside quotes).
    None if the record ends without one (the csv module would not have stopped there). Reads only
    what it needs, a chunk at a time, and keeps no field.
    """
    column, length = 0, 0
    state = "start"  # start | bare | quoted | quote (a quote seen inside a quoted field)
    for chunk in chunks:
        at, size = 0, len(chunk)
        while at < size:
            if state == "start":
                if chunk[at] == '"':
                    state, at = "quoted", at + 1
                    continue
                state = "bare"
            if state == "bare":
                ends = [i for i in (chunk.find(",", at), chunk.find("\n", at), chunk.find("\r", at)) if i >= 0]
                end = min(ends) if ends else size
                length += end - at
                if length > limit:
                    return column
                if end == size:
                    at = size
                    continue
                if chunk[end] != ",":
                    return None  # the record ended
                column, length, state, at = column + 1, 0, "start", end + 1
            elif state == "quoted":
                end = chunk.find('"', at)
                length += (size if end < 0 else end) - at
                if length > limit:
                    return column
                at, state = (size, "quoted") if end < 0 else (end + 1, "quote")
            elif chunk[at] == '"':
                length, state, at = length + 1, "quoted", at + 1
                if length > limit:
                    return column
            elif chunk[at] == ",":
                column, length, state, at = column + 1, 0, "start", at + 1
            else:
                return None
    return None
