"""``harness report DIR``: report.md, a self-contained report.html, figures/*.png and
tables/*.tex, from the Parquet data alone.

The report has an overview (status, cost), one section per family present in the data
(registered with :func:`section`; each reproduces that paper's tables and figures and gives
a verdict per published claim), and the provenance of the runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..store import Store
from .document import Document, Figure, Table, to_html, to_latex, to_markdown

SECTIONS: dict[str, Callable[[ReportContext], list[Any]]] = {}
SECTION_MODULES = ("harness.report.rfm", "harness.report.node", "harness.report.separable")


def section(family: str):
    """Register the report section of ``family`` (a function ReportContext → blocks)."""
    def register(fn):
        SECTIONS[family] = fn
        return fn
    return register


@dataclass
class ReportContext:
    """What a section may use: the latest-attempt cells, their history, and the folder."""

    out: Path
    cells: pd.DataFrame
    history: pd.DataFrame

    @property
    def figures(self) -> Path:
        return self.out / "figures"

    def save_figure(self, fig: Any, name: str, caption: str) -> Figure:
        """Save a matplotlib figure as ``figures/<name>.png`` and close it."""
        import matplotlib.pyplot as plt

        self.figures.mkdir(exist_ok=True)
        path = self.figures / f"{name}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return Figure(path=path, caption=caption)


def write_report(out: str | Path) -> list[Path]:
    """Write the report of output folder ``out``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    from .overview import overview_blocks, provenance_blocks

    for module in SECTION_MODULES:
        importlib.import_module(module)
    out = Path(out)
    store = Store(out)
    ctx = ReportContext(out=out, cells=store.cells(), history=store.history())
    grids = ", ".join(sorted(ctx.cells["grid"].unique())) or out.name
    doc = Document(title=f"Harness report — {grids}")
    doc.add(*overview_blocks(ctx))
    for family in sorted(ctx.cells["family"].dropna().unique()):
        if family in SECTIONS:
            doc.add(*SECTIONS[family](ctx))
    doc.add(*provenance_blocks(ctx))

    written = []
    tables_dir = out / "tables"
    for block in doc.blocks:
        if isinstance(block, Table) and block.name:
            tables_dir.mkdir(exist_ok=True)
            path = tables_dir / f"{block.name}.tex"
            path.write_text(to_latex(block))
            written.append(path)
        elif isinstance(block, Figure):
            written.append(block.path)
    for name, text in (("report.md", to_markdown(doc, out)), ("report.html", to_html(doc))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)
        written.append(out / name)
    return written
