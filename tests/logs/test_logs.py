"""Tests for flagsync's logging: the rendered lines, read back through the real processor chain."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagsync.core.model import Flag
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.errors import ConfigError, RetriableRemoteError
from flagsync.logs import (
    ALLOWED_KEYS,
    configure_logging,
    register_secret,
    safe_error_summary,
    scrub_text,
)

KEY = b"test-pseudonym-key-0123456789"
PSEUDONYMIZER = Pseudonymizer(KEY)
CANARY_PERSON = "CANARYP0001234"
CANARY_RECORD = "CANARY-REC-998877"

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put structlog and the standard library's logging back as they were after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def configure_json(level: str = "INFO", pseudonymizer: Pseudonymizer | None = PSEUDONYMIZER) -> tuple[io.StringIO, Lines]:
    stream = io.StringIO()
    configure_logging(format="json", level=level, pseudonymizer=pseudonymizer, stream=stream)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    return stream, lines


def test_a_line_is_json_with_event_level_and_utc_timestamp() -> None:
    """Each event is one JSON object with its name, level and an ISO UTC timestamp."""
    _, lines = configure_json()
    structlog.get_logger().info("sync.started", trigger="manual")
    [line] = lines()
    assert line["event"] == "sync.started"
    assert line["level"] == "info"
    assert line["trigger"] == "manual"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", line["timestamp"])


def test_lines_below_the_level_are_not_written() -> None:
    """At INFO, debug events are filtered out."""
    _, lines = configure_json(level="INFO")
    log = structlog.get_logger()
    log.debug("http.request")
    log.warning("sync.held", held=60)
    assert [line["event"] for line in lines()] == ["sync.held"]


def test_auto_format_writes_json_when_not_on_a_terminal() -> None:
    """format="auto" picks JSON for a stream that is not a terminal."""
    stream = io.StringIO()
    configure_logging(format="auto", pseudonymizer=None, stream=stream)
    structlog.get_logger().info("sync.started")
    assert json.loads(stream.getvalue())["event"] == "sync.started"


def test_person_and_record_ids_become_pseudonyms() -> None:
    """person_id and record_id are logged only as person / record pseudonyms."""
    stream, lines = configure_json()
    structlog.get_logger().info("flag.added", person_id=CANARY_PERSON, record_id=CANARY_RECORD)
    [line] = lines()
    assert line["person"] == PSEUDONYMIZER.person(CANARY_PERSON)
    assert line["record"] == PSEUDONYMIZER.record(CANARY_RECORD)
    assert "person_id" not in line
    assert "record_id" not in line
    assert "CANARY" not in stream.getvalue()


def test_without_a_pseudonymizer_ids_are_dropped() -> None:
    """With no pseudonym key, person and record ids are left out altogether."""
    stream, lines = configure_json(pseudonymizer=None)
    structlog.get_logger().info("flag.added", person_id=CANARY_PERSON, record_id=CANARY_RECORD)
    [line] = lines()
    assert "person" not in line
    assert "record" not in line
    assert "CANARY" not in stream.getvalue()


def test_a_person_value_that_is_not_a_pseudonym_is_dropped() -> None:
    """Logging a raw id under the `person` key does not get it through."""
    stream, lines = configure_json()
    structlog.get_logger().info("flag.added", person=CANARY_PERSON, record="r_not-hex")
    [line] = lines()
    assert "person" not in line
    assert "record" not in line
    assert line["dropped_keys"] == 2
    assert "CANARY" not in stream.getvalue()


def test_keys_outside_the_allow_list_are_dropped_and_counted() -> None:
    """Unknown keys vanish and their number is logged as dropped_keys."""
    stream, lines = configure_json()
    structlog.get_logger().info("flag.added", name="CANARY Alice", dob="2015-01-01", adds=3)
    [line] = lines()
    assert line["adds"] == 3
    assert line["dropped_keys"] == 2
    assert "CANARY" not in stream.getvalue()
    assert "2015-01-01" not in stream.getvalue()


def test_containers_under_allowed_keys_are_dropped() -> None:
    """A list or object (which could hold person ids) is not logged even under an allowed key."""
    stream, lines = configure_json()
    flags = (Flag("INV-1", CANARY_PERSON, 1),)
    structlog.get_logger().info("sync.completed", removes=flags, adds=[CANARY_PERSON], held=0)
    [line] = lines()
    assert line["held"] == 0
    assert "removes" not in line
    assert "adds" not in line
    assert "CANARY" not in stream.getvalue()


def test_bound_run_context_appears_on_every_line() -> None:
    """run_id and trigger bound for a run are on each line until unbound."""
    _, lines = configure_json()
    log = structlog.get_logger()
    with structlog.contextvars.bound_contextvars(run_id="run-42", trigger="schedule"):
        log.info("sync.started")
    log.info("daemon.stopped")
    first, second = lines()
    assert (first["run_id"], first["trigger"]) == ("run-42", "schedule")
    assert "run_id" not in second


def test_endpoint_templates_are_kept() -> None:
    """A URL template under `endpoint` is shown as it is."""
    _, lines = configure_json()
    structlog.get_logger().info("http.retry_scheduled", endpoint="/api/v1/people/{personId}/involvements", attempt=2)
    [line] = lines()
    assert line["endpoint"] == "/api/v1/people/{personId}/involvements"


extra_keys = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True).filter(
    lambda key: key not in ALLOWED_KEYS and key not in {"exc_info", "stack_info", "exception"}
)
marked_text = st.builds(lambda s: f"CANARY{s}", st.text(max_size=20))
marked_value = st.one_of(
    marked_text,
    st.lists(marked_text, max_size=3),
    st.dictionaries(st.text(max_size=5), marked_text, max_size=2),
    st.integers(min_value=10**12).map(lambda n: f"CANARY{n}"),
)
person_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True).map(lambda s: f"CANARY{s}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extras=st.dictionaries(extra_keys, marked_value, max_size=6), person_id=person_ids, record_id=person_ids)
def test_no_value_of_an_unlisted_key_and_no_raw_id_is_ever_written(
    extras: dict[str, object], person_id: str, record_id: str
) -> None:
    """Whatever extra keys are logged, their values and the raw person and record ids never reach the output."""
    stream = io.StringIO()
    for output_format in ("json", "console"):
        configure_logging(format=output_format, pseudonymizer=PSEUDONYMIZER, stream=stream)
        structlog.get_logger().info("flag.added", person_id=person_id, record_id=record_id, **extras)
    output = stream.getvalue()
    assert "CANARY" not in output
    assert PSEUDONYMIZER.person(person_id) in output


def raise_connection_error() -> requests.ConnectionError:
    """A real requests.ConnectionError, whose message holds the URL with a person id."""
    try:
        requests.get(f"http://127.0.0.1:9/api/v1/people/{CANARY_PERSON}/involvements?status=active", timeout=2)
    except requests.ConnectionError as exc:
        assert CANARY_PERSON in str(exc)
        return exc
    raise AssertionError("port 9 answered")


def test_a_library_exception_is_logged_as_its_type_only() -> None:
    """A requests error logged with exc_info shows its type, never its message (the URL) or a traceback."""
    stream, lines = configure_json()
    exc = raise_connection_error()
    structlog.get_logger().warning("http.retry_scheduled", exc_info=exc)
    try:
        raise exc
    except requests.ConnectionError:
        structlog.get_logger().exception("flag.failed")
    first, second = lines()
    assert first["error_type"] == second["error_type"] == "ConnectionError"
    assert "error" not in first
    assert CANARY_PERSON not in stream.getvalue()
    assert "Traceback" not in stream.getvalue()


def test_a_flagsync_error_is_logged_with_its_message_and_cause_type() -> None:
    """A FlagsyncError's own (safe) message is logged, with the type of the library error behind it."""
    stream, lines = configure_json()
    try:
        try:
            raise raise_connection_error()
        except requests.ConnectionError as exc:
            raise RetriableRemoteError("One did not answer", endpoint="/api/v1/people/{personId}/involvements") from exc
    except RetriableRemoteError:
        structlog.get_logger().exception("flag.failed", person_id=CANARY_PERSON)
    [line] = lines()
    assert line["error_type"] == "RetriableRemoteError"
    assert line["error"] == "One did not answer"
    assert line["cause_type"] == "ConnectionError"
    assert CANARY_PERSON not in stream.getvalue()


