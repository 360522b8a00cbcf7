"""Bar charts as geometry for inline SVG, drawn by ``_chart.html`` (no script, no
style attribute: the CSP allows neither; SVG presentation attributes are markup). Every chart
is also given as a table, its text alternative."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 220
LEFT = 48
BOTTOM = 28
TOP = 12
COLOURS = {"allowed": "#2e7d4f", "denied": "#b3261e", "epsilon": "#2f5d9e"}


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    labels: list[str]
    series: list[tuple[str, list[float]]]
    bars: list[Bar]
    peak: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = BOTTOM
    top: int = TOP

    @property
    def legend(self) -> list[tuple[str, str]]:
        return [(name, COLOURS.get(name, "#555555")) for name, _ in self.series]

    @property
    def rows(self) -> list[tuple[str, list[float]]]:
        """The table: per label, each series' value."""
        return [(label, [s[1][i] for s in self.series]) for i, label in enumerate(self.labels)]

    @property
    def tick_labels(self) -> list[tuple[float, str]]:
        """At most eight labels along the axis, evenly spread."""
        if not self.labels:
            return []
        step = max(1, len(self.labels) // 8)
        slot = (self.width - self.left) / len(self.labels)
        return [
            (self.left + slot * (i + 0.5), label)
            for i, label in enumerate(self.labels)
            if i % step == 0
        ]


def _number(value: float) -> str:
    return f"{value:g}"


def bar_chart(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]
) -> Chart:
    """Grouped bars, one group per label, one bar per series, scaled to the largest value."""
    values = [[float(v) for v in vs] for _, vs in series]
    peak = max((v for vs in values for v in vs), default=0.0)
    scale = peak or 1.0
    plot_width = WIDTH - LEFT
    plot_height = HEIGHT - BOTTOM - TOP
    slot = plot_width / max(1, len(labels))
    bar_width = slot * 0.8 / max(1, len(series))
    bars = []
    for s, (name, _) in enumerate(series):
        for i, label in enumerate(labels):
            value = values[s][i]
            height = plot_height * value / scale
            bars.append(
                Bar(
                    x=LEFT + slot * i + slot * 0.1 + bar_width * s,
                    y=TOP + plot_height - height,
                    width=bar_width,
                    height=height,
                    colour=COLOURS.get(name, "#555555"),
                    label=f"{label}: {_number(value)} {name}",
                )
            )
    return Chart(
        title,
        list(labels),
        [(name, values[s]) for s, (name, _) in enumerate(series)],
        bars,
        peak,
    )
