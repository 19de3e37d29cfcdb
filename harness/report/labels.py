"""Readable names for strategy variants in figures and tables."""

from __future__ import annotations

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
