"""The run report's charts: matplotlib figures rendered to PNG and embedded as data URIs, so the report stays one
self-contained file that opens offline and in Databricks `displayHTML`. Pure Python on small driver-side lists.

Figures are built with `matplotlib.figure.Figure`, not pyplot: no global state, no GUI backend, and a notebook's
own backend is left alone.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cache, wraps
from typing import ParamSpec

from matplotlib import font_manager, rc_context
from matplotlib.figure import Figure

log = logging.getLogger(__name__)


def empty(why: str = "no data in this run") -> str:
    """What a section shows instead of a chart: why there is none."""
    return f"<p class='empty'>({html.escape(why)})</p>"


EMPTY = empty()
# Colours for the models compared in the quality chart: ours first and strongest.
MODEL_COLOURS = {"behaviorlm": "#4c78a8", "popularity": "#bab0ac", "als": "#f58518"}
MAX_LABEL = 48
# Labels hold item titles and segment terms in any language: CJK falls back to these fonts where installed (`make
# test` installs Debian's fonts-droid-fallback); a glyph no font has is drawn as a box, never an error, and said once.
FALLBACK_FONTS = ("Droid Sans Fallback", "Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei")
_GLYPH = re.compile(r"Glyph (\d+) .*missing from font")
_unfonted: set[str] = set()  # characters said to have no font, so the warning comes once per process
_shown: dict = {}  # other warnings' registry: each shown once per place, as Python's default filter does


@cache
def _fonts() -> list[str]:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(name for name in FALLBACK_FONTS if name in installed)]


P = ParamSpec("P")


def _chart(draw: Callable[P, str]) -> Callable[P, str]:
    """Draw with the fallback fonts, a missing glyph being a box and one log line rather than a warning per label."""

    @wraps(draw)
    def drawn(*args: P.args, **kwargs: P.kwargs) -> str:
        with rc_context({"font.family": _fonts()}), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = draw(*args, **kwargs)
        missing = {chr(int(m.group(1))) for w in caught if (m := _GLYPH.search(str(w.message)))}
        for w in caught:
            if not _GLYPH.search(str(w.message)):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, registry=_shown)
        if missing - _unfonted:
            _unfonted.update(missing)
            shown = "".join(sorted(missing)[:10])
            log.warning("report charts: no installed font draws %s, shown as boxes; install one that does (Debian: "
                        "fonts-noto-cjk or fonts-droid-fallback for Chinese and Japanese)", shown)  # fmt: skip
        return out

    return drawn


def _png(fig: Figure, alt: str) -> str:
    """The figure as an <img> with a base64 PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img class='chart' alt='{html.escape(alt, quote=True)}' src='data:image/png;base64,{data}'/>"


def _short(text: str, width: int = MAX_LABEL) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@_chart
def grouped_bars(metrics: Mapping[str, Mapping[str, float]], anchors: Mapping[str, Mapping[str, float]] | None = None,
                 alt: str = "quality") -> str:  # fmt: skip
    """One panel per metric (each on its own scale) with a bar per model, values printed on the bars; `anchors`
    (metric -> {name: value}) are drawn as dashed reference lines."""
    if not metrics:
        return EMPTY
    cols = min(len(metrics), 4)
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (metric, values) in zip(axes, metrics.items()):
        names = list(values)
        colours = [MODEL_COLOURS.get(n, "#72b7b2") for n in names]
        bars = ax.bar(names, [values[n] for n in names], color=colours)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        marks = (anchors or {}).get(metric, {})
        for (name, value), style in zip(marks.items(), ("--", ":", "-.")):
            ax.axhline(value, linestyle=style, linewidth=1, color="#555555", label=f"{name} {value:.3g}")
        if marks:
            # Headroom above the bars and lines for the legend, so it covers neither.
            ax.set_ylim(0, 1.45 * max([*values.values(), *marks.values()]))
            ax.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)
        ax.set_title(metric, fontsize=10)
        ax.margins(y=0.2)
        ax.tick_params(axis="x", labelsize=8)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return _png(fig, alt)


