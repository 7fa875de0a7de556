"""Scrubbing edges found by mutation testing: overlapping secrets, and URLs with a bracketed IPv6 host."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

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
