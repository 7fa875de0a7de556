"""Scrubbing edges found by mutation testing: overlapping and adjacent secrets, an empty registry, and URLs with a
bracketed IPv6 host, no host or no path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagsync import logs
from flagsync.logs import _SecretRegistry, scrub_text

_PIECES = st.text(alphabet="abcx-", min_size=4, max_size=10)


def test_a_secret_starting_inside_another_leaves_no_tail() -> None:
    """With "tok-xabc" and "xabc-secret-tail" registered, "tok-xabc-secret-tail" is scrubbed whole."""
    registry = _SecretRegistry()
    registry.add("tok-xabc")
    registry.add("xabc-secret-tail")
    assert registry.pattern is not None
    assert registry.pattern.sub("***", "tok-xabc-secret-tail") == "***"
    assert registry.pattern.sub("***", "a tok-xabc b xabc-secret-tail c") == "a *** b *** c"


def test_an_occurrence_starting_one_character_after_another_is_scrubbed_too() -> None:
    """In "xxxxx" the secret "xxxx" occurs at 0 and at 1; both go, so no "x" is left over."""
    registry = _SecretRegistry()
    registry.add("xxxx")
    assert registry.pattern is not None
    assert registry.pattern.sub("***", "a xxxxx b") == "a *** b"


def test_back_to_back_occurrences_of_a_secret_become_one_redaction() -> None:
    """Occurrences that touch without overlapping form one run, shown as a single ***."""
    registry = _SecretRegistry()
    registry.add("tok1")
    assert registry.pattern is not None
    assert registry.pattern.sub("***", "a tok1tok1 b") == "a *** b"


def test_with_no_secret_registered_text_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any secret is registered, scrub_text leaves text without tokens, pairs or URLs untouched."""
    monkeypatch.setattr(logs, "_secrets", _SecretRegistry())
    assert scrub_text("sync completed with 3 adds") == "sync completed with 3 adds"


@given(secrets=st.lists(_PIECES, min_size=1, max_size=4), glue=st.lists(st.sampled_from(["", " ", "-", "a", "x"]), max_size=6))
def test_no_registered_secret_survives_scrubbing(secrets: list[str], glue: list[str]) -> None:
    """Whatever the secrets and however their occurrences overlap, none of them is left in the scrubbed text."""
    registry = _SecretRegistry()
    for secret in secrets:
        registry.add(secret)
    assert registry.pattern is not None
    text = "".join(part for pair in zip(secrets * 2, [*glue, *[""] * 8], strict=False) for part in pair)
    scrubbed = registry.pattern.sub("\x00", text)
    assert not [secret for secret in secrets if secret in scrubbed]


def test_a_url_with_an_ipv6_host_loses_its_path_ids_and_query() -> None:
    """A URL with a bracketed IPv6 host keeps its host and loses the ids in its path and its query."""
    assert (
        scrub_text("http://[::1]:8080/api/v1/people/P1/involvements?a=b")
        == "http://[::1]:8080/api/v1/people/***/involvements?***"
    )
    assert "P0001234" not in scrub_text("GET https://[2001:db8::5]/api/v1/involvements/P0001234 failed")


def test_a_url_without_a_host_keeps_an_empty_host() -> None:
    """A host-less URL (file:///...) is shown with an empty host, its path ids redacted."""
    assert scrub_text("read file:///srv/people/P1 failed") == "read file:///***/people/*** failed"


def test_a_url_without_a_path_is_kept_as_it_is() -> None:
    """A URL that is only scheme and host has nothing to redact and is shown whole."""
    assert scrub_text("cannot reach https://one.example:8443 now") == "cannot reach https://one.example:8443 now"
