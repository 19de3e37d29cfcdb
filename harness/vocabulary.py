"""The results vocabulary: the column each declared parameter and metric becomes, what it
is, and the role the engine gives it.

A problem's parameter ``n`` is the column ``p_n``, a strategy's parameter ``lr`` the column
``s_lr``, a metric its own name. This module is the one place that spells those prefixes:
rows, the schema, labels, reports and claims ask it for a column, or for the parameter a
column holds. The engine never relies on a plug-in's choice of names: what it does with a
column of a family (a heading per data set, a "Data:" line, a per-iteration time in
``harness compare``) follows the column's declared :class:`Role`.

Names a user writes (a claim's ``over:``, ``at:`` and ``where:`` keys) are resolved against
the cells they are about by :func:`resolve`: a column's full name is that column, a bare
parameter name is the one parameter column of that name the cells use, and a bare name
that both their problem and their strategy declare (``lr`` for ``p_lr`` and ``s_lr``) is
refused (:class:`AmbiguousName`), naming both columns to choose from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import registry
from .errors import InputError, RegistrationError

if TYPE_CHECKING:
    import pandas as pd

PROBLEM, STRATEGY, METRIC = "problem", "strategy", "metric"  # who declares a column
PARAMETER_KINDS = (PROBLEM, STRATEGY)
_PREFIX = {PROBLEM: "p_", STRATEGY: "s_"}  # the only spelling of the prefixes


@dataclass(frozen=True)
class Role:
    """What the engine does with a column, whatever the family calls it. A plug-in declares
    it on the parameter or metric (``Param(..., role=DATASET)``,
    ``Metric(..., role=PER_ITERATION)``); ``meaning`` says what the column must hold and
    what the engine does with it."""

    name: str
    meaning: str


DATASET = Role("dataset", "a problem parameter naming the data set: the report gives each "
                          "data set of a problem its own heading instead of a table column, "
                          "and harness compare names it in the problem's title")
DATA_SOURCE = Role("data source", "a text metric saying which data a cell used (the set, "
                                  "its source and version): the report prints it above "
                                  "the problem's tables")
PER_ITERATION = Role("per-iteration time", "a metric in seconds: the time of one training "
                                           "iteration or epoch; harness compare compares "
                                           "it beside the training time")
ROLES = (DATASET, DATA_SOURCE, PER_ITERATION)


class AmbiguousName(InputError):
    """A bare name that is a parameter of both the problem and the strategy of the cells it
    is about: the message names both columns to write instead."""


# -- names and columns -------------------------------------------------------------------
def column(kind: str, name: str) -> str:
    """The result column of parameter ``name`` of a ``kind`` (:data:`PROBLEM` or
    :data:`STRATEGY`) plug-in, e.g. ``column(STRATEGY, "lr") == "s_lr"``."""
    return _PREFIX[kind] + name


def parameter(col: Any) -> tuple[str, str] | None:
    """``(kind, name)`` of the parameter column ``col`` (``"s_lr"`` → ``(STRATEGY,
    "lr")``); None for any other column (metrics may not take a parameter's spelling)."""
    if isinstance(col, str):
        for kind, prefix in _PREFIX.items():
            if col.startswith(prefix) and len(col) > len(prefix):
                return kind, col[len(prefix):]
    return None


def is_parameter(col: Any, kind: str | None = None) -> bool:
    """``col`` is a parameter column (of ``kind``, when given)."""
    found = parameter(col)
    return found is not None and kind in (None, found[0])


def short_name(col: str) -> str:
    """The name a reader knows a column by: a parameter's own name (``lr`` for ``s_lr``),
    else the column (for headings and axis labels)."""
    found = parameter(col)
    return found[1] if found else col


def parameter_columns(kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``{column: value}`` of a plug-in's parameter values (a cell's row)."""
    return {column(kind, k): v for k, v in values.items()}


def parameters_in(row: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """``{name: value}`` of the ``kind`` parameter columns of ``row`` (a cells row)."""
    return {short_name(c): v for c, v in row.items() if is_parameter(c, kind)}


def parameter_names(columns: Iterable[Any], kind: str) -> tuple[str, ...]:
    """The names of the ``kind`` parameters among ``columns`` (other columns left out)."""
    return tuple(p[1] for p in map(parameter, columns) if p is not None and p[0] == kind)


def parameter_name(name: str, kind: str) -> str:
    """The ``kind`` parameter ``name`` means, given bare (``lr``) or as its column
    (``s_lr``); an :class:`InputError` for the column of the other kind's parameter."""
    found = parameter(name)
    if found is None:
        return name
    if found[0] != kind:
        raise InputError(f"{name} is a {found[0]} parameter; here only {kind} parameters "
                         f"are named (write {found[1]} or {column(kind, found[1])})")
    return found[1]


# -- what plug-ins declare ---------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    """One result column that plug-ins declare: its ``column``, the ``name`` they declare
    it by, ``kind`` (:data:`PROBLEM` or :data:`STRATEGY` for a parameter, :data:`METRIC`),
    its Python ``type``, ``unit`` (metrics), ``role`` and the plug-in classes declaring it
    (``owners``, each with its own words: :meth:`docs`)."""

    column: str
    name: str
    kind: str
    type: type
    unit: str = ""
    role: Role | None = None
    owners: tuple[type, ...] = ()

    def docs(self) -> list[tuple[type, str]]:
        """``(owner, its doc line)`` for every owner."""
        table = "metrics" if self.kind == METRIC else "parameters"
        return [(o, getattr(o, table)[self.name].doc) for o in self.owners]


def declared(cls: Any) -> dict[str, Term]:
    """The columns one plug-in class declares, by column: one per parameter, one per
    metric."""
    terms = {column(cls.kind, n): Term(column(cls.kind, n), n, cls.kind, p.kind, "", p.role,
                                       (cls,))
             for n, p in cls.parameters.items()}
    terms.update({n: Term(n, n, METRIC, m.kind, m.unit, m.role, (cls,))
                  for n, m in cls.metrics.items()})
    return terms


_TERMS: dict[tuple[Any, ...], dict[str, Term]] = {}  # by the registered classes


def terms() -> dict[str, Term]:
    """Every column the registered plug-ins declare, by column (sorted), each with all its
    owners. Computed once per set of registered plug-ins (a claim's judging asks often)."""
    plugins = (*registry.problems().values(), *registry.strategies().values())
    if plugins not in _TERMS:
        _TERMS.clear()
        _TERMS[plugins] = _terms(plugins)
    return dict(_TERMS[plugins])


def _terms(plugins: tuple[Any, ...]) -> dict[str, Term]:
    found: dict[str, Term] = {}
    for cls in plugins:
        for col, term in declared(cls).items():
            old = found.get(col)
            if old is None:
                found[col] = term
                continue
            why = _disagreement(term, old)  # registration refuses this; a bypass is a bug
            if why:
                _refuse(cls, old.owners[0], col, why)
            found[col] = replace(old, owners=old.owners + term.owners)
    return dict(sorted(found.items()))


def _disagreement(mine: Term, theirs: Term) -> tuple[str, str, str] | None:
    """How two declarations of one column differ, as (mine, theirs, what to do), or None.
    Every file of a folder shares one schema, and the engine acts on a column by its role
    and unit, so a column has one type, one unit and one role."""
    words = {"type": lambda t: f"as {t.type.__name__}",
             "unit": lambda t: f"in unit {t.unit!r}",
             "role": lambda t: f"with role {t.role.name!r}" if t.role else "with no role"}
    for attribute, text in words.items():
        if getattr(mine, attribute) != getattr(theirs, attribute):
            fix = ("declare the same role on both" if attribute == "role"
                   else f"use one {attribute} or another name")
            return text(mine), text(theirs), fix
    return None


def _refuse(cls: Any, other: Any, col: str, why: tuple[str, str, str]) -> None:
    mine, theirs, fix = why
    raise RegistrationError(f"{cls.kind} {cls.name} ({cls.__module__}) declares column {col!r} "
                            f"{mine}, but {other.kind} {other.name} ({other.__module__}) "
                            f"declares it {theirs}; {fix}")


def check_declarations(cls: Any) -> None:
    """Refuse a plug-in (at registration) whose metric takes a parameter column's spelling,
    or that declares a column another registered plug-in declares with another type, unit
    or role."""
    mine = declared(cls)
    for col, term in mine.items():
        if term.kind == METRIC and is_parameter(col):
            raise RegistrationError(f"{cls.kind} {cls.name} ({cls.__module__}): metric {col!r} "
                                    f"is spelled like a parameter column; rename it")
    for other in [*registry.table(PROBLEM).values(), *registry.table(STRATEGY).values()]:
        if other.name == cls.name and other.kind == cls.kind:
            continue
        for col, theirs in declared(other).items():
            why = _disagreement(mine[col], theirs) if col in mine else None
            if why:
                _refuse(cls, other, col, why)


def role_columns(role: Role, columns: Iterable[str] | None = None) -> list[str]:
    """The columns declared with ``role`` (sorted), those among ``columns`` when given."""
    found = [c for c, t in terms().items() if t.role == role]
    if columns is not None:
        present = set(columns)
        found = [c for c in found if c in present]
    return found


# -- names users write -------------------------------------------------------------------
def resolve(name: str, rows: pd.DataFrame) -> str | None:
    """The column of ``rows`` that ``name`` — a key of a claim's ``over:``, ``at:`` or
    ``where:`` — means: a column of ``rows`` by its full name (``s_lr``, ``test_mse``,
    ``seed``) is that column; a bare parameter name is the parameter column of that name
    that the cells use (their problem or strategy declares it, or it holds a value); None
    when there is none. A bare name both the problem and the strategy of the cells use
    (``lr`` for ``p_lr`` and ``s_lr``) raises :class:`AmbiguousName`."""
    if name in rows.columns:
        return name
    present = {k: column(k, name) for k in PARAMETER_KINDS if column(k, name) in rows.columns}
    used = [c for k, c in present.items() if _used(rows, k, name)]
    if len(used) > 1:
        raise AmbiguousName(
            f"{name!r} is both a problem parameter ({used[0]}) and a strategy parameter "
            f"({used[1]}) of these cells; write {used[0]} or {used[1]} to say which")
    return (used or list(present.values()) or [None])[0]


def shown_name(col: str, rows: pd.DataFrame) -> str:
    """How a table or figure of ``rows`` names column ``col``: a parameter by its bare name
    (``n_features``) where that name means this column in ``rows`` (:func:`resolve`), else
    by the column (``p_lr`` beside a strategy's ``lr``), so that what is printed is also
    what a claim would write."""
    short = short_name(col)
    try:
        return short if resolve(short, rows) == col else col
    except AmbiguousName:
        return col


def _used(rows: pd.DataFrame, kind: str, name: str) -> bool:
    """Whether the ``kind`` plug-ins of ``rows`` (named by their core columns ``problem``
    and ``strategy``) declare parameter ``name``, or — for plug-ins this version no longer
    registers — whether its column holds a value."""
    table = registry.problems() if kind == PROBLEM else registry.strategies()
    owners = rows[kind].dropna().unique() if kind in rows.columns else []
    return any(name in getattr(table.get(o), "parameters", {}) for o in owners) or bool(
        rows[column(kind, name)].notna().any())
