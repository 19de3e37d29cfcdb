"""Readable names for strategy variants in figures and tables."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from .. import registry


def with_labels(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``label`` column: the strategy name plus the parameters that take more
    than one value among that strategy's rows, e.g. ``tikhonov[select=val]``."""
    df = df.copy()
    labels = pd.Series(df["strategy"], index=df.index, dtype=object)
    for name, rows in df.groupby("strategy"):
        cls = registry.strategies().get(name)
        if cls is None:
            continue
        varying = [k for k in cls.parameters
                   if f"s_{k}" in rows and rows[f"s_{k}"].astype(str).nunique() > 1]
        if not varying:
            continue
        for idx, row in rows.iterrows():
            inner = ",".join(f"{k}={row[f's_{k}']}" for k in varying)
            labels[idx] = f"{name}[{inner}]"
    df["label"] = labels.astype(str)
    return df


def by_problem(df: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(title, file tag, rows) per problem, and per dataset where the problem has one,
    e.g. ("cnf_toy / 8gaussians", "cnf_toy-8gaussians", rows)."""
    keys = ["problem", "p_dataset"] if "p_dataset" in df else ["problem"]
    for key, rows in df.groupby(keys, sort=True, dropna=False):
        parts = [str(k) for k in (key if isinstance(key, tuple) else (key,))
                 if isinstance(k, str)]
        yield " / ".join(parts), "-".join(parts), rows


def data_sources(rows: pd.DataFrame) -> str | None:
    """The ``data_source`` values of ``rows`` (which images a problem used), as a sentence;
    None when no row records one."""
    if "data_source" not in rows:
        return None
    found = sorted(rows["data_source"].dropna().unique())
    return ("Data: " + "; ".join(found) + ".") if found else None
