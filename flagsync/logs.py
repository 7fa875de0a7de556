"""Structured logging for flagsync, with the processors that keep personal data and secrets out of every line.

Call `configure_logging` once at start-up; then log events with ``structlog.get_logger()``. Every line,
from flagsync or from a library through the standard `logging` module, passes the same privacy chain:

1. exceptions become ``error_type`` (the class name) and, for `FlagsyncError` only (whose messages are
   safe by contract), ``error``; the cause's class goes to ``cause_type``. No traceback, no locals, and
   never a library's message (requests puts URLs, so person ids, in its messages);
2. ``person_id`` / ``record_id`` become ``person`` / ``record`` keyed pseudonyms (dropped when there is
   no pseudonymizer); a ``person`` / ``record`` value that is not a pseudonym is dropped;
3. only keys in `ALLOWED_KEYS` with scalar values survive; the number of dropped keys is logged as
   ``dropped_keys``;
4. strings are scrubbed: registered secrets (`register_secret`), bearer tokens, ``password=...``-style
   pairs, URL paths and queries, and id segments of One API paths become ``***``.

Event names are stable, dotted and constant (put values in keys, never in the event text), e.g.:

    sync.started, sync.completed, sync.failed, sync.held, sync.skipped, sync.read_failed
    flag.added, flag.removed, flag.failed, flag.person_issue, flag.contract_violation
    source.changes_failed, source.watermark_failed, one.listing_restarted, one.items_skipped
    http.retry_scheduled, http.gave_up
    daemon.started, daemon.http_listening, daemon.stopping, daemon.stopped
    audit.purged, audit.purge_failed

Adding a key to `ALLOWED_KEYS` is a privacy decision: only ever for values that cannot identify a person.
"""

from __future__ import annotations

import enum
import logging
import re
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import IO, Final, TextIO, cast
from urllib.parse import urlsplit

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from flagsync.core.pseudonym import Pseudonymizer
from flagsync.errors import FlagsyncError

#: The keys a log line may carry. Everything else is dropped before rendering.
ALLOWED_KEYS: Final[frozenset[str]] = frozenset(
    {
        # structlog's own
        "event",
        "level",
        "timestamp",
        "logger",
        # runs and jobs
        "run_id",
        "trigger",
        "outcome",
        "change_poll_s",
        "full_reconcile_s",
        "duration_s",
        # who and what, pseudonymous only
        "person",
        "record",
        "reason",
        "action",
        # plan and run counts
        "adds",
        "removes",
        "held",
        "failed",
        "person_issues",
        "skipped",
        "unchanged",
        "unmatched",
        "quarantined",
        "attention",
        "flags_in_one",
        "count",
        # HTTP (endpoint is always a URL template, never a URL)
        "endpoint",
        "status",
        "code",
        "attempt",
        "attempts",
        "delay_s",
        "correlation_id",
        "idempotency_key",
        # errors (filled in from exc_info by the chain)
        "error_type",
        "error",
        "cause_type",
        # components
        "source",
        "host",
        "port",
        "dropped_keys",
    }
)

#: Libraries whose own loggers are set to WARNING (at least). Every other library's records below WARNING are
#: dropped by the handler's filter too (`_LibraryFilter`), so a library not named here cannot leak at DEBUG.
LIBRARY_LOGGERS: Final[tuple[str, ...]] = (
    "urllib3",
    "requests",
    "sqlalchemy",
    "apscheduler",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "fastapi",
    "httpx",
    "httpcore",
    "filelock",
    "tenacity",
    "asyncio",
    "multipart",
    "charset_normalizer",
    "psycopg",
    "alembic",
)

#: Loggers whose records pass at the configured level; everyone else's need WARNING.
_OWN_LOGGER_PREFIX: Final = "flagsync"


