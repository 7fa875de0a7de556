"""The log processors and `configure_logging`, one behaviour per test (the edges mutation testing found unstated).

Lines are read back through the project's configured logger (`configure_logging`), or the processor is called
directly; `structlog.testing.capture_logs` would bypass the privacy chain.
"""

from __future__ import annotations

import enum
import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import IO, Any, cast

import pytest
import structlog

from flagsync.core.model import RunOutcome
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.errors import ConfigError
from flagsync.logs import _renderer, allow_listed, configure_logging, safe_error_summary

PSEUDONYMIZER = Pseudonymizer(b"test-pseudonym-key-processors-01")
CANARY = "CANARY-4711"

Lines = Callable[[], list[dict[str, Any]]]


def configure_json(pseudonymizer: Pseudonymizer | None = PSEUDONYMIZER) -> tuple[io.StringIO, Lines]:
    """Configure JSON logging into a fresh stream; return it and a reader of its lines."""
    stream = io.StringIO()
    configure_logging(format="json", pseudonymizer=pseudonymizer, stream=stream)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    return stream, lines


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class _WriteOnly:
    """A stream with only write() and flush(), as `configure_logging` needs (no isatty)."""

    def __init__(self) -> None:
        self.written = io.StringIO()

    def write(self, text: str) -> int:
        return self.written.write(text)

    def flush(self) -> None:
        pass


ANSI_ESCAPE = "\x1b["


# --- exceptions_as_fields ---------------------------------------------------------------------------------


def test_stack_info_is_dropped_without_being_counted() -> None:
    """Asking for stack_info writes no stack, and the request is not counted as a dropped key."""
    stream, lines = configure_json()
    structlog.get_logger().info("sync.started", stack_info=True)
    [line] = lines()
    assert set(line) == {"event", "level", "timestamp"}
    assert "stack" not in stream.getvalue()


def test_a_preformatted_exception_field_is_dropped_without_being_counted() -> None:
    """An ``exception`` value (a formatted traceback) is removed by the chain, not counted as a dropped key."""
    stream, lines = configure_json()
    structlog.get_logger().error("flag.failed", exception=f"Traceback (most recent call last):\n  {CANARY}")
    [line] = lines()
    assert set(line) == {"event", "level", "timestamp"}
    assert CANARY not in stream.getvalue()


def test_a_hand_written_error_beside_a_library_exception_is_dropped() -> None:
    """With a library exception in exc_info, an ``error`` passed by hand is removed too (it may be the library's message)."""
    stream, lines = configure_json()
    structlog.get_logger().warning("http.gave_up", error=f"no answer for {CANARY}", exc_info=OSError(CANARY))
    [line] = lines()
    assert line["error_type"] == "OSError"
    assert "error" not in line
    assert CANARY not in stream.getvalue()


def test_an_exception_raised_while_handling_another_names_the_other_as_its_cause() -> None:
    """An exception raised inside an ``except`` block (implicit context) logs the handled one's type as cause_type."""
    _, lines = configure_json()
    try:
        try:
            raise KeyError("k")
        except KeyError:
            raise ConfigError("missing setting")  # noqa: B904 (the implicit context is the point)
    except ConfigError:
        structlog.get_logger().exception("sync.failed")
    [line] = lines()
    assert line["cause_type"] == "KeyError"


def test_raise_from_none_logs_no_cause() -> None:
    """``raise ... from None`` hides the handled exception: no cause_type is logged."""
    _, lines = configure_json()
    try:
        try:
            raise KeyError("k")
        except KeyError:
            raise ConfigError("missing setting") from None
    except ConfigError:
        structlog.get_logger().exception("sync.failed")
    [line] = lines()
    assert line["error_type"] == "ConfigError"
    assert "cause_type" not in line


# --- safe_error_summary -----------------------------------------------------------------------------------


def test_a_flagsync_error_without_a_message_is_summarised_by_its_type() -> None:
    """A FlagsyncError with an empty message is shown as its class name."""
    assert safe_error_summary(ConfigError("")) == "ConfigError"


# --- PseudonymizeIds --------------------------------------------------------------------------------------


def test_a_record_id_alone_becomes_a_record_pseudonym() -> None:
    """A record_id logged without a person_id is still turned into its record pseudonym."""
    _, lines = configure_json()
    structlog.get_logger().info("flag.added", record_id=CANARY)
    [line] = lines()
    assert line["record"] == PSEUDONYMIZER.record(CANARY)
    assert "dropped_keys" not in line