@_chart
def stage_bars(seconds: Mapping[str, float], previous: Mapping[str, float] | None = None,
               notes: Mapping[str, str] | None = None, alt: str = "stages") -> str:  # fmt: skip
    """Seconds per stage, this run beside the previous run of the same tables; a bar's note (its rows) after it."""
    if not seconds:
        return EMPTY
    stages = list(seconds)
    fig = Figure(figsize=(8, 0.45 * len(stages) + 1))
    ax = fig.subplots()
    ys = range(len(stages))
    height = 0.4 if previous else 0.7
    bars = ax.barh([y - (height / 2 if previous else 0) for y in ys], [seconds[s] for s in stages], height=height,
                   color=MODEL_COLOURS["behaviorlm"], label="this run")  # fmt: skip
    labels = [f"{seconds[s]:.1f}s" + (f" · {notes[s]}" if notes and s in notes else "") for s in stages]
    ax.bar_label(bars, labels=labels, fontsize=8, padding=3)
    if previous:
        ax.barh([y + height / 2 for y in ys], [previous.get(s, 0.0) for s in stages], height=height,
                color=MODEL_COLOURS["popularity"], label="previous run")  # fmt: skip
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(list(ys), stages, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.margins(x=0.25)
    fig.tight_layout()
    return _png(fig, alt)


@_chart
def hbars(items: Sequence[tuple[str, float]], xlabel: str = "", alt: str = "bars") -> str:
    """Horizontal bars, one per (label, value), in the given order, values printed at the ends."""
    if not items:
        return EMPTY
    fig = Figure(figsize=(8, 0.3 * len(items) + 1))
    ax = fig.subplots()
    bars = ax.barh(range(len(items)), [v for _, v in items], color=MODEL_COLOURS["behaviorlm"])
    ax.bar_label(bars, fmt="%g", fontsize=8, padding=3)
    ax.set_yticks(range(len(items)), [_short(str(k)) for k, _ in items], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.margins(x=0.15)
    fig.tight_layout()
    return _png(fig, alt)


@_chart
def histogram(bins: Sequence[tuple[float, int]], width: float, xlabel: str, alt: str = "histogram") -> str:
    """Counts per bin, (bin start, count), bins of equal `width`."""
    if not any(n for _, n in bins):
        return EMPTY
    fig = Figure(figsize=(7, 2.6))
    ax = fig.subplots()
    ax.bar([lo for lo, _ in bins], [n for _, n in bins], width=width, align="edge", color=MODEL_COLOURS["behaviorlm"],
           edgecolor="white")  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs")
    fig.tight_layout()
    return _png(fig, alt)


@_chart
def scatter(points: Sequence[tuple[float, float, int]], labels: Mapping[int, str] | None = None,
            alt: str = "map") -> str:  # fmt: skip
    """Points (x, y, group) coloured by group (grey: none); each labelled group's name at the median of its points."""
    if not points:
        return EMPTY
    fig = Figure(figsize=(7.5, 6))
    ax = fig.subplots()
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=6, alpha=0.6,
               c=[f"C{g % 10}" if g >= 0 else "#bbbbbb" for _, _, g in points])  # fmt: skip
    for group, label in (labels or {}).items():
        mine = sorted(p for p in points if p[2] == group)
        if mine:
            x, y = mine[len(mine) // 2][0], sorted(p[1] for p in mine)[len(mine) // 2]
            ax.annotate(_short(label, 36), (x, y), fontsize=8, fontweight="bold", color=f"C{group % 10}",
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8})  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    fig.tight_layout()
    return _png(fig, alt)


@_chart
def lines(series: Mapping[str, Sequence[tuple[str, float, bool]]], ylabel: str = "", alt: str = "lines") -> str:
    """One line per series over shared x labels in order (x label, value, marked); marked points (alerts) ringed
    in red. A legend names the series."""
    xs = sorted({x for points in series.values() for x, _, _ in points})
    if not xs:
        return EMPTY
    pos = {x: i for i, x in enumerate(xs)}
    fig = Figure(figsize=(9, 3.6))
    ax = fig.subplots()
    for name, points in series.items():
        ax.plot([pos[x] for x, _, _ in points], [v for _, v, _ in points], marker=".", label=_short(name, 40))
        marked = [(pos[x], v) for x, v, m in points if m]
        if marked:
            ax.scatter(*zip(*marked), s=90, facecolors="none", edgecolors="#d62728", linewidths=1.8, zorder=3)
    step = max(1, len(xs) // 8)
    ax.set_xticks(range(0, len(xs), step), xs[::step], fontsize=8, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return _png(fig, alt)