class _LibraryFilter(logging.Filter):
    """Drop standard-library records below WARNING unless they come from flagsync itself.

    Even at ``log.level = "DEBUG"`` a library's chatter (a charset_normalizer DEBUG line carried a
    person id) never reaches the output; its warnings still do, through the same privacy chain.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == _OWN_LOGGER_PREFIX or record.name.startswith(_OWN_LOGGER_PREFIX + ".")
        return own or record.levelno >= logging.WARNING


REDACTED: Final = "***"

_PSEUDONYM_KEYS: Final[Mapping[str, tuple[str, Callable[[Pseudonymizer, str], str]]]] = {
    "person_id": ("person", Pseudonymizer.person),
    "record_id": ("record", Pseudonymizer.record),
}
_PSEUDONYM_FORMS: Final[Mapping[str, re.Pattern[str]]] = {
    "person": re.compile(r"p_[0-9a-f]{16}"),
    "record": re.compile(r"r_[0-9a-f]{16}"),
}

# Path segments of One's API (and our own endpoints) that are words, not ids; any other segment of an
# API path is redacted.
_STATIC_SEGMENTS: Final = frozenset(
    {"", "api", "v1", "people", "involvements", "connect", "token", "_mock", "faults", "reset", "healthz", "metrics"}
)
# Segments that mark a bare absolute path as One's API (file paths are left alone).
_API_SEGMENTS: Final = frozenset({"people", "involvements", "connect"})
_PLACEHOLDER = re.compile(r"\{[A-Za-z_]\w*\}")

# A bracketed IPv6 host is part of the URL (otherwise the match would stop at "[" and leave the path's ids).
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://(?:\[[0-9A-Fa-f:.%]*\])?[^\s'\"<>()\[\]{}]*")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/%-])/[^\s'\"<>()\[\]]*")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+")
_SECRET_PAIR = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|client_secret|password|passwd|pwd|secret|api_?key|token"
    r"|hmac_key|person_?id|record_?id)([\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)[^\s\"'&,;)}\]]+"
)


class _SecretPattern:
    """Replaces every occurrence of any of the secrets, overlapping ones included, by one replacement per run.

    One regular-expression pass is not enough: with secrets "tok-xabc" and "xabc-tail", it would
    replace "tok-xabc" in "tok-xabc-tail" and leave "-tail", the rest of the second secret. Here every
    occurrence of every secret is found, overlapping spans are merged, and each merged span goes.
    """

    def __init__(self, values: set[str]) -> None:
        self._values = tuple(values)  # a snapshot; the order is irrelevant, every occurrence of each is found
        self._any = re.compile("|".join(re.escape(secret) for secret in self._values))  # a quick "is there one at all"

    def sub(self, replacement: str, text: str) -> str:
        if self._any.search(text) is None:
            return text
        spans: list[tuple[int, int]] = []
        for secret in self._values:
            start = text.find(secret)
            while start != -1:
                spans.append((start, start + len(secret)))
                start = text.find(secret, start + 1)
        spans.sort()
        pieces: list[str] = []
        position = 0
        end = -1
        for start, stop in spans:
            if start > end:  # a new run of overlapping occurrences begins
                if end >= 0:
                    pieces.append(replacement)
                pieces.append(text[position:start])
                end = stop
            else:
                end = max(end, stop)
            position = end
        pieces.append(replacement)
        pieces.append(text[position:])
        return "".join(pieces)


class _SecretRegistry:
    """The secrets to scrub from every line (overlapping occurrences included)."""

    min_length: Final = 4

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self.pattern: _SecretPattern | None = None

    def add(self, value: str) -> None:
        if len(value) < self.min_length:
            return  # a two-letter "secret" would blank out half of every line
        with self._lock:
            self._values.add(value)
            self.pattern = _SecretPattern(self._values)


_secrets = _SecretRegistry()


def register_secret(value: str) -> None:
    """Have every later log line show `value` as ``***`` wherever it appears (values under 4 chars are ignored)."""
    _secrets.add(value)


def _redact_api_path(path: str) -> str:
    """An API path with every segment that is not a fixed word or a ``{placeholder}`` replaced by ``***``."""
    return "/".join(s if s in _STATIC_SEGMENTS or _PLACEHOLDER.fullmatch(s) else REDACTED for s in path.split("/"))


def _redact_url(match: re.Match[str]) -> str:
    """A URL cut down to scheme, host and port, with its path redacted and its query dropped."""
    try:
        parts = urlsplit(match.group(0))
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return REDACTED
    if ":" in host:
        host = f"[{host}]"
    rest = _redact_api_path(parts.path)  # an empty path stays empty
    if parts.query or parts.fragment:
        rest += "?" + REDACTED
    return f"{parts.scheme}://{host}{port}{rest}"


def _redact_bare_path(match: re.Match[str]) -> str:
    """A path of One's API (as requests and urllib3 quote them) redacted; any other path (a file) left alone."""
    text = match.group(0)
    path, mark, _ = text.partition("?")
    if not _API_SEGMENTS.intersection(path.split("/")):
        return text
    return _redact_api_path(path) + (mark + REDACTED if mark else "")


def scrub_text(text: str) -> str:
    """`text` with secrets, tokens, URL paths and API ids replaced by ``***``."""
    pattern = _secrets.pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRET_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _URL.sub(_redact_url, text)
    return _ABSOLUTE_PATH.sub(_redact_bare_path, text)


def _exception_of(exc_info: object) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    if exc_info is True:
        return sys.exc_info()[1]
    return None


def safe_error_summary(exc: BaseException) -> str:
    """What may be shown of `exc`: a FlagsyncError's (scrubbed) message, else only the exception's type name."""
    if isinstance(exc, FlagsyncError):
        message = scrub_text(str(exc))
        return message or type(exc).__name__
    return type(exc).__name__


