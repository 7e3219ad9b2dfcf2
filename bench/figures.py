"""What a benchmark section hands to the report: figures measured beside their references, and series to plot.

`make bench` runs several sections (each a module of `bench/` with a `section(options) -> Section` function)
and writes `bench/report.md` and `bench/report.json` from what they return. A figure always carries the
samples of its reference measured in the same run, so the ratio survives a noisy, shared machine.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunOptions:
    """What every section is told: quick mode (the whole report in under 5 minutes), repeats, backend."""

    quick: bool = True
    repeats: int = 3
    backend: str = "postgresql"


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank rule, which needs no interpolation between samples."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Figure:
    """One measured quantity: its samples over repeated runs, and the reference's samples from the same run.

    `target` is the ratio (or, with no reference, the absolute value) the issue asks for; `higher_is_better`
    says which way the target points (a rate: higher; a latency or RSS: lower).
    """

    name: str
    unit: str
    samples: list[float]
    reference: str | None = None
    reference_samples: list[float] = field(default_factory=list)
    target: float | None = None
    higher_is_better: bool = True
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return quantile(self.samples, 0.95)

    @property
    def reference_median(self) -> float | None:
        return statistics.median(self.reference_samples) if self.reference_samples else None

    @property
    def ratio(self) -> float | None:
        """Median over the reference's median: the figure the targets are written in."""
        ref = self.reference_median
        return self.median / ref if ref else None

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        value = self.ratio if self.reference_samples else self.median
        if value is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(median=self.median, p50=self.median, p95=self.p95,
                    reference_median=self.reference_median, ratio=self.ratio, met=self.met)
        return data


@dataclass
class Series:
    """A curve for the report's plots: y against x (rate against history size, or against W)."""

    name: str
    x_label: str
    y_label: str
    points: list[tuple[float, float]]


@dataclass
class Section:
    """What one benchmark module measured."""

    title: str
    figures: list[Figure] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
