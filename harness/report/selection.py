"""Selecting the cells a claim talks about: one variant per side, named by a selector
(``name``, ``name[key=value,…]``, ``key!=value``), never picked by the data; a selector that
matches several variants or none refuses the claim (:class:`ClaimRefused`) and lists the
variants present."""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd
import yaml

from .. import registry

_SELECTOR = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(\[(?P<params>[^\]]*)\])?$")


class ClaimRefused(Exception):
    """The data cannot answer a claim as it is written (a selector that matches several
    variants or none, a pair that appears twice): the message says why and what exists.
    The verdict is ``refused``, never a number."""


def _parse_selector(selector: str) -> tuple[str, list[tuple[str, str, Any]]]:
    match = _SELECTOR.match(str(selector).strip())
    if not match:
        raise ValueError(f"strategy selector {selector!r}; write name or "
                         f"name[key=value,key!=value,…]")
    conditions = []
    for item in filter(None, (match["params"] or "").split(",")):
        key, op, value = re.split(r"(!=|=)", item, maxsplit=1) if "=" in item else (
            item, "=", "")
        conditions.append((key.strip(), op, yaml.safe_load(value.strip())))
    return match["name"], conditions


def _typed(cls: Any, conditions: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    """The selector's values as the strategy's parameters type them (``1e-3`` → 0.001)."""
    return [(key, op, cls.validate({key: value})[key]) for key, op, value in conditions]


def _matches(column: pd.Series, value: Any) -> pd.Series:
    return column.isna() if value is None else (column == value)


def variant_labels(df: pd.DataFrame, name: str | None = None, free: tuple[str, ...] = ()
                   ) -> list[str]:
    """The variants present in ``df`` (of strategy ``name``, or of every strategy), as
    selectors naming every parameter not at its default, ``free`` ones left out."""
    from .labels import sort_labels, with_labels

    rows = df if name is None else df[df["strategy"] == name]
    return sort_labels(with_labels(rows, omit=free)["label"]) if len(rows) else []


def select_variant(df: pd.DataFrame, selector: str, free: tuple[str, ...] = ()
                   ) -> pd.DataFrame:
    """Every row (of any status) of the one variant ``selector`` names (``name``,
    ``name[key=value,…]``, ``key!=value`` to leave a value out). A parameter the selector
    does not name and ``free`` does not list must take one value among the strategy's rows
    that match what it names, or its default when it takes several; otherwise — or when
    nothing matches — the claim is refused (:class:`ClaimRefused`) with the variants
    present. ``free``: parameters the
    check sweeps or pairs over (``over``), which may take every value."""
    name, conditions = _parse_selector(selector)
    cls = registry.strategies().get(name)
    if cls is None:
        raise ClaimRefused(f"`{selector}`: no strategy {name!r} is registered")
    unknown = [k for k, _, _ in conditions if k not in cls.parameters]
    if unknown:
        raise ClaimRefused(f"`{selector}`: {name} has no parameter {unknown[0]!r}; its "
                           f"parameters: {', '.join(cls.parameters)}")
    rows = df[df["strategy"] == name]
    for key, op, value in _typed(cls, conditions):
        col = f"s_{key}"
        if col in rows:
            hit = _matches(rows[col], value)
            rows = rows[hit if op == "=" else ~hit]
    named = {k for k, op, _ in conditions if op == "="}
    excluded = {k for k, op, _ in conditions if op == "!="}  # must leave exactly one value
    for key, param in cls.parameters.items():
        col = f"s_{key}"
        if key in named or key in free or col not in rows:
            continue
        if rows[col].astype(str).nunique() > 1:
            at_default = _matches(rows[col], param.default)
            if key in excluded or not at_default.any():
                variants = variant_labels(rows, free=free)
                raise ClaimRefused(f"`{selector}` matches {len(variants)} variants "
                                   f"({', '.join(f'`{v}`' for v in variants)}): name one")
            rows = rows[at_default]
    if rows.empty:
        present = variant_labels(df, name, free) or variant_labels(df, free=free)
        raise ClaimRefused(f"`{selector}` matches no cell; variants present: "
                           f"{', '.join(f'`{v}`' for v in present) or 'none'}")
    return rows


def select_strategy(df: pd.DataFrame, selector: str) -> pd.DataFrame:
    """Rows of ``df`` run with the strategy ``selector`` (``name`` or ``name[k=v,…]``),
    every parameter it does not name at its default; for figures and tables that show a
    variant when present (a claim uses :func:`select_variant`, which refuses ambiguity)."""
    name, conditions = _parse_selector(selector)
    cls = registry.strategies().get(name)
    if cls is None:
        return df.iloc[0:0]
    params = cls.validate({k: v for k, _, v in conditions})
    mask = df["strategy"] == name
    for key, value in params.items():
        col = f"s_{key}"
        if col in df:
            mask &= _matches(df[col], value)
    return df[mask]


def ok_rows(df: pd.DataFrame, selector: str) -> pd.DataFrame:
    """The ``ok`` rows of ``selector`` (:func:`select_strategy`)."""
    rows = select_strategy(df, selector)
    return rows[rows["status"] == "ok"]


def describe_selector(selector: str) -> str | None:
    """The strategy's own words for the variant ``selector`` names (``Strategy.describe``),
    or None."""
    try:
        name, conditions = _parse_selector(selector)
    except ValueError:
        return None
    cls = registry.strategies().get(name)
    if cls is None or any(op == "!=" for _, op, _ in conditions):
        return None
    return cls.describe(cls.validate({k: v for k, _, v in conditions}))


def describe_variant(rows: pd.DataFrame) -> str | None:
    """The strategy's own words for the variant of ``rows`` (``Strategy.describe`` of the
    parameters its cells ran with), or None."""
    cls = registry.strategies().get(str(rows["strategy"].iloc[0]))
    if cls is None:
        return None
    return cls.describe(json.loads(rows["params"].iloc[0])["strategy"])
