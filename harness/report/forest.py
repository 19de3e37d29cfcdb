"""The scoreboard's forest plot: every verdict's estimate and 95% interval against its own
criterion, one row per verdict, coloured as its badge.

Claims are on different scales (ratios around 1, reductions in %, differences around 0),
so each row is drawn relative to its own threshold, turned so that the claim's side is
always to the right: a row whose estimate and threshold are positive as the estimate ÷ the
threshold (inverted for an at-most claim) on a log axis compressed far from 1, any other as
its distance from the threshold in half widths of its interval. The threshold is then the
same vertical line on every row, and a bar clear of it on the right is a claim that holds.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

import numpy as np

from .document import TONES, Figure, Verdict

if TYPE_CHECKING:
    from . import ReportContext

FIGURE = "scoreboard-estimates"
MAX_FACTOR = 1000.0  # the ratio axis stops at ×/÷ this; a bar beyond ends in an arrow
MAX_DISTANCE = 20.0  # the distance axis stops at ± this many half widths
ROW_INCHES = 0.42  # two lines of label per row


def forest_figure(rows: list[tuple[int, Verdict]], ctx: ReportContext) -> Figure | None:
    """The plot of ``rows`` (the scoreboard's number, the verdict), saved with ``ctx`` as
    ``figures/scoreboard-estimates.png``; None when no verdict has a number to draw. The
    caption says what the x axes are and which rows are not drawn, and why."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ratio, distance, left_out = [], [], []
    for n, v in rows:
        placed = position(v)
        if isinstance(placed, str):
            left_out.append(f"#{n} ({placed})")
        else:
            (ratio if placed[0] == "ratio" else distance).append((n, v, *placed[1:]))
    panels = [(name, p) for name, p in (("ratio", ratio), ("distance", distance)) if p]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, layout="constrained", figsize=(
        10, 0.9 * len(panels) + ROW_INCHES * (len(ratio) + len(distance)) + 0.4),
        gridspec_kw={"height_ratios": [len(p) + 1.2 for _, p in panels]})
    for ax, (name, drawn) in zip(axes[:, 0], panels, strict=True):
        _draw(ax, name, drawn)
    for x, ha, text in ((0.49, "right", "← against the claim"),
                        (0.51, "left", "the claim's side →")):  # the threshold is the middle
        axes[0, 0].text(x, 1.02, text, ha=ha, va="bottom", fontsize=9, color="#555",
                        transform=axes[0, 0].transAxes)
    tones = {v.outcome: v.tone for _, drawn in panels for _, v, *_ in drawn}
    fig.legend(handles=[Patch(color=TONES[t], label=o) for o, t in tones.items()],
               loc="outside lower center", ncol=len(tones), fontsize=8, frameon=False)
    return ctx.save_figure(fig, FIGURE, _caption([name for name, _ in panels],
                                                 any(v.kind == "bounds" for _, v in rows),
                                                 left_out))


def position(v: Verdict) -> tuple[str, float, float, float] | str:
    """Where a verdict's row is drawn: (axis, x of the estimate, x of its interval's low and
    high ends), the claim's side to the right; the axis is ``ratio`` (estimate ÷ threshold,
    inverted for an at-most claim) when the estimate, its interval and the threshold are
    positive, else ``distance`` ((estimate − threshold) ÷ the interval's half width,
    negated for an at-most claim). A row without an interval is a point on the ratio axis;
    off it, it is not drawn: then why, as a string."""
    if v.value is None or v.threshold is None:
        return "no estimate" if v.value is None else "no threshold"
    sign = -1 if v.op in ("<", "<=") else 1
    ends = [v.low, v.high] if v.low is not None and v.high is not None else []
    points, t = [v.value, *ends], v.threshold
    if not all(math.isfinite(p) for p in [*points, t]):
        return "not a finite number"
    if t > 0 and all(p > 0 for p in points):
        axis, xs = "ratio", [(p / t) ** sign for p in points]
    elif ends and ends[1] > ends[0]:
        half = (ends[1] - ends[0]) / 2
        axis, xs = "distance", [sign * (p - t) / half for p in points]
    else:
        return "no interval" if not ends else "an interval of no width"
    return axis, xs[0], min(xs), max(xs)


