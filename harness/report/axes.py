"""The one look of the report's line plots: log scales, labels, a light grid, a legend."""

from __future__ import annotations

from typing import Any


def style_axes(ax: Any, xlabel: str, ylabel: str, *, xlog: int | None = None,
               ylog: bool = True, legend: int | None = 7, ncol: int = 1) -> None:
    """Label ``ax``; ``xlog`` is the base of a log x axis (None: linear); ``ylog`` a log y
    axis; ``legend`` the legend's font size (None: no legend)."""
    if xlog:
        ax.set_xscale("log", base=xlog)
    if ylog:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if legend:
        ax.legend(fontsize=legend, ncol=ncol)
