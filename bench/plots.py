"""Line plots as hand-written SVG: the report's curves (rate against history size, rate against W).

A few dozen points per plot need no plotting library; plain SVG keeps `make bench` free of a large
dependency and the files readable in any browser and in the repository's web view.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from bench.figures import Series

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 180, 30, 50
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def _label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def svg(title: str, series: list[Series]) -> str:
    """One plot of the series given, which share their axes' labels; the y axis starts at 0."""
    points = [p for s in series for p in s.points]
    if not points:
        raise ValueError(f"{title}: no points to plot")
    x_low, x_high = min(x for x, _ in points), max(x for x, _ in points)
    y_high = max(max(y for _, y in points), 1e-9) * 1.1
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - y / y_high * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" '
             f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>']
    for x in _ticks(x_low, x_high):
        parts.append(f'<text x="{sx(x):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{_label(x)}</text>')
    for y in _ticks(0, y_high):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{_label(y)}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 12}" text-anchor="middle">'
                 f'{escape(series[0].x_label)}</text>')
    parts.append(f'<text transform="translate(16 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
                 f'{escape(series[0].y_label)}</text>')
    for index, line in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(line.points))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>' for x, y in line.points)
        legend_y = TOP + 14 + index * 18
        parts.append(f'<line x1="{LEFT + plot_w + 10}" x2="{LEFT + plot_w + 30}" y1="{legend_y - 4}" '
                     f'y2="{legend_y - 4}" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{LEFT + plot_w + 34}" y="{legend_y}">{escape(line.name)}</text>')
    parts.append("</svg>\n")
    return "\n".join(parts)


def write_plots(series: list[Series], out_dir: Path, prefix: str = "report") -> list[Path]:
    """One SVG file per pair of axes: the series that share them (rate against history size, rate against W) are
    drawn in one plot."""
    by_axes: dict[tuple[str, str], list[Series]] = {}
    for line in series:
        if line.points:
            by_axes.setdefault((line.y_label, line.x_label), []).append(line)
    written = []
    for (y_label, x_label), lines in by_axes.items():
        slug = "".join(c if c.isalnum() else "-" for c in f"{y_label} vs {x_label}".lower())
        path = out_dir / f"{prefix}-{'-'.join(filter(None, slug.split('-')))}.svg"
        path.write_text(svg(f"{y_label} against {x_label}", lines))
        written.append(path)
    return written
