"""Small inline-SVG charts (line, histogram, scatter) with a title, axes and a caption; no JavaScript."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 36, 48  # plot margins; the legend sits in the right one
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")

Number = float | int
X = Number | dt.date


@dataclass(frozen=True)
class Chart:
    """One chart as a `<figure>`: the SVG (or a "no data yet" note) and its caption."""

    title: str
    caption: str
    svg: str | None

    def html(self) -> str:
        body = self.svg or ('<p class="no-data">No data yet: this chart appears once the table '
                            'it reads has rows (after a pipeline run).</p>')
        state = "chart" if self.svg else "chart no-data-panel"
        return (f'<figure class="{state}"><h2>{escape(self.title)}</h2>{body}'
                f"<figcaption>{escape(self.caption)}</figcaption></figure>")


def _x_value(x: X) -> float:
    return float(x.toordinal()) if isinstance(x, dt.date) else float(x)


def _label(value: float, as_date: bool) -> str:
    if as_date:
        return dt.date.fromordinal(int(round(value))).isoformat()
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


class _Frame:
    """Maps data coordinates onto the plot area and draws the axes."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        self.x0, self.x1 = x_range if x_range[1] > x_range[0] else (x_range[0] - 1, x_range[0] + 1)
        self.y0, self.y1 = y_range if y_range[1] > y_range[0] else (y_range[0] - 1, y_range[0] + 1)

    def px(self, x: float) -> float:
        return LEFT + (x - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return HEIGHT - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)

    def axes(self, x_title: str, y_title: str, x_dates: bool) -> list[str]:
        bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
        parts = [f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" '
                 'stroke="#333"/>',
                 f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" '
                 'stroke="#333"/>']
        for i in range(5):
            y = self.y0 + (self.y1 - self.y0) * i / 4
            parts.append(f'<text x="{LEFT - 6}" y="{self.py(y) + 4:.1f}" text-anchor="end" '
                         f'font-size="11">{escape(_label(y, False))}</text>')
        for i in range(3):
            x = self.x0 + (self.x1 - self.x0) * i / 2
            parts.append(f'<text x="{self.px(x):.1f}" y="{bottom + 16}" text-anchor="middle" '
                         f'font-size="11">{escape(_label(x, x_dates))}</text>')
        parts.append(f'<text class="x-title" x="{(LEFT + right) / 2}" y="{HEIGHT - 8}" '
                     f'text-anchor="middle" font-size="12">{escape(x_title)}</text>')
        parts.append(f'<text class="y-title" x="14" y="{(TOP + bottom) / 2}" text-anchor="middle" '
                     f'font-size="12" transform="rotate(-90 14 {(TOP + bottom) / 2})">'
                     f"{escape(y_title)}</text>")
        return parts


def _svg(title: str, parts: Sequence[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" '
            f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}"><title>{escape(title)}</title>'
            + "".join(parts) + "</svg>")


def _legend(names: Sequence[str]) -> list[str]:
    parts = []
    for i, name in enumerate(names[:12]):
        y = TOP + 14 * i
        parts.append(f'<rect x="{WIDTH - RIGHT + 10}" y="{y}" width="10" height="10" '
                     f'fill="{COLOURS[i % len(COLOURS)]}"/><text x="{WIDTH - RIGHT + 24}" '
                     f'y="{y + 9}" font-size="11">{escape(name[:20])}</text>')
    return parts


def line_chart(title: str, caption: str, series: Mapping[str, Sequence[tuple[X, Number]]],
               x_title: str, y_title: str) -> Chart:
    """One polyline per series (x: dates or numbers); no points at all gives a no-data chart."""
    points = [(x, y) for values in series.values() for x, y in values]
    if not points:
        return Chart(title, caption, None)
    x_dates = isinstance(points[0][0], dt.date)
    xs = [_x_value(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    frame = _Frame((min(xs), max(xs)), (min(0.0, min(ys)), max(ys)))
    parts = frame.axes(x_title, y_title, x_dates)
    for i, (name, values) in enumerate(series.items()):
        coords = " ".join(f"{frame.px(_x_value(x)):.1f},{frame.py(float(y)):.1f}"
                          for x, y in sorted(values, key=lambda p: _x_value(p[0])))
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<polyline class="series" data-series="{escape(name)}" fill="none" '
                     f'stroke="{colour}" stroke-width="2" points="{coords}"/>')
        parts += [f'<circle cx="{xy.split(",")[0]}" cy="{xy.split(",")[1]}" r="2.5" '
                  f'fill="{colour}"/>' for xy in coords.split()]  # a one-point series shows
    parts += _legend(list(series))
    return Chart(title, caption, _svg(title, parts))


def histogram(title: str, caption: str, bins: Sequence[tuple[float, float, int]],
              x_title: str, y_title: str = "customers") -> Chart:
    """Bars of (low, high, count); no bins gives a no-data chart."""
    if not bins:
        return Chart(title, caption, None)
    frame = _Frame((bins[0][0], bins[-1][1]), (0.0, float(max(c for _, _, c in bins))))
    parts = frame.axes(x_title, y_title, False)
    for low, high, count in bins:
        x, top = frame.px(low), frame.py(float(count))
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" '
                     f'width="{max(frame.px(high) - x - 1, 1):.1f}" '
                     f'height="{HEIGHT - BOTTOM - top:.1f}" fill="{COLOURS[0]}">'
                     f"<title>{_label(low, False)} to {_label(high, False)}: {count}</title>"
                     "</rect>")
    return Chart(title, caption, _svg(title, parts))


def calibration_chart(title: str, caption: str, points: Sequence[tuple[float, float]],
                      x_title: str, y_title: str) -> Chart:
    """Predicted against observed, with the diagonal a calibrated model lies on."""
    if not points:
        return Chart(title, caption, None)
    high = max(1e-9, *(max(p) for p in points))
    frame = _Frame((0.0, high), (0.0, high))
    parts = frame.axes(x_title, y_title, False)
    parts.append(f'<line class="diagonal" x1="{frame.px(0):.1f}" y1="{frame.py(0):.1f}" '
                 f'x2="{frame.px(high):.1f}" y2="{frame.py(high):.1f}" stroke="#999" '
                 'stroke-dasharray="4 3"/>')
    parts += [f'<circle class="point" cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="4" '
              f'fill="{COLOURS[3]}"/>' for x, y in points]
    return Chart(title, caption, _svg(title, parts))
