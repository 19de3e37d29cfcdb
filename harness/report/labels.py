"""Readable names for strategy variants in figures and tables, in numeric order."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd

from .. import registry
from ..params import Param

_NUMBER = re.compile(r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def param_text(value: Any, param: Param | None = None) -> str:
    """A parameter value as the grid would write it: an int parameter as ``20``, never
    ``20.0`` (a column of ints with missing values is read back as floats)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "null"
    if param is not None and param.kind is int and float(value).is_integer():
        return str(int(value))
    if param is not None and param.kind is bool:
        return str(bool(value)).lower()
    return str(value)


def label_sort_key(label: str) -> tuple:
    """Order labels by name, then by their parameter values as numbers where they are
    numbers: ``iters=5`` before ``iters=20``."""
    parts = _NUMBER.split(str(label))
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts)
                 if p != "")


def sort_labels(labels: Iterable[str]) -> list[str]:
    """``labels`` (deduplicated) in :func:`label_sort_key` order."""
    return sorted(set(labels), key=label_sort_key)


def with_labels(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``label`` column: the strategy name plus the parameters that take more
    than one value among that strategy's rows, e.g. ``ridge[select=val]``."""
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
            inner = ",".join(f"{k}={param_text(row[f's_{k}'], cls.parameters[k])}"
                             for k in varying)
            labels[idx] = f"{name}[{inner}]"
    df["label"] = labels.astype(str)
    return df


def by_problem(df: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(title, file tag, rows) per problem, and per dataset where the problem has one,
    e.g. ("flows / moons", "flows-moons", rows)."""
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