def test_an_error_string_passed_by_hand_is_scrubbed() -> None:
    """Even an `error=str(exc)` written by hand loses the URL path and query."""
    stream, _ = configure_json()
    structlog.get_logger().warning("http.retry_scheduled", error=str(raise_connection_error()))
    assert CANARY_PERSON not in stream.getvalue()
    assert "/api/v1/people/***/involvements" in stream.getvalue()


def test_registered_secrets_are_scrubbed_everywhere() -> None:
    """A registered secret is shown as *** in any value, including library messages."""
    secret = "CANARY-registered-secret-5150"
    register_secret(secret)
    stream, lines = configure_json()
    structlog.get_logger().info("check.failed", reason=f"token was {secret}!")
    logging.getLogger("urllib3.connectionpool").warning("sent %s", secret)
    first, second = lines()
    assert first["reason"] == "token was ***!"
    assert second["event"] == "sent ***"
    assert secret not in stream.getvalue()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "Authorization: Bearer ***"),
        ("client_secret=hunter2&grant_type=x", "client_secret=***&grant_type=x"),
        ('{"access_token": "abc123"}', '{"access_token": "***"}'),
        ("postgresql://flagsync:pw@db:5432/state", "postgresql://db:5432/***"),
        (
            "https://one.example/api/v1/people/P1/involvements?status=active",
            "https://one.example/api/v1/people/***/involvements?***",
        ),
        ("url: /api/v1/involvements/INV-1 (Caused by X)", "url: /api/v1/involvements/*** (Caused by X)"),
        ("personId='P123' went", "personId='***' went"),
        ("cannot read /data/exports/consent.csv", "cannot read /data/exports/consent.csv"),
        ("/api/v1/people/{personId}/involvements", "/api/v1/people/{personId}/involvements"),
    ],
)
def test_scrub_text(text: str, expected: str) -> None:
    """Tokens, credentials, URL paths and API ids are redacted; file paths and URL templates are kept."""
    assert scrub_text(text) == expected


