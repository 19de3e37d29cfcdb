"""``harness report DIR [--out OUT]``: report.md, a self-contained report.html,
figures/*.png and tables/*.tex, from the Parquet data alone, into OUT (default: DIR).

The report opens with the scoreboard (``harness.report.scoreboard``: a row per verdict,
a forest plot of their estimates, the claims the grid does not cover), then has an overview
(status, cost), one section per family present in the data, and the provenance of the
runs. A family's section is the one its declaration names
(``harness.family``: it reproduces that paper's tables and figures), else the generic one
(``harness.report.generic``); both end in a verdict per claim (``harness.report.claims``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import atomic
from ..audit import TIMING_FLAG, timing_flags
from ..family import family_of
from ..folder import OutputFolder
from ..looks import LookPlan, load
from ..store import Store
from .claims import check_claim_dirs
from .document import Document, Figure, Table, Verdict, to_html, to_latex, to_markdown
from .scoreboard import scoreboard


@dataclass
class ReportContext:
    """What a section may use: the latest-attempt cells, their history, the folder, the
    user's claims folders (``--claims``), and where the report goes (``to``: ``out``
    unless ``--out`` says otherwise)."""

    out: Path
    cells: pd.DataFrame
    history: pd.DataFrame
    claim_dirs: tuple[Path, ...] = field(default_factory=tuple)
    to: Path | None = None
    looks: LookPlan | None = None  # the folder was run until conclusive: judge look by look
    draw: bool = True  # False: verdicts only, figures are not rendered

    @property
    def figures(self) -> Path:
        return OutputFolder(self.to or self.out).figures_dir

    def save_figure(self, fig: Any, name: str, caption: str) -> Figure:
        """Save a matplotlib figure as ``figures/<name>.png`` and close it."""
        import matplotlib.pyplot as plt

        path = self.figures / f"{name}.png"
        if self.draw:
            self.figures.mkdir(exist_ok=True)
            fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return Figure(path=path, caption=caption)


def with_timing_flags(cells: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with ``timing_flag``: the placement audit's finding per cell (None when
    clean), which keeps a contaminated timing out of every timing verdict."""
    cells = cells.copy()
    cells[TIMING_FLAG] = timing_flags(cells)
    return cells


def _sections(ctx: ReportContext) -> list[Any]:
    """The report's body: overview, a section per family present, provenance."""
    from .generic import generic_section
    from .overview import overview_blocks, provenance_blocks

    body = [*overview_blocks(ctx)]
    for name in sorted(ctx.cells["family"].dropna().unique()):
        family = family_of(name)
        section = family.section_function() or generic_section
        body += section(ctx, family)
    return body + provenance_blocks(ctx)


def _context(out: Path, claim_dirs: tuple[str | Path, ...], to: Path | None,
             draw: bool = True) -> ReportContext:
    import matplotlib

    matplotlib.use("Agg")
    check_claim_dirs(Path(d) for d in claim_dirs)
    store = Store(out)
    return ReportContext(out=out, cells=with_timing_flags(store.cells()),
                         history=store.history(), claim_dirs=tuple(Path(d) for d in claim_dirs),
                         to=to, looks=load(OutputFolder(out)), draw=draw)


def folder_verdicts(out: str | Path, claim_dirs: tuple[str | Path, ...] = ()) -> list[Verdict]:
    """The verdicts the report of ``out`` would print, judged the same way, without writing
    anything (a run until conclusive judges with this after every batch)."""
    ctx = _context(Path(out), claim_dirs, None, draw=False)
    return [b for b in _sections(ctx) if isinstance(b, Verdict)]


def write_report(out: str | Path, claim_dirs: tuple[str | Path, ...] = (),
                 to: str | Path | None = None) -> list[Path]:
    """Write the report of output folder ``out`` into folder ``to`` (default: ``out``),
    judging the families' published claims and those in ``claim_dirs``; returns the files
    written."""
    out = Path(out)
    to = Path(to) if to is not None else out
    to.mkdir(parents=True, exist_ok=True)
    ctx = _context(out, claim_dirs, to)
    grids = ", ".join(sorted(ctx.cells["grid"].unique())) or out.name
    doc = Document(title=f"Harness report — {grids}")
    body = _sections(ctx)
    doc.add(*scoreboard([b for b in body if isinstance(b, Verdict)], ctx), *body)

    written = []
    tables_dir = OutputFolder(to).tables_dir
    for block in doc.blocks:
        if isinstance(block, Table) and block.name:
            tables_dir.mkdir(exist_ok=True)
            path = tables_dir / f"{block.name}.tex"
            path.write_text(to_latex(block))
            written.append(path)
        elif isinstance(block, Figure):
            written.append(block.path)
    documents = OutputFolder(to).documents("report")
    for path, text in zip(documents, (to_markdown(doc, to), to_html(doc)), strict=True):
        atomic.write_text(path, text)
        written.append(path)
    return written
