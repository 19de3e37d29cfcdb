"""Cells that did not finish ok, counted where a table summarises the ok ones: a variant
with diverged (or failed) seeds is marked beside its numbers, never summarised silently
over the seeds that survived.

``diverged`` is the harness's one rule (a NaN or infinite metric, or the strategy saying
so, :mod:`harness.result`); a finite loss that is merely large is ``ok`` and is not marked.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ..result import OK
from .document import Table
from .labels import label_sort_key

COLUMN = "not ok"
_NOTE = (f"`{COLUMN}`: the variant's cells that did not finish ok (left out of these "
         f"numbers), per status; `diverged`: a NaN or infinite metric, or a strategy "
         f"that said its training blew up.")


def not_ok_text(cells: pd.DataFrame) -> str:
    """How many of ``cells`` (one variant, every status) did not finish ok, per status,
    e.g. ``1/4 diverged``; empty when all did."""
    n = len(cells)
    counts = cells.loc[cells["status"] != OK, "status"].value_counts()
    return ", ".join(f"{c}/{n} {status}" for status, c in sorted(counts.items()))


def not_ok_by_label(rows: pd.DataFrame) -> dict[str, str]:
    """label → :func:`not_ok_text` for each variant of ``rows`` (labelled, every status)
    with a cell that did not finish ok."""
    texts = {str(label): not_ok_text(g) for label, g in rows.groupby("label", sort=True)}
    return {label: text for label, text in texts.items() if text}


def mark_not_ok(table: Table, rows: pd.DataFrame, at: int = 0) -> Table:
    """``table`` (rows per variant, its label in column ``at``) with a ``not ok`` column
    counting each variant's cells of ``rows`` (labelled, every status) that did not finish
    ok, and a row of dashes for a variant with no ok cell at all, when some cell did not
    finish ok; unchanged otherwise."""
    found = not_ok_by_label(rows)
    if not found:
        return table
    marked = [[*r, found.get(str(r[at]), "")] for r in table.rows]
    shown = {str(r[at]) for r in table.rows}
    for label in sorted(set(found) - shown, key=label_sort_key):  # none of its cells ok
        blank = ["–"] * len(table.columns)
        marked.append([*blank[:at], label, *blank[at + 1:], found[label]])
    return replace(table, columns=[*table.columns, COLUMN], rows=marked,
                   caption=f"{table.caption} {_NOTE}".strip())


def not_ok_sentence(rows: pd.DataFrame) -> str:
    """The variants of ``rows`` (labelled, every status) with cells not ok, as a sentence
    for a table that has a column per variant; empty when there are none."""
    found = not_ok_by_label(rows)
    if not found:
        return ""
    listed = "; ".join(f"`{label}` {text}" for label, text in found.items())
    return f"Not ok, so not in these numbers: {listed}."