def test_an_empty_person_id_gives_no_pseudonym() -> None:
    """An empty person_id is left out: there is no person to name."""
    _, lines = configure_json()
    structlog.get_logger().info("flag.person_issue", person_id="")
    [line] = lines()
    assert "person" not in line
    assert "dropped_keys" not in line


# --- allow_listed -----------------------------------------------------------------------------------------


def test_an_enum_is_logged_as_its_value() -> None:
    """An enum member under an allowed key is written as its value."""
    _, lines = configure_json()
    structlog.get_logger().info("sync.completed", outcome=RunOutcome.CONVERGED)
    [line] = lines()
    assert line["outcome"] == "converged"


def test_a_plain_enum_with_a_number_or_no_value_is_logged_as_that_value() -> None:
    """A plain Enum whose value is a number (or None) is kept as that value, not dropped; a container value still is."""

    class Attempt(enum.Enum):
        FIRST = 1
        NONE = None
        LISTED = (1, 2)

    assert allow_listed(None, "info", {"event": "one.listing_restarted", "attempt": Attempt.FIRST}) == {
        "event": "one.listing_restarted",
        "attempt": 1,
    }
    assert allow_listed(None, "info", {"event": "one.listing_restarted", "attempt": Attempt.NONE})["attempt"] is None
    assert allow_listed(None, "info", {"event": "one.listing_restarted", "attempt": Attempt.LISTED}) == {
        "event": "one.listing_restarted",
        "dropped_keys": 1,
    }


def test_dates_and_datetimes_are_kept_in_iso_form() -> None:
    """A date or datetime under an allowed key is kept, as its ISO 8601 text."""
    event = {"event": "sync.completed", "timestamp": datetime(2026, 3, 1, 12, 30, tzinfo=UTC), "reason": date(2026, 3, 1)}
    assert allow_listed(None, "info", event) == {
        "timestamp": "2026-03-01T12:30:00+00:00",
        "event": "sync.completed",
        "reason": "2026-03-01",
    }


def test_a_dropped_keys_value_from_the_caller_is_itself_dropped() -> None:
    """A caller cannot set dropped_keys: their value is discarded and counted as one dropped key."""
    _, lines = configure_json()
    structlog.get_logger().info("sync.completed", dropped_keys=0)
    [line] = lines()
    assert line["dropped_keys"] == 1


def test_structlog_bookkeeping_keys_are_not_counted_as_dropped() -> None:
    """A library's line (which structlog carries with its own ``_record`` keys) has no dropped_keys."""
    _, lines = configure_json()
    logging.getLogger("urllib3.connectionpool").warning("Connection pool is full")
    [line] = lines()
    assert line["event"] == "Connection pool is full"
    assert "dropped_keys" not in line


# --- the renderer -----------------------------------------------------------------------------------------


def test_auto_format_writes_coloured_console_lines_on_a_terminal() -> None:
    """With format="auto" and a terminal stream, lines are rendered for the console, in colour."""
    stream = _Terminal()
    configure_logging(format="auto", pseudonymizer=None, stream=stream)
    structlog.get_logger().info("sync.started")
    output = stream.getvalue()
    assert "sync.started" in output
    assert ANSI_ESCAPE in output
    assert not output.startswith("{")


def test_console_format_on_a_stream_that_is_no_terminal_has_no_colour_codes() -> None:
    """format="console" into a file or pipe writes plain text, without ANSI colour codes."""
    stream = io.StringIO()
    configure_logging(format="console", pseudonymizer=None, stream=stream)
    structlog.get_logger().info("sync.started")
    assert "sync.started" in stream.getvalue()
    assert ANSI_ESCAPE not in stream.getvalue()


def test_auto_format_takes_a_stream_without_isatty_for_no_terminal() -> None:
    """A stream with only write() and flush() gets JSON lines under format="auto"."""
    stream = _WriteOnly()
    configure_logging(format="auto", pseudonymizer=None, stream=cast(IO[str], stream))
    structlog.get_logger().info("sync.started")
    assert json.loads(stream.written.getvalue())["event"] == "sync.started"


def boom() -> None:
    """Raise with a personal value in a local variable, as a traceback with locals would show it."""
    person_id = CANARY
    raise ValueError(f"no person {len(person_id)}")