def test_library_logging_is_raised_to_warning_and_redacted() -> None:
    """A library's INFO lines are silenced and its warnings go through the same chain, URLs redacted."""
    stream, lines = configure_json(level="DEBUG")
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.info("Starting new HTTP connection: /api/v1/people/%s/involvements", CANARY_PERSON)
    urllib3_log.warning("Retrying after connection broken: /api/v1/people/%s/involvements", CANARY_PERSON)
    [line] = lines()
    assert line["level"] == "warning"
    assert line["logger"] == "urllib3.connectionpool"
    assert CANARY_PERSON not in stream.getvalue()


@pytest.mark.parametrize("name", ["charset_normalizer", "urllib3.util.retry", "some.library.nobody.named", "root"])
def test_no_library_speaks_below_warning_even_at_debug(name: str) -> None:
    """At log.level DEBUG, every library's DEBUG and INFO records are dropped; only flagsync's own pass."""
    stream, lines = configure_json(level="DEBUG")
    library = logging.getLogger() if name == "root" else logging.getLogger(name)
    library.setLevel(logging.DEBUG)  # as a library may do to itself
    library.debug("probing %s", CANARY_PERSON)
    library.info("found %s", CANARY_PERSON)
    logging.getLogger("flagsync.something").debug("our own debug line")
    assert [line["event"] for line in lines()] == ["our own debug line"]
    assert CANARY_PERSON not in stream.getvalue()


def test_library_exception_tracebacks_are_not_written() -> None:
    """logging.exception in a library gives the exception type, not its traceback or message."""
    stream, lines = configure_json()
    try:
        raise raise_connection_error()
    except requests.ConnectionError:
        logging.getLogger("apscheduler.executors.default").exception("Job raised an exception")
    [line] = lines()
    assert line["error_type"] == "ConnectionError"
    assert CANARY_PERSON not in stream.getvalue()
    assert "Traceback" not in stream.getvalue()


def test_console_format_redacts_too() -> None:
    """The console renderer gets the same scrubbed, allow-listed, pseudonymised values and no traceback."""
    stream = io.StringIO()
    configure_logging(format="console", pseudonymizer=PSEUDONYMIZER, stream=stream)
    exc = raise_connection_error()
    structlog.get_logger().error("flag.failed", person_id=CANARY_PERSON, name="CANARY name", exc_info=exc)
    logging.getLogger("urllib3").warning("url: /api/v1/people/%s/involvements", CANARY_PERSON)
    output = stream.getvalue()
    assert "flag.failed" in output
    assert PSEUDONYMIZER.person(CANARY_PERSON) in output
    assert "ConnectionError" in output
    assert "CANARY" not in output
    assert "Traceback" not in output


def test_safe_error_summary() -> None:
    """A FlagsyncError shows its message; anything else only its type name."""
    assert safe_error_summary(ConfigError("missing required setting one.base_url")) == "missing required setting one.base_url"
    summary = safe_error_summary(raise_connection_error())
    assert summary == "ConnectionError"


def test_unknown_format_and_level_are_refused() -> None:
    """configure_logging rejects a format or level it does not know."""
    with pytest.raises(ValueError, match="format"):
        configure_logging(format="xml", pseudonymizer=None, stream=io.StringIO())
    with pytest.raises(ValueError, match="level"):
        configure_logging(level="LOUD", pseudonymizer=None, stream=io.StringIO())