def exceptions_as_fields(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace ``exc_info`` by ``error_type``, ``error`` (FlagsyncError only) and ``cause_type``; drop stacks."""
    exc = _exception_of(event_dict.pop("exc_info", None))
    event_dict.pop("stack_info", None)
    event_dict.pop("exception", None)
    if exc is not None:
        event_dict["error_type"] = type(exc).__name__
        if isinstance(exc, FlagsyncError):
            event_dict["error"] = str(exc)
        else:
            event_dict.pop("error", None)
        cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if cause is not None:
            event_dict["cause_type"] = type(cause).__name__
    return event_dict


class PseudonymizeIds:
    """Turn ``person_id`` / ``record_id`` into ``person`` / ``record`` pseudonyms, or drop them without a key."""

    def __init__(self, pseudonymizer: Pseudonymizer | None) -> None:
        self._pseudonymizer = pseudonymizer

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        for raw_key, (key, pseudonym) in _PSEUDONYM_KEYS.items():
            if raw_key not in event_dict:
                continue
            value = event_dict.pop(raw_key)
            if self._pseudonymizer is not None and isinstance(value, str | int) and str(value):
                event_dict[key] = pseudonym(self._pseudonymizer, str(value))
        return event_dict


def _loggable(value: object) -> tuple[bool, object]:
    """Whether `value` may be logged, and its loggable form: only scalars, never a container or an object's repr."""
    if isinstance(value, enum.Enum):
        value = value.value  # an IntEnum or StrEnum member, or a plain Enum's value: the plain value is logged
    if value is None or isinstance(value, bool | int | float):
        return True, value
    if isinstance(value, str):
        return True, value
    if isinstance(value, datetime | date):
        return True, value.isoformat()
    return False, None


_LEADING_KEYS: Final = ("timestamp", "level", "event", "logger")


def allow_listed(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Keep only `ALLOWED_KEYS` with scalar values (and real pseudonyms); count the rest in ``dropped_keys``."""
    kept: EventDict = {}
    dropped = 0
    for key, value in event_dict.items():
        ok, loggable = _loggable(value) if key in ALLOWED_KEYS and key != "dropped_keys" else (False, None)
        form = _PSEUDONYM_FORMS.get(key)
        if ok and form is not None and not (isinstance(loggable, str) and form.fullmatch(loggable)):
            ok = False
        if ok:
            kept[key] = loggable
        elif not key.startswith("_"):  # structlog's own bookkeeping (_record, _from_structlog) is not a drop
            dropped += 1
    ordered: EventDict = {key: kept[key] for key in _LEADING_KEYS if key in kept}
    ordered.update(kept)
    if dropped:
        ordered["dropped_keys"] = dropped
    return ordered


def scrubbed(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Scrub every string value (see `scrub_text`)."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = scrub_text(value)
    return event_dict


def privacy_processors(pseudonymizer: Pseudonymizer | None) -> list[Processor]:
    """The privacy chain, in order; it must run after exc_info is set and before rendering."""
    return [exceptions_as_fields, PseudonymizeIds(pseudonymizer), allow_listed, scrubbed]


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def _renderer(format: str, stream: IO[str]) -> Processor:
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    if format == "auto":
        format = "console" if is_tty else "json"
    if format == "json":
        return structlog.processors.JSONRenderer()
    if format == "console":
        # Exceptions never reach the renderer (the chain turns them into fields); plain_traceback is a second
        # line of defence against rich's tracebacks with locals.
        return structlog.dev.ConsoleRenderer(colors=is_tty, exception_formatter=structlog.dev.plain_traceback)
    raise ValueError(f"unknown log format {format!r}")


def configure_logging(
    *,
    format: str = "auto",
    level: str = "INFO",
    pseudonymizer: Pseudonymizer | None,
    stream: IO[str] | None = None,
) -> None:
    """Send structlog and standard-library logging through the privacy chain to `stream` (stdout by default).

    `format` is ``json``, ``console`` or ``auto`` (console when `stream` is a terminal). Libraries log at
    WARNING and above only. Safe to call again (tests, the demo); the last call wins.
    """
    out: IO[str] = sys.stdout if stream is None else stream
    level_number = _level_number(level)
    renderer = _renderer(format, out)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    privacy = privacy_processors(pseudonymizer)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            *privacy,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, out)),  # only write() and flush() are used
        context_class=dict,
        # Not cached, so that a later configure_logging call reaches loggers made at import time.
        cache_logger_on_first_use=False,
    )

    handler = logging.StreamHandler(out)
    handler.addFilter(_LibraryFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, timestamper],
            processors=[*privacy, renderer],
        )
    )
    root = logging.getLogger()
    # flagsync owns its process's logging: any other root handler would print library messages raw.
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level_number)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.setLevel(max(logging.WARNING, level_number))
        for existing in list(library.handlers):
            library.removeHandler(existing)
        library.propagate = True