def test_the_console_renderer_would_print_an_exception_without_its_locals() -> None:
    """Second line of defence: should an exception ever reach the console renderer, its traceback shows no locals."""
    try:
        boom()
    except ValueError:
        exc_info = sys.exc_info()
    rendered = _renderer("console", io.StringIO())(None, "error", {"event": "flag.failed", "exc_info": exc_info})
    assert isinstance(rendered, str)
    assert "ValueError" in rendered
    assert CANARY not in rendered


# --- configure_logging ------------------------------------------------------------------------------------


def test_the_default_format_is_auto() -> None:
    """Without a format, configure_logging chooses by the stream: JSON for one that is not a terminal."""
    stream = io.StringIO()
    configure_logging(pseudonymizer=None, stream=stream)
    structlog.get_logger().info("sync.started")
    assert json.loads(stream.getvalue())["event"] == "sync.started"


def test_without_a_stream_all_lines_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """With no stream given, flagsync's and the libraries' lines are both written to stdout, none to stderr."""
    configure_logging(format="json", pseudonymizer=None)
    structlog.get_logger().info("sync.started")
    logging.getLogger("urllib3").warning("Connection pool is full")
    captured = capsys.readouterr()
    assert [json.loads(line)["event"] for line in captured.out.splitlines()] == ["sync.started", "Connection pool is full"]
    assert captured.err == ""


def test_a_logger_used_before_a_reconfiguration_writes_where_the_last_call_says() -> None:
    """A logger made and used before a second configure_logging call writes to the second call's stream."""
    log = structlog.get_logger()
    first, second = io.StringIO(), io.StringIO()
    configure_logging(format="json", pseudonymizer=None, stream=first)
    log.info("sync.started")
    configure_logging(format="json", pseudonymizer=None, stream=second)
    log.info("sync.completed")
    assert json.loads(first.getvalue())["event"] == "sync.started"
    assert json.loads(second.getvalue())["event"] == "sync.completed"


def test_configure_logging_turns_off_logger_caching_set_by_an_earlier_configuration() -> None:
    """Even after structlog was set to cache loggers, a reconfiguration reaches a logger already in use."""
    structlog.configure(cache_logger_on_first_use=True)
    log = structlog.get_logger()
    first, second = io.StringIO(), io.StringIO()
    configure_logging(format="json", pseudonymizer=None, stream=first)
    log.info("sync.started")
    configure_logging(format="json", pseudonymizer=None, stream=second)
    log.info("sync.completed")
    assert json.loads(second.getvalue())["event"] == "sync.completed"


def test_configure_logging_puts_back_a_plain_dict_context() -> None:
    """Whatever context class an earlier structlog configuration chose, configure_logging makes it a plain dict."""

    class _OtherContext(dict[str, Any]):
        pass

    structlog.configure(context_class=_OtherContext)
    configure_logging(format="json", pseudonymizer=None, stream=io.StringIO())
    assert structlog.get_config()["context_class"] is dict


def test_an_earlier_root_handler_no_longer_receives_lines() -> None:
    """A handler installed on the root logger before configure_logging is removed, so it cannot print raw messages."""
    earlier = io.StringIO()
    logging.getLogger().addHandler(logging.StreamHandler(earlier))
    configure_logging(format="json", pseudonymizer=None, stream=io.StringIO())
    logging.getLogger("urllib3").warning("url: /api/v1/people/%s/involvements", CANARY)
    assert earlier.getvalue() == ""


@pytest.fixture
def urllib3_handlers() -> Iterator[None]:
    """Put the urllib3 logger's own handlers back after the test."""
    library = logging.getLogger("urllib3")
    handlers = list(library.handlers)
    yield
    for handler in list(library.handlers):
        library.removeHandler(handler)
    for handler in handlers:
        library.addHandler(handler)


@pytest.mark.usefixtures("urllib3_handlers")
def test_a_library_loggers_own_handler_no_longer_receives_lines() -> None:
    """A handler a library put on its own logger is removed, so the library's warnings pass only the privacy chain."""
    earlier = io.StringIO()
    logging.getLogger("urllib3").addHandler(logging.StreamHandler(earlier))
    stream, _ = configure_json()
    logging.getLogger("urllib3").warning("url: /api/v1/people/%s/involvements", CANARY)
    assert earlier.getvalue() == ""
    assert "/api/v1/people/***/involvements" in stream.getvalue()
