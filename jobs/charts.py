"""The run report's charts as inline SVG strings (no files, no JavaScript): bars, a scatter coloured by group with
group labels, and lines over time with marked points. Pure Python on small driver-side lists."""

from __future__ import annotations

import html
from collections.abc import Sequence

# Tableau 10: distinguishable colours for up to ten groups; further groups reuse them.
PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
           "#bab0ac"]  # fmt: skip


def bars(items: Sequence[tuple[str, float]], width: int = 640, bar: int = 18) -> str:
    """Horizontal bar chart."""
    if not items:
        return "<p>(no data)</p>"
    top = max(v for _, v in items) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        w = (width - 260) * value / top
        y = i * (bar + 4)
        rows.append(
            f'<text x="0" y="{y + bar - 4}" font-size="12">{html.escape(str(label))}</text>'
            f'<rect x="170" y="{y}" width="{w:.1f}" height="{bar}" fill="{PALETTE[0]}"/>'
            f'<text x="{175 + w:.1f}" y="{y + bar - 4}" font-size="12">{value:g}</text>'
        )
    return f'<svg width="{width}" height="{len(items) * (bar + 4)}">{"".join(rows)}</svg>'


def _scale(values: Sequence[float], lo_px: float, hi_px: float):
    lo, hi = min(values), max(values)
    return lambda v: lo_px + (hi_px - lo_px) * (v - lo) / ((hi - lo) or 1)


def scatter(points: Sequence[tuple[float, float, int]], labels: dict[int, str] | None = None, size: int = 460) -> str:
    """Points (x, y, group) coloured by group; each labelled group's name at the median of its points."""
    if not points:
        return "<p>(no user vectors)</p>"
    sx = _scale([p[0] for p in points], 10, size - 10)
    sy = _scale([p[1] for p in points], size - 10, 10)
    dots = "".join(
        f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{PALETTE[g % len(PALETTE)]}" fill-opacity="0.6"/>'
        for x, y, g in points
    )
    names = []
    for group, label in (labels or {}).items():
        mine = [p for p in points if p[2] == group]
        if mine:
            x = sorted(p[0] for p in mine)[len(mine) // 2]
            y = sorted(p[1] for p in mine)[len(mine) // 2]
            names.append(
                f'<text x="{sx(x):.1f}" y="{sy(y):.1f}" font-size="11" font-weight="bold" paint-order="stroke" '
                f'stroke="white" stroke-width="3" fill="{PALETTE[group % len(PALETTE)]}">{html.escape(label)}</text>'
            )
    return f'<svg width="{size}" height="{size}" style="border:1px solid #ccc">{dots}{"".join(names)}</svg>'


def lines(series: dict[str, list[tuple[str, float, bool]]], width: int = 720, height: int = 300) -> str:
    """One line per series over shared x labels (e.g. periods, in order): (x label, value, marked); marked points
    (alerts) get a red ring. A legend names the series."""
    xs = sorted({x for points in series.values() for x, _, _ in points})
    if not xs:
        return "<p>(no data)</p>"
    ys = [v for points in series.values() for _, v, _ in points]
    sx = {x: 40 + (width - 60) * i / max(len(xs) - 1, 1) for i, x in enumerate(xs)}
    sy = _scale([0.0, *ys], height - 20, 10)
    parts = [f'<text x="0" y="14" font-size="11">{max(ys):.2f}</text>',
             f'<text x="40" y="{height - 4}" font-size="11">{html.escape(xs[0])}</text>',
             f'<text x="{width - 90}" y="{height - 4}" font-size="11">{html.escape(xs[-1])}</text>']  # fmt: skip
    for n, (name, points) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        path = " ".join(f"{sx[x]:.1f},{sy(v):.1f}" for x, v, _ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts += [f'<circle cx="{sx[x]:.1f}" cy="{sy(v):.1f}" r="5" fill="none" stroke="#d62728" stroke-width="2"/>'
                  for x, v, marked in points if marked]  # fmt: skip
        parts.append(
            f'<text x="{width + 10}" y="{16 + 15 * n}" font-size="11" fill="{colour}">{html.escape(name)}</text>'
        )
    return f'<svg width="{width + 320}" height="{max(height, 20 + 15 * len(series))}">{"".join(parts)}</svg>'
