"""The report's first screen: one row per verdict the grid's cells can answer — its outcome
as a badge, the claim, the criterion, the estimate with its interval, the seeds it rests on
(and why they stopped), its cost and a link to its section — then a forest plot of those
estimates against their criteria (:mod:`harness.report.forest`), then the claims the grid
does not cover, once each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..stats import interval_text, unit_of
from .claims import OUTCOMES
from .document import Badge, Heading, Link, Paragraph, Table, Verdict, fmt, slug
from .forest import forest_figure

if TYPE_CHECKING:
    from . import ReportContext

NBSP = "\u00a0"
NOT_COVERED = "no data"  # the outcome of a claim the grid has no cells to judge it on
# What an estimate is, in a word; the verdict in its section says it in full
# (claims.describe_kind).
_WORDS = {"ratio": "ratio", "reduction": "reduction", "difference": "difference",
          "mean": "mean", "bounds": "fraction"}


def scoreboard(verdicts: list[Verdict], ctx: ReportContext) -> list[Any]:
    """The scoreboard's blocks: a sentence counting the verdicts, the table of the covered
    ones (numbered), their forest plot (saved with ``ctx``), and the claims not covered by
    this grid (outcome ``no data``) below, with why."""
    if not verdicts:
        return [Paragraph("No published claim concerns the families in this folder.")]
    covered = [v for v in verdicts if v.outcome != NOT_COVERED]
    uncovered = [v for v in verdicts if v.outcome == NOT_COVERED]
    blocks: list[Any] = [Heading("Scoreboard"), Paragraph(_counts(covered, uncovered))]
    if covered:
        blocks.append(_table(covered))
        figure = forest_figure(list(enumerate(covered, start=1)), ctx)
        if figure is not None:
            blocks.append(figure)
    if uncovered:
        blocks += [Heading("Not covered by this grid", level=3),
                   Table(["claim", "why", "paper"],
                         [[v.label or v.claim, v.measured, _paper(v)] for v in uncovered],
                         caption="The grid has no cells these claims can be judged on; "
                                 "their verdict blocks in the sections say the same.")]
    return blocks


def _counts(covered: list[Verdict], uncovered: list[Verdict]) -> str:
    counts = ", ".join(f"{n} {o}" for o in OUTCOMES
                       if (n := sum(v.outcome == o for v in covered)))
    judged = (f"{len(covered)} verdict{'s' if len(covered) != 1 else ''} on this grid: "
              f"{counts}." if covered else "No claim can be judged on this grid's cells.")
    if not uncovered:
        return judged
    n = len(uncovered)
    return (f"{judged} {n} more claim{'s are' if n != 1 else ' is'} not covered by this grid "
            f"(listed below).")


def _table(verdicts: list[Verdict]) -> Table:
    gpu = any(v.gpu_hours > 0 for v in verdicts)
    accounting = any(v.accounting for v in verdicts)
    columns = ["#", "verdict", "claim", "criterion", "estimate [95% interval]", "seeds",
               "CPU-hours", *(["GPU-hours"] if gpu else []),
               *(["counted as worst / excluded"] if accounting else []), "paper"]
    rows = [[i, Badge(v.outcome.upper(), v.tone), v.label or v.claim,
             v.target or "see section", _estimate(v), _seeds(v), fmt(v.cpu_hours, 2),
             *([fmt(v.gpu_hours, 2)] if gpu else []),
             *([_left_out(v.accounting)] if accounting else []), _paper(v)]
            for i, v in enumerate(verdicts, start=1)]
    cost = "" if gpu else " (no GPU time)"
    left = "column counted as worst / excluded" if accounting else "none here"
    return Table(columns, rows, caption=(
        "A claim is reproduced when the whole 95% interval of its estimate (one value per "
        "seed, paired by seed) is on its side of the criterion, not reproduced when it is "
        "wholly on the other side (for a claim of several items, when Holm's procedure "
        "across them finds one there), inconclusive when it straddles, refused when the data "
        "cannot answer the claim as written. Ratios are geometric means over seeds; a "
        "fraction's range is bounds, not an interval. Failed cells count as the worst "
        f"outcome, and cells left out are counted ({left}; why, in the claim's section). "
        "Seeds: how many the "
        "estimate rests on (and why they stopped, when the run decided). CPU-hours: of the "
        f"cells of the scope each claim is judged on{cost}. The paper links to the section that "
        "judges the claim. What a verdict guarantees and assumes: docs/verdicts.md."))


def _left_out(accounting: str) -> str:
    """``1 counted as worst, 2 excluded`` from a verdict's accounting (the reasons are in
    its section: in a table column they would make every row a dozen lines tall)."""
    parts = [p.strip() for p in accounting.split(";") if p.strip()]
    worst = sum(int(p.split()[0]) for p in parts if "counted as the worst" in p)
    left = sum(int(p.split()[0]) for p in parts if " excluded (" in p)
    said = [f"{worst} counted as worst" if worst else "", f"{left} excluded" if left else ""]
    return ", ".join(w for w in said if w) or "none"


def _estimate(v: Verdict) -> str:
    """``ratio 0.987 [0.974, 1]``; without a number, the verdict's own words (a refusal
    says why)."""
    if v.value is None:
        return v.estimate
    # no-break spaces: a narrow column breaks after the word, never inside the interval
    number = f"{interval_text(v.value, v.low, v.high, v.kind)}{unit_of(v.kind)}"
    return f"{_WORDS.get(v.kind, v.kind)} {number.replace(' ', NBSP)}"


def _seeds(v: Verdict) -> str:
    if v.value is None:
        return "–"
    return f"{v.seeds} ({v.stopped})" if v.stopped else str(v.seeds)


def _paper(v: Verdict) -> Link:
    """The paper's first author(s), linking to the section that judges the claim."""
    return Link(v.paper.split(",")[0] or v.section, f"#{slug(v.section)}")
