"""Cells that did not finish ok, counted where a table summarises the ok ones: a variant
with diverged (or failed) seeds is marked beside its numbers, never summarised silently
over the seeds that survived.

``diverged`` is the harness's one rule (a NaN or infinite metric, or the strategy saying
so, :mod:`harness.result`). An ``ok`` cell whose training loss came back up is marked
too, as ``loss rebounded`` (:func:`rebounded`), though it stays ``ok`` and in the numbers:
a wrong gradient (a loose adjoint tolerance, say) can take a loss back up to near its
first value with every metric finite.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ..result import OK
from .document import Table
from .labels import label_sort_key

COLUMN = "not ok"
REBOUND = 3.0  # final ÷ lowest running-mean training loss, above which a loss rebounded
WINDOW = 20  # steps of the running mean (a fifth of the steps when there are fewer)
_NOTE = (f"`{COLUMN}`: the variant's cells that did not finish ok (left out of these "
         f"numbers), per status; `diverged`: a NaN or infinite metric, or a strategy "
         f"that said its training blew up; `loss rebounded`: ok, but its final training loss "
         f"(running mean) is over {REBOUND:g}× its lowest — kept in the numbers.")


def rebounded(history: pd.DataFrame | None) -> set[str]:
    """The cells of ``history`` whose training loss (split ``train``, metric ``loss``)
    rebounded: its running mean at the end is over ``REBOUND`` times its lowest."""
    if history is None or history.empty:
        return set()
    loss = history[(history["metric"] == "loss") & (history["split"] == "train")]
    found = set()
    for cell_id, g in loss.sort_values("step").groupby("cell_id"):
        values = g["value"].astype(float)
        smooth = values.rolling(min(WINDOW, max(1, len(values) // 5))).mean().dropna()
        if len(smooth) and smooth.min() > 0 and smooth.iloc[-1] > REBOUND * smooth.min():
            found.add(str(cell_id))
    return found


def not_ok_text(cells: pd.DataFrame, rebound: set[str] = frozenset()) -> str:
    """How many of ``cells`` (one variant, every status) did not finish ok, per status,
    and how many ok ones are in ``rebound``, e.g. ``1/4 diverged, 2/4 loss rebounded``;
    empty when none."""
    n = len(cells)
    counts = cells.loc[cells["status"] != OK, "status"].value_counts()
    parts = [f"{c}/{n} {status}" for status, c in sorted(counts.items())]
    back = int(((cells["status"] == OK) & cells["cell_id"].astype(str).isin(rebound)).sum()
               ) if rebound else 0
    return ", ".join(parts + ([f"{back}/{n} loss rebounded"] if back else []))


def not_ok_by_label(rows: pd.DataFrame, history: pd.DataFrame | None = None
                    ) -> dict[str, str]:
    """label → :func:`not_ok_text` for each variant of ``rows`` (labelled, every status)
    with a cell that did not finish ok or whose loss rebounded (from ``history``)."""
    back = rebounded(history)
    texts = {str(label): not_ok_text(g, back) for label, g in rows.groupby("label", sort=True)}
    return {label: text for label, text in texts.items() if text}


def mark_not_ok(table: Table, rows: pd.DataFrame, at: int = 0,
                history: pd.DataFrame | None = None) -> Table:
    """``table`` (rows per variant, its label in column ``at``) with a ``not ok`` column
    counting each variant's cells of ``rows`` (labelled, every status) that did not finish
    ok, and a row of dashes for a variant with no ok cell at all, when some cell did not
    finish ok; unchanged otherwise."""
    found = not_ok_by_label(rows, history)
    if not found:
        return table
    marked = [[*r, found.get(str(r[at]), "")] for r in table.rows]
    shown = {str(r[at]) for r in table.rows}
    for label in sorted(set(found) - shown, key=label_sort_key):  # none of its cells ok
        blank = ["–"] * len(table.columns)
        marked.append([*blank[:at], label, *blank[at + 1:], found[label]])
    return replace(table, columns=[*table.columns, COLUMN], rows=marked,
                   caption=f"{table.caption} {_NOTE}".strip())


def not_ok_sentence(rows: pd.DataFrame, history: pd.DataFrame | None = None) -> str:
    """The variants of ``rows`` (labelled, every status) with cells not ok (or whose loss
    rebounded), as a sentence for a table that has a column per variant; empty when there
    are none."""
    found = not_ok_by_label(rows, history)
    if not found:
        return ""
    listed = "; ".join(f"`{label}` {text}" for label, text in found.items())
    return f"Not ok, so not in these numbers: {listed}."
