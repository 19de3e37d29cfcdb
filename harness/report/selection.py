"""Selecting the cells a claim talks about: one variant per side, named by a selector
(``name``, ``name[key=value,…]``, ``key!=value``), never picked by the data; a selector that
matches several variants or none refuses the claim (:class:`ClaimRefused`) and lists the
variants present."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import pandas as pd
import yaml

from .. import registry
from ..errors import InputError
from ..vocabulary import STRATEGY, column, parameter_columns, parameter_name

_SELECTOR = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(\[(?P<params>[^\]]*)\])?$")
# The selections made inside a `tracking()` block (None outside one).
_SELECTED: ContextVar[list[pd.DataFrame] | None] = ContextVar("selected", default=None)


@contextmanager
def tracking() -> Iterator[list[pd.DataFrame]]:
    """Collect the rows every selection inside the block returns: the cells a claim was
    judged on (its scope), which a run until conclusive adds seeds to."""
    found: list[pd.DataFrame] = []
    token = _SELECTED.set(found)
    try:
        yield found
    finally:
        _SELECTED.reset(token)


def _selected(rows: pd.DataFrame) -> pd.DataFrame:
    found = _SELECTED.get()
    if found is not None:
        found.append(rows)
    return rows


class ClaimRefused(Exception):
    """The data cannot answer a claim as it is written (a selector that matches several
    variants or none, a pair that appears twice): the message says why and what exists.
    The verdict is ``refused``, never a number."""


@dataclass(frozen=True)
class Condition:
    """``key=value`` or ``key!=value`` of a selector: a strategy parameter, its result
    column, and the value typed as the strategy declares it (as written when it declares
    no such parameter)."""

    key: str
    column: str
    op: str
    value: Any


@dataclass(frozen=True)
class Selector:
    """A strategy selector compiled once: the strategy's ``name``, its registered class
    (None when there is none) and the conditions in the order written."""

    name: str
    strategy: Any
    conditions: tuple[Condition, ...]

    def unknown(self) -> list[str]:
        """Keys the strategy does not declare."""
        declared = getattr(self.strategy, "parameters", {})
        return [c.key for c in self.conditions if c.key not in declared]

    def values(self) -> dict[str, Any]:
        """``{key: value}`` of every condition (``!=`` ones too, as the figures read it)."""
        return {c.key: c.value for c in self.conditions}


def parse_selector(selector: str) -> Selector:
    """Compile ``name`` or ``name[key=value,key!=value,…]``: the keys are the strategy's
    parameters (bare, or as their result columns), the values typed as it declares them
    (``1e-3`` → 0.001). A ``ValueError`` (a ``ParamError`` for a value the parameter does
    not allow) says what is wrong."""
    match = _SELECTOR.match(str(selector).strip())
    if not match:
        raise ValueError(f"strategy selector {selector!r}; write name or "
                         f"name[key=value,key!=value,…]")
    cls = registry.strategies().get(match["name"])
    declared = getattr(cls, "parameters", {})
    conditions = []
    for item in filter(None, (match["params"] or "").split(",")):
        key, op, value = re.split(r"(!=|=)", item, maxsplit=1) if "=" in item else (
            item, "=", "")
        key = key.strip()
        try:  # a parameter's own name first: it may itself start like a column
            key = key if key in declared else parameter_name(key, STRATEGY)
        except InputError as err:
            raise ValueError(f"strategy selector {selector!r}: {err}") from None
        value = yaml.safe_load(value.strip())
        if key in declared:
            value = declared[key].coerce(key, value)
        conditions.append(Condition(key, column(STRATEGY, key), op, value))
    return Selector(match["name"], cls, tuple(conditions))


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
    try:
        sel = parse_selector(selector)
    except ValueError as err:
        raise ClaimRefused(str(err)) from None
    name, cls = sel.name, sel.strategy
    if cls is None:
        raise ClaimRefused(f"`{selector}`: no strategy {name!r} is registered")
    if sel.unknown():
        raise ClaimRefused(f"`{selector}`: {name} has no parameter {sel.unknown()[0]!r}; its "
                           f"parameters: {', '.join(cls.parameters)}")
    rows = df[df["strategy"] == name]
    for c in sel.conditions:
        if c.column in rows:
            hit = _matches(rows[c.column], c.value)
            rows = rows[hit if c.op == "=" else ~hit]
    named = {c.key for c in sel.conditions if c.op == "="}
    excluded = {c.key for c in sel.conditions if c.op == "!="}  # must leave exactly one value
    for key, param in cls.parameters.items():
        col = column(STRATEGY, key)
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
    return _selected(rows)


def select_strategy(df: pd.DataFrame, selector: str) -> pd.DataFrame:
    """Rows of ``df`` run with the strategy ``selector`` (``name`` or ``name[k=v,…]``),
    every parameter it does not name at its default; for figures and tables that show a
    variant when present (a claim uses :func:`select_variant`, which refuses ambiguity)."""
    sel = parse_selector(selector)
    if sel.strategy is None:
        return df.iloc[0:0]
    mask = df["strategy"] == sel.name
    for col, value in parameter_columns(STRATEGY, sel.strategy.validate(sel.values())).items():
        if col in df:
            mask &= _matches(df[col], value)
    return _selected(df[mask])


def ok_rows(df: pd.DataFrame, selector: str) -> pd.DataFrame:
    """The ``ok`` rows of ``selector`` (:func:`select_strategy`)."""
    rows = select_strategy(df, selector)
    return rows[rows["status"] == "ok"]


def describe_selector(selector: str) -> str | None:
    """The strategy's own words for the variant ``selector`` names (``Strategy.describe``),
    or None."""
    try:
        sel = parse_selector(selector)
    except ValueError:
        return None
    if sel.strategy is None or any(c.op == "!=" for c in sel.conditions):
        return None
    return sel.strategy.describe(sel.strategy.validate(sel.values()))


def describe_variant(rows: pd.DataFrame) -> str | None:
    """The strategy's own words for the variant of ``rows`` (``Strategy.describe`` of the
    parameters its cells ran with), or None."""
    cls = registry.strategies().get(str(rows["strategy"].iloc[0]))
    if cls is None:
        return None
    return cls.describe(json.loads(rows["params"].iloc[0])["strategy"])
