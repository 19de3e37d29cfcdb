"""Readable names for strategy variants in figures and tables, in numeric order."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd

from .. import registry
from ..variant import non_defaults, variant_label
from ..vocabulary import (
    DATA_SOURCE,
    DATASET,
    PROBLEM,
    STRATEGY,
    column,
    parameters_in,
    role_columns,
)

_NUMBER = re.compile(r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def label_sort_key(label: str) -> tuple:
    """Order labels by name, then by their parameter values as numbers where they are
    numbers: ``iters=5`` before ``iters=20``."""
    parts = _NUMBER.split(str(label))
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts)
                 if p != "")


def sort_labels(labels: Iterable[str]) -> list[str]:
    """``labels`` (deduplicated) in :func:`label_sort_key` order."""
    return sorted(set(labels), key=label_sort_key)


def with_labels(df: pd.DataFrame, omit: Iterable[str] = ()) -> pd.DataFrame:
    """``df`` with a ``label`` column: each row's strategy variant, the strategy name plus
    every parameter not at its default (:func:`harness.variant.variant_label`), e.g.
    ``sgd[lr=0.01,epochs=10]``. The row's own ``variant`` column when it has one (its
    defaults are those of the run that wrote it); computed from the strategy parameter
    columns for rows written before the column existed, or when ``omit`` leaves parameters
    out."""
    df = df.copy()
    omit = tuple(omit)
    stored = df["variant"] if "variant" in df and not omit else pd.Series(None, index=df.index)
    labels = [v if isinstance(v, str) else strategy_variant(row, omit)
              for v, (_, row) in zip(stored, df.iterrows(), strict=True)]
    df["label"] = pd.Series(labels, index=df.index, dtype=object).astype(str)
    return df


def strategy_variant(row: pd.Series, omit: Iterable[str] = ()) -> str:
    """The variant label of one cells row, from its ``strategy`` and strategy parameter
    columns."""
    values = {k: None if _isna(v) else v for k, v in parameters_in(row, STRATEGY).items()}
    return variant_label("strategy", str(row["strategy"]), values, omit)


def problem_settings(rows: pd.DataFrame) -> str | None:
    """The problem parameters of ``rows`` that differ from their defaults, as a sentence,
    e.g. "Problem parameters not at their defaults: n_train=500, n_val=250." (several
    values of a swept one listed in order); None when all are at their defaults. Where the
    data lives (parameters that are not part of a cell's identity) is left out."""
    parts = []
    for name, g in rows.groupby("problem", sort=True):
        cls = registry.problems().get(name)
        if cls is None:
            continue
        found: dict[str, list[str]] = {}
        for _, row in g.iterrows():
            values = {k: None if _isna(row[c]) else row[c]
                      for k, p in cls.parameters.items()
                      if p.identity and (c := column(PROBLEM, k)) in row}
            for key, text in non_defaults(cls.parameters, values):
                found.setdefault(key, [])
                if text not in found[key]:
                    found[key].append(text)
        for key, texts in found.items():
            texts = sorted(texts, key=label_sort_key)
            parts.append(f"{key}={texts[0]}" if len(texts) == 1
                         else f"{key} ∈ {{{', '.join(texts)}}}")
    if not parts:
        return None
    return "Problem parameters not at their defaults: " + ", ".join(parts) + "."


def _isna(value: Any) -> bool:
    return value is None or (not isinstance(value, str | bytes) and bool(pd.isna(value)))


def by_problem(df: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(title, file tag, rows) per problem, and per data set (a column of role
    :data:`~harness.vocabulary.DATASET`) where the problem has one, e.g. ("flows / moons",
    "flows-moons", rows)."""
    keys = ["problem", *role_columns(DATASET, df.columns)]
    for key, rows in df.groupby(keys, sort=True, dropna=False):
        parts = [str(k) for k in (key if isinstance(key, tuple) else (key,))
                 if isinstance(k, str)]
        yield " / ".join(parts), "-".join(parts), rows


def data_sources(rows: pd.DataFrame) -> str | None:
    """The values of ``rows``'s columns of role :data:`~harness.vocabulary.DATA_SOURCE`
    (which data a problem used, e.g. ``data_source``), as a sentence; None when no row
    records one."""
    found = sorted({v for c in role_columns(DATA_SOURCE, rows.columns)
                    for v in rows[c].dropna().unique()})
    return ("Data: " + "; ".join(found) + ".") if found else None