def _draw(ax, name: str, drawn: list[tuple[int, Verdict, float, float, float]]) -> None:
    """One panel: a row per verdict, top to bottom in the scoreboard's order."""
    centre, cap = (1.0, MAX_FACTOR) if name == "ratio" else (0.0, MAX_DISTANCE)
    if name == "ratio":
        # log near 1, compressed further out: a few per cent and a factor of 100 both show
        ax.set_xscale("function", functions=(_squash, _unsquash))
        reach = max([max(x, 1 / x) for _, _, *xs in drawn for x in xs] + [1.25])
        lim = min(float(_unsquash(1.08 * _squash(reach) + 0.15)), cap)  # a margin for dots
        bounds = (1 / lim, lim)
        ax.set_xticks([t for t in _RATIO_TICKS if bounds[0] <= t <= bounds[1]])
        ax.xaxis.set_major_formatter(lambda x, _: f"{x:g}")
        ax.set_xlabel("estimate ÷ threshold (threshold ÷ estimate for an at-most claim); "
                      "log scale near 1, compressed further out", fontsize=8)
    else:
        lim = min(1.1 * max([abs(x) for _, _, *xs in drawn for x in xs] + [2.0]) + 0.5, cap)
        bounds = (-lim, lim)
        ax.set_xlabel("(estimate − threshold) ÷ half width of its interval (negated for an "
                      "at-most claim)", fontsize=8)
    ax.set_xlim(*bounds)
    ax.axvspan(centre, bounds[1], color=TONES["green"], alpha=0.06, lw=0)
    ax.axvline(centre, color="#222", lw=1)
    for y, (_, v, x, low, high) in enumerate(drawn):
        colour = TONES[v.tone]
        ax.hlines(y, max(low, bounds[0]), min(high, bounds[1]), color=colour, lw=3.5,
                  linestyles="dashed" if v.kind == "bounds" else "solid")
        ax.plot([centre], [y], marker="|", ms=16, mew=2, color="#222")
        ax.plot([min(max(x, bounds[0]), bounds[1])], [y], "o", ms=7, color=colour,
                mec="white", clip_on=False)
        for end, edge, marker in ((low, bounds[0], "<"), (high, bounds[1], ">")):
            if (end < edge) if marker == "<" else (end > edge):
                ax.plot([edge], [y], marker=marker, ms=8, color=colour, clip_on=False)
        if not bounds[0] <= x <= bounds[1]:  # the dot is at the edge: say where it is
            ax.annotate(f"{x:.3g}", (min(max(x, bounds[0]), bounds[1]), y),
                        xytext=(-6 if x > centre else 6, 7), textcoords="offset points",
                        ha="right" if x > centre else "left", fontsize=7, color=colour)
    ax.set_yticks(range(len(drawn)), [_label(n, v) for n, v, *_ in drawn], fontsize=8)
    ax.set_ylim(len(drawn) - 0.5, -0.7)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#ddd", lw=0.6)
    ax.set_axisbelow(True)


# the ratio axis: asinh of the log factor in units of 10%, so linear in log within about
# ±10% of the threshold and logarithmic in the log beyond
_SCALE = 0.1
_RATIO_TICKS = (0.001, 0.1, 0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 10, 1000)


def _squash(x):
    return np.arcsinh(np.log(np.clip(x, 1e-300, None)) / _SCALE)


def _unsquash(y):
    return np.exp(_SCALE * np.sinh(y))


def _label(n: int, v: Verdict, width: int = 50) -> str:
    """``7. The method's test error is comparable …`` over ``method[k=2] (problem, n = 512)``:
    the claim's start on one line, its configuration and scope (which tell rows apart) on
    the next; a claim without them gets two lines."""
    scope = v.scope.replace("`", "")
    text = v.label or v.claim
    claim = text[:len(text) - len(v.scope)].rstrip(" —") if v.scope and text.endswith(
        v.scope) else text
    lines = textwrap.wrap(f"{n}. " + claim.replace("`", ""), width,
                          max_lines=1 if scope else 2, placeholder=" …")
    return "\n".join(lines + ([textwrap.shorten(scope, width, placeholder=" …")] if scope
                              else []))


def _caption(panels: list[str], bounds: bool, left_out: list[str]) -> str:
    axes = {"ratio": "the estimate ÷ its threshold, inverted for an at-most claim, on an axis "
                     "that is logarithmic within about 10% of the threshold and compressed "
                     "further out, so that a few per cent and a factor of 100 both show (rows "
                     "whose estimate and threshold are positive)",
            "distance": "the estimate's distance from its threshold in half widths of its "
                        "interval, negated for an at-most claim (the other rows)"}
    where = ("Top: " + axes["ratio"] + "; bottom: " + axes["distance"]) if len(panels) == 2 \
        else "x: " + axes[panels[0]]
    return (f"The scoreboard's estimates (dot) and 95% intervals (bar) against each claim's "
            f"own criterion, numbered and coloured as in the table. {where}. The threshold "
            f"is the black line and the claim's side is to its right (shaded): a bar wholly "
            f"right of it holds, wholly left fails. A claim of several items shows the item "
            f"its verdict prints; an arrow: the interval runs on past the axis."
            + (" Dashed: bounds, not a confidence interval." if bounds else "")
            + (f" Not drawn: {', '.join(left_out)}." if left_out else ""))
