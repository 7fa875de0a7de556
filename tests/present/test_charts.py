"""The hand-written SVG charts: axis ticks, gaps, hatched bands for suppressed points, legends and accessible titles."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from flagsync.core.disclosure import LARGEST_SUPPRESSED, Figure
from flagsync.present.charts import Chart, Series, bar_chart, line_chart, nice_ticks

SHOWN = Figure(20)
STAR = Figure(None)


def chart(*series: Series, labels: tuple[str, ...] = ("1 Nov", "2 Nov", "3 Nov", "4 Nov")) -> Chart:
    return Chart("c1", "A title", "A description", labels, series, "flags", "day")


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - parsing our own output, not untrusted input


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (0, [0, 1]),
        (7, [0, 2, 4, 6, 8]),
        (15, [0, 5, 10, 15]),
        (95, [0, 20, 40, 60, 80, 100]),
        (105, [0, 25, 50, 75, 100, 125]),
        (1000, [0, 200, 400, 600, 800, 1000]),
    ],
)
def test_nice_ticks(top: int, ticks: list[int]) -> None:
    """The y axis runs from 0 past the top value in about five round steps."""
    assert nice_ticks(top) == ticks


@pytest.mark.parametrize("draw", [line_chart, bar_chart])
def test_charts_are_well_formed_accessible_svg(draw: object) -> None:
    """Each chart is one well-formed SVG image labelled by its own title and description, with a legend naming every series."""
    assert callable(draw)
    svg = draw(chart(Series("Added", [SHOWN, STAR, None, Figure(0)]), Series("Removed", [Figure(10)] * 4)))
    root = parse(svg)
    assert root.tag == "svg"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find("title") is not None and root.find("title").text == "A title"  # type: ignore[union-attr]
    assert root.find("desc") is not None and root.find("desc").text == "A description"  # type: ignore[union-attr]
    legend = [t.text for t in root.iter("text") if t.get("class") == "legend"]
    assert legend[:2] == ["Added", "Removed"]
    assert "suppressed" in (legend[2] or "")


def test_the_legend_explains_hatching_only_when_something_is_suppressed() -> None:
    """A chart with no suppressed point (an exact report) has no hatched legend entry."""
    svg = line_chart(chart(Series("Flags", [Figure(3), Figure(1), Figure(0), None])))
    assert "suppressed" not in "".join(t.text or "" for t in parse(svg).iter("text"))
    assert not _bands(svg)


def _bands(svg: str) -> list[ET.Element]:
    return [r for r in parse(svg).iter("rect") if r.get("class") == "suppressed"]


@pytest.mark.parametrize("draw", [line_chart, bar_chart])
def test_every_suppressed_point_is_the_same_hatched_band(draw: object) -> None:
    """Suppressed points are identical hatched bands spanning 1 to the largest suppressed count on the axis."""
    assert callable(draw)
    svg = draw(chart(Series("Flags", [STAR, Figure(40), STAR, STAR])))
    bands = _bands(svg)
    assert len(bands) == 3
    assert {(b.get("y"), b.get("height")) for b in bands} == {(bands[0].get("y"), bands[0].get("height"))}
    assert all(b.get("fill") == "url(#c1-hatch-0)" for b in bands)
    # Where 0 and the top tick sit on the y axis, from the grid lines.
    root = parse(svg)
    grid = [float(line.get("y1", 0)) for line in root.iter("line") if line.get("class") == "grid"]
    zero, top = grid[0], grid[-1]
    top_tick = nice_ticks(40 if draw is line_chart else 44)[-1]

    def y(value: float) -> float:
        return zero - (zero - top) * value / top_tick

    band_top = float(bands[0].get("y", 0))
    band_bottom = band_top + float(bands[0].get("height", 0))
    assert band_top == pytest.approx(y(LARGEST_SUPPRESSED), abs=0.1)
    assert band_bottom == pytest.approx(max(y(1), band_top + 4), abs=0.1)
    assert all("* (1 to 7, suppressed)" in (b.findtext("title") or "") for b in bands)


def test_lines_break_at_suppressed_and_missing_points() -> None:
    """A line joins only neighbouring shown points: a suppressed or missing point splits it."""
    svg = line_chart(chart(Series("Flags", [SHOWN, SHOWN, STAR, SHOWN, SHOWN, None, SHOWN]), labels=tuple("abcdefg")))
    lines = [p for p in parse(svg).iter("polyline") if p.get("class") == "line"]
    assert [len(p.get("points", "").split()) for p in lines] == [2, 2]
    markers = [c for c in parse(svg).iter("circle") if c.findtext("title", "").startswith("Flags, ")]
    assert len(markers) == 5


def test_bar_values_are_printed_as_shown() -> None:
    """Bars carry their shown value above them, * for a suppressed one."""
    svg = bar_chart(chart(Series("Added", [Figure(15), STAR, Figure(0), None])))
    values = [t.text for t in parse(svg).iter("text") if t.get("class") == "value"]
    assert values == ["15", "*", "0"]


def test_a_chart_with_no_data_says_so() -> None:
    """With no point at all the chart prints that there is no data rather than an empty frame."""
    svg = line_chart(chart(Series("Flags", [None, None, None, None])))
    assert "No data for this period" in svg


def test_a_series_must_have_a_point_per_label() -> None:
    """A series shorter than the labels is a programming error, raised as ValueError."""
    with pytest.raises(ValueError, match="one point per label"):
        line_chart(chart(Series("Flags", [SHOWN])))


def test_x_labels_are_thinned_on_long_ranges() -> None:
    """With many periods only about a dozen x labels are printed, so they do not overlap."""
    labels = tuple(f"d{i}" for i in range(60))
    svg = bar_chart(chart(Series("Added", [Figure(10)] * 60), labels=labels))
    printed = re.findall(r'<text class="tick" x="[^"]+" y="[^"]+" text-anchor="middle">(d\d+)</text>', svg)
    assert 6 <= len(printed) <= 12
    assert printed[0] == "d0"
