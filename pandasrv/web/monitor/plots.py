"""Geometry of the monitor's stacked bar charts, drawn as inline SVG by ``plots.html``.

Hand-written rather than a charting library: two bar charts are a few rectangles, and inline SVG styled
by the monitor's own style sheet needs neither scripts nor inline styles, so the strict
Content-Security-Policy stays as it is (pygal, the maintained option, writes ``<style>`` and script hooks
into every chart).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Sequence

LABEL_SPACE = 150  # room for the category labels of a horizontal chart
AXIS_SPACE = 40  # room for the value axis labels
BAR_GAP = 0.2  # share of a bar's slot left empty


@dataclass
class Segment:
    state: str
    count: int
    x: float
    y: float
    width: float
    height: float


@dataclass
class Bar:
    label: str
    total: int
    label_x: float
    label_y: float
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Chart:
    width: int
    height: int
    horizontal: bool
    bars: list[Bar]
    ticks: list[tuple[int, float]]  # (value, position along the value axis)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (at least 1): the axis end."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bar_chart(bars: Sequence[tuple[str, dict[str, int]]], states: Sequence[str], *, width: int = 760,
              height: int = 260, horizontal: bool = False, slot: int = 22) -> Chart:
    """Stacked bars, one per ``(label, counts per state)``, segments in ``states`` order.

    A horizontal chart grows with the number of bars (``slot`` pixels each); a vertical one splits
    ``width`` among them. The value axis ends at a round number with three ticks."""
    top = nice_ceiling(max([sum(counts.values()) for _, counts in bars] or [0]))
    if horizontal:
        height = max(len(bars), 1) * slot + AXIS_SPACE
        span, band = width - LABEL_SPACE - 10, float(slot)
    else:
        span, band = height - AXIS_SPACE, (width - AXIS_SPACE) / max(len(bars), 1)
    scale = span / top
    chart = Chart(width, height, horizontal, [], [(v, v * scale) for v in sorted({0, top // 2, top})])
    thickness = band * (1 - BAR_GAP)
    for i, (label, counts) in enumerate(bars):
        start = i * band + band * BAR_GAP / 2
        if horizontal:
            bar = Bar(label, sum(counts.values()), LABEL_SPACE - 6, start + thickness * 0.75)
        else:
            bar = Bar(label, sum(counts.values()), AXIS_SPACE + start + thickness / 2, span + 14)
        offset = 0.0
        for state in states:
            n = counts.get(state, 0)
            if not n:
                continue
            length = n * scale
            if horizontal:
                bar.segments.append(Segment(state, n, LABEL_SPACE + offset, start, length, thickness))
            else:
                bar.segments.append(Segment(state, n, AXIS_SPACE + start, span - offset - length, thickness, length))
            offset += length
        chart.bars.append(bar)
    return chart


def timeline_chart(timeline: Sequence[dict[str, Any]], states: Sequence[str]) -> Chart:
    """The per-hour chart of the plots page; bar labels are the hours' starts (``YYYY-MM-DD HH:MM``)."""
    bars = [(bucket["start"].strftime("%Y-%m-%d %H:%M") if isinstance(bucket["start"], _dt.datetime)
             else str(bucket["start"]), bucket["counts"]) for bucket in timeline]
    return bar_chart(bars, states)


def queue_chart(by_queue: dict[str, dict[str, int]], states: Sequence[str]) -> Chart:
    """The per-queue chart of the plots page, one horizontal bar per queue."""
    return bar_chart(list(by_queue.items()), states, horizontal=True)
