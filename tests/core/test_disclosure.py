"""Table tests for small-number suppression: which counts are hidden, how the rest are rounded, and how they are shown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagsync.core.disclosure import LARGEST_SUPPRESSED, RULE, SUPPRESSED, Figure, disclose

# (exact count, as shown: None is suppressed)
TABLE = [
    (0, 0),
    (1, None),
    (2, None),
    (3, None),
    (4, None),
    (5, None),
    (6, None),
    (7, None),
    (8, 10),
    (9, 10),
    (10, 10),
    (11, 10),
    (12, 10),
    (13, 15),
    (14, 15),
    (15, 15),
    (16, 15),
    (17, 15),
    (18, 20),
    (22, 20),
    (23, 25),
    (97, 95),
    (98, 100),
    (102, 100),
    (103, 105),
    (999, 1000),
    (1000, 1000),
    (1002, 1000),
    (1003, 1005),
    (123_456, 123_455),
]


@pytest.mark.parametrize(("count", "shown"), TABLE, ids=[f"{c}->{s}" for c, s in TABLE])
def test_disclose_table(count: int, shown: int | None) -> None:
    """disclose keeps 0, suppresses 1 to 7 and rounds every other count to the nearest 5."""
    assert disclose(count) == shown


@pytest.mark.parametrize(("count", "text"), [(0, "0"), (1, "*"), (7, "*"), (8, "10"), (12, "10"), (13, "15"), (1234, "1,235")])
def test_figure_text_of_a_suppressed_report(count: int, text: str) -> None:
    """A suppressed report shows a count as its disclosed number (with thousands separators) or as *."""
    assert Figure.of(count, exact=False).text() == text


@pytest.mark.parametrize("count", [0, 1, 2, 7, 8, 12, 13, 1000, 1234])
def test_exact_figures_are_the_counts_themselves(count: int) -> None:
    """With exact=True every count is shown as it is, small ones included."""
    figure = Figure.of(count, exact=True)
    assert (figure.value, figure.suppressed, figure.json()) == (count, False, count)


@pytest.mark.parametrize(("count", "json_value"), [(0, 0), (3, "*"), (8, 10), (1000, 1000)])
def test_figure_json_is_a_number_or_the_star(count: int, json_value: int | str) -> None:
    """In JSON a suppressed count is the string *, every other count a number."""
    assert Figure.of(count, exact=False).json() == json_value


@pytest.mark.parametrize("exact", [True, False])
def test_negative_counts_are_refused(exact: bool) -> None:
    """A negative count is a bug, not something to show: it raises ValueError."""
    with pytest.raises(ValueError, match="negative"):
        Figure.of(-1, exact=exact)
    with pytest.raises(ValueError, match="negative"):
        disclose(-3)


@given(st.integers(min_value=LARGEST_SUPPRESSED + 1, max_value=10**9))
def test_rounded_counts_stay_within_two_and_never_fall_below_ten(count: int) -> None:
    """Every shown count above the threshold is a multiple of 5 within 2 of the truth, and at least 10."""
    shown = disclose(count)
    assert shown is not None
    assert shown % 5 == 0
    assert abs(shown - count) <= 2
    assert shown >= 10


def test_the_rule_in_words_names_the_threshold_the_star_and_the_totals() -> None:
    """The footnote text states the threshold, the symbol, the rounding and how totals are made."""
    assert f"1 to {LARGEST_SUPPRESSED}" in RULE
    assert SUPPRESSED in RULE
    assert "nearest 5" in RULE
    assert "Totals are worked out from the exact counts" in RULE
