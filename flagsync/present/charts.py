"""Hand-written inline SVG charts (line and grouped bar) that never draw a suppressed count at its height.

A point is a `Figure` (a shown count, or a suppressed one) or None (no data for that period). A
suppressed point is drawn as a hatched band over the whole range it may lie in, 1 to the largest
suppressed count, the same for every suppressed value, so the picture says no more than the ``*``
in the table does. Lines break
at suppressed and missing points. Every chart has a title and a description for screen readers,
a legend, labelled axes and a tooltip on each mark.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from flagsync.core.disclosure import LARGEST_SUPPRESSED, Figure

WIDTH = 760
HEIGHT = 290
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 16, 50, 58

#: Above this many periods only every n-th period is labelled on the x axis.
_MAX_X_LABELS = 12
#: A suppressed band is at least this tall, so that it shows on a tall axis.
_MIN_BAND_HEIGHT = 4.0
#: Up to this many periods a bar chart prints each bar's value above it.
_MAX_VALUE_LABELS = 16

Point = Figure | None


@dataclass(frozen=True, slots=True)
class Series:
    """One line or one set of bars: a name for the legend and a point per period."""

    name: str
    points: Sequence[Point]


@dataclass(frozen=True, slots=True)
class Chart:
    """What a chart shows: an id unique in its page, a title and a description (for screen readers), a label per period."""

    chart_id: str
    title: str
    description: str
    labels: Sequence[str]
    series: Sequence[Series]
    y_title: str
    x_title: str


# Colour-blind-safe pair (blue and vermilion), told apart in grey print by dash and marker too.
_STYLES = (
    {"colour": "#1f5fa8", "dash": "", "marker": "circle"},
    {"colour": "#c1440e", "dash": "7 4", "marker": "square"},
    {"colour": "#3b7d2b", "dash": "2 3", "marker": "diamond"},
)


def nice_ticks(top: int) -> list[int]:
    """Axis ticks from 0 in whole steps of 1, 2, 2.5 or 5 times a power of ten, about five of them, reaching `top`."""
    top = max(top, 1)
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    steps = [m * magnitude for m in (1, 2, 5, 10)] + ([magnitude * 5 // 2] if magnitude >= 10 else [])
    step = min(s for s in steps if s >= raw)
    return [i * step for i in range(math.ceil(top / step) + 1)]


@dataclass(frozen=True, slots=True)
class _Frame:
    """The plot area and the scales shared by both chart kinds."""

    periods: int
    ticks: list[int]

    @property
    def left(self) -> float:
        return _LEFT

    @property
    def right(self) -> float:
        return WIDTH - _RIGHT

    @property
    def top(self) -> float:
        return _TOP

    @property
    def bottom(self) -> float:
        return HEIGHT - _BOTTOM

    def y(self, value: float) -> float:
        return self.bottom - (self.bottom - self.top) * value / self.ticks[-1]

    def slot(self) -> float:
        return (self.right - self.left) / max(self.periods, 1)

    def x(self, index: int) -> float:
        """The centre of period `index`."""
        return self.left + self.slot() * (index + 0.5)


def line_chart(chart: Chart) -> str:
    """A line chart with a marker per shown point and a hatched band per suppressed point."""
    chart_id, labels, series = chart.chart_id, chart.labels, chart.series
    frame = _frame(labels, series, headroom=1.0)
    marks: list[str] = []
    band = min(14.0, max(5.0, frame.slot() * 0.3))
    for n, s in enumerate(series):
        style = _STYLES[n % len(_STYLES)]
        run: list[tuple[float, float]] = []
        segments: list[list[tuple[float, float]]] = []
        for i, point in enumerate(s.points):
            if point is None or point.value is None:
                if run:
                    segments.append(run)
                run = []
                continue
            run.append((frame.x(i), frame.y(point.value)))
        if run:
            segments.append(run)
        for segment in segments:
            if len(segment) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
                dash = f' stroke-dasharray="{style["dash"]}"' if style["dash"] else ""
                marks.append(f'<polyline class="line" points="{path}" stroke="{style["colour"]}"{dash}/>')
        offset = (n - (len(series) - 1) / 2) * (band + 2)
        for i, point in enumerate(s.points):
            if point is None:
                continue
            tip = f"{s.name}, {labels[i]}: {_tip(point)}"
            if point.value is None:
                marks.append(_hatched_band(f"{chart_id}-hatch-{n}", frame.x(i) + offset - band / 2, band, frame, tip))
            else:
                marks.append(_marker(style["marker"], frame.x(i), frame.y(point.value), style["colour"], tip))
    return _svg(chart, frame, marks, bars=False)


def bar_chart(chart: Chart) -> str:
    """A grouped bar chart: one bar per series in each period; suppressed bars are hatched bands."""
    chart_id, labels, series = chart.chart_id, chart.labels, chart.series
    frame = _frame(labels, series, headroom=1.1)  # room for the value above the tallest bar
    marks: list[str] = []
    group = frame.slot() * 0.8
    bar = group / max(len(series), 1)
    show_values = len(labels) <= _MAX_VALUE_LABELS
    for n, s in enumerate(series):
        style = _STYLES[n % len(_STYLES)]
        for i, point in enumerate(s.points):
            if point is None:
                continue
            x = frame.x(i) - group / 2 + n * bar
            tip = f"{s.name}, {labels[i]}: {_tip(point)}"
            if point.value is None:
                marks.append(_hatched_band(f"{chart_id}-hatch-{n}", x, bar, frame, tip))
                label_y = frame.y(LARGEST_SUPPRESSED)
            else:
                y = frame.y(point.value)
                height = max(frame.bottom - y, 0.0)
                marks.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" fill="{style["colour"]}">'
                    f"<title>{escape(tip)}</title></rect>"
                )
                label_y = y
            if show_values:
                marks.append(
                    f'<text class="value" x="{x + bar / 2:.1f}" y="{label_y - 4:.1f}" text-anchor="middle">'
                    f"{escape(point.text())}</text>"
                )
    return _svg(chart, frame, marks, bars=True)


# ----------------------------------------------------------------------------------------------
# Pieces


def _frame(labels: Sequence[str], series: Sequence[Series], *, headroom: float) -> _Frame:
    for s in series:
        if len(s.points) != len(labels):
            raise ValueError("every series needs one point per label")
    points = [p for s in series for p in s.points if p is not None]
    top = max([p.value if p.value is not None else LARGEST_SUPPRESSED for p in points], default=0)
    return _Frame(periods=len(labels), ticks=nice_ticks(math.ceil(top * headroom)))


def _tip(point: Figure) -> str:
    return "* (1 to 7, suppressed)" if point.value is None else point.text()


def _hatched_band(pattern: str, x: float, width: float, frame: _Frame, tip: str) -> str:
    """The same band for every suppressed point: the whole range 1 to the largest suppressed count, hatched."""
    top = frame.y(LARGEST_SUPPRESSED)
    bottom = max(frame.y(1), top + _MIN_BAND_HEIGHT)
    return (
        f'<rect class="suppressed" x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{bottom - top:.1f}" '
        f'fill="url(#{pattern})" stroke="#5b6673"><title>{escape(tip)}</title></rect>'
    )


def _marker(kind: str, x: float, y: float, colour: str, tip: str) -> str:
    title = f"<title>{escape(tip)}</title>"
    if kind == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}">{title}</rect>'
    if kind == "diamond":
        points = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 5:.1f},{y:.1f}"
        return f'<polygon points="{points}" fill="{colour}">{title}</polygon>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">{title}</circle>'


def _svg(chart: Chart, frame: _Frame, marks: list[str], *, bars: bool) -> str:
    chart_id, labels, series = chart.chart_id, chart.labels, chart.series
    parts = [
        f'<svg class="chart" id="{chart_id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(chart.title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(chart.description)}</desc>',
        "<defs>",
    ]
    for n in range(len(series)):
        colour = _STYLES[n % len(_STYLES)]["colour"]
        parts.append(
            f'<pattern id="{chart_id}-hatch-{n}" width="6" height="6" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
            f'<line x1="0" y1="0" x2="0" y2="6" stroke="{colour}" stroke-width="2.5"/></pattern>'
        )
    parts.append("</defs>")
    parts += _legend(chart_id, series, bars=bars)
    # Grid and y axis.
    for tick in frame.ticks:
        y = frame.y(tick)
        parts.append(f'<line class="grid" x1="{frame.left}" y1="{y:.1f}" x2="{frame.right}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{frame.left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>')
    middle = (frame.top + frame.bottom) / 2
    parts.append(
        f'<text class="axis-title" x="14" y="{middle:.1f}" text-anchor="middle" transform="rotate(-90 14 {middle:.1f})">'
        f"{escape(chart.y_title)}</text>"
    )
    # X axis.
    parts.append(f'<line class="axis" x1="{frame.left}" y1="{frame.bottom}" x2="{frame.right}" y2="{frame.bottom}"/>')
    parts.append(f'<line class="axis" x1="{frame.left}" y1="{frame.top}" x2="{frame.left}" y2="{frame.bottom}"/>')
    every = max(1, math.ceil(len(labels) / _MAX_X_LABELS))
    for i, label in enumerate(labels):
        x = frame.x(i)
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{frame.bottom}" x2="{x:.1f}" y2="{frame.bottom + 4}"/>')
        if i % every == 0:
            parts.append(f'<text class="tick" x="{x:.1f}" y="{frame.bottom + 18}" text-anchor="middle">{escape(label)}</text>')
    parts.append(
        f'<text class="axis-title" x="{(frame.left + frame.right) / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"{escape(chart.x_title)}</text>"
    )
    if not any(p is not None for s in series for p in s.points):
        parts.append(
            f'<text class="empty" x="{(frame.left + frame.right) / 2:.1f}" y="{middle:.1f}" text-anchor="middle">'
            "No data for this period</text>"
        )
    parts += marks
    parts.append("</svg>")
    return "".join(parts)


def _legend(chart_id: str, series: Sequence[Series], *, bars: bool) -> list[str]:
    parts: list[str] = []
    x = float(_LEFT)
    y = 18.0
    for n, s in enumerate(series):
        style = _STYLES[n % len(_STYLES)]
        if bars:
            parts.append(f'<rect x="{x + 4:.1f}" y="{y - 7:.1f}" width="14" height="14" fill="{style["colour"]}"/>')
        else:
            dash = f' stroke-dasharray="{style["dash"]}"' if style["dash"] else ""
            parts.append(
                f'<line class="line" x1="{x:.1f}" y1="{y:.1f}" x2="{x + 22:.1f}" y2="{y:.1f}" stroke="{style["colour"]}"{dash}/>'
            )
            parts.append(_marker(style["marker"], x + 11, y, style["colour"], s.name))
        parts.append(f'<text class="legend" x="{x + 28:.1f}" y="{y + 4:.1f}">{escape(s.name)}</text>')
        x += 40 + 7.2 * len(s.name)
    if any(p is not None and p.suppressed for s in series for p in s.points):
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 7:.1f}" width="14" height="14" fill="url(#{chart_id}-hatch-0)" stroke="#5b6673"/>'
        )
        parts.append(
            f'<text class="legend" x="{x + 20:.1f}" y="{y + 4:.1f}">* suppressed: somewhere from 1 to {LARGEST_SUPPRESSED}</text>'
        )
    return parts
