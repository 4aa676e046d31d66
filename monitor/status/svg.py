"""Sparklines and latency charts as inline SVG, rendered on the server.

Hand-written rather than a charting library: the page must read without
JavaScript and without a build, and what it needs is a few polylines, grid lines
and labels — some forty lines of SVG text, where a plotting library would bring a
large dependency to draw the same. Every value placed in the markup is a number we
formatted or passes through markupsafe.escape, so no text from a server reaches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

Point = tuple[datetime, float | None]  # None: no observation (a gap, drawn as one)


@dataclass(frozen=True)
class Series:
    name: str  # shown in the legend
    css: str  # class of its line: p50, p95, run
    points: Sequence[Point]


def _segments(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive observed points; a None breaks the line."""
    out: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if out[-1]:
                out.append([])
        else:
            out[-1].append((x, y))
    return [s for s in out if s]


def _polyline(segment: Sequence[tuple[float, float]], css: str) -> str:
    coordinates = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
    return f'<polyline class="{escape(css)}" points="{coordinates}"/>'


def sparkline(values: Sequence[float | None], *, width: int = 120, height: int = 24,
              label: str = "latency") -> Markup:
    """A small line of values, evenly spaced; gaps stay gaps. Empty when nothing observed."""
    known = [v for v in values if v is not None]
    if not known:
        return Markup(f'<svg class="spark empty" width="{width}" height="{height}" '
                      f'role="img" aria-label="{escape(label)}: no data"></svg>')
    top = max(known) or 1.0
    step = width / max(len(values) - 1, 1)
    scaled = [(i * step, None if v is None else height - 2 - (height - 4) * v / top)
              for i, v in enumerate(values)]
    lines = "".join(_polyline(s, "spark-line") if len(s) > 1 else
                    f'<circle class="spark-line" cx="{s[0][0]:.1f}" cy="{s[0][1]:.1f}" r="1.5"/>'
                    for s in _segments(scaled))
    return Markup(f'<svg class="spark" width="{width}" height="{height}" '
                  f'viewBox="0 0 {width} {height}" role="img" '
                  f'aria-label="{escape(label)}, up to {top:.0f} ms">{lines}</svg>')


def _nice_top(value: float) -> float:
    """The axis top: the first of 1, 2, 5 * 10^n at or above `value`."""
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value and magnitude > 1:
        magnitude /= 10
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude


def _ms(value: float) -> str:
    return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"


def chart(series: Sequence[Series], start: datetime, end: datetime, *, title: str,
          width: int = 720, height: int = 220, ticks: timedelta = timedelta(hours=6),
          tick_format: str = "%H:%M") -> Markup:
    """A latency chart over [start, end]: one polyline per series, points at each
    observation, a y axis in ms from 0 and time ticks every `ticks`."""
    left, right, top_pad, bottom = 56, 8, 10, 24
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    values = [y for s in series for _, y in s.points if y is not None]
    top = _nice_top(max(values) * 1.05) if values else 1.0
    span = (end - start).total_seconds() or 1.0

    def x(at: datetime) -> float:
        return left + plot_w * (at - start).total_seconds() / span

    def y(ms: float) -> float:
        return top_pad + plot_h * (1 - ms / top)

    parts = [f'<svg class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for i in range(5):  # horizontal grid and the y labels
        ms = top * i / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" '
                     f'y1="{y(ms):.1f}" y2="{y(ms):.1f}"/>'
                     f'<text class="axis" x="{left - 4}" y="{y(ms) + 4:.1f}" '
                     f'text-anchor="end">{escape(_ms(ms))}</text>')
    tick = start.replace(minute=0, second=0, microsecond=0)
    while tick <= end:
        if tick >= start:
            parts.append(f'<text class="axis" x="{x(tick):.1f}" y="{height - 6}" '
                         f'text-anchor="middle">{escape(tick.strftime(tick_format))}</text>')
        tick += ticks
    if not values:
        parts.append(f'<text class="axis" x="{left + plot_w / 2:.1f}" '
                     f'y="{top_pad + plot_h / 2:.1f}" text-anchor="middle">no data</text>')
    for s in series:
        scaled = [(x(at), None if ms is None else y(ms)) for at, ms in s.points
                  if start <= at <= end]
        for segment in _segments(scaled):
            parts.append(_polyline(segment, f"series {s.css}"))
            parts += [f'<circle class="point {escape(s.css)}" cx="{px:.1f}" cy="{py:.1f}" '
                      f'r="2"/>' for px, py in segment]
    legend = "".join(f'<tspan class="legend {escape(s.css)}" dx="12">— {escape(s.name)}</tspan>'
                     for s in series)
    parts.append(f'<text class="axis" x="{width - right - 4}" y="{top_pad + 8}" '
                 f'text-anchor="end">{legend}</text></svg>')
    return Markup("".join(parts))
