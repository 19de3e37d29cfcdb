"""The name of a variant: a plug-in's name plus every parameter that differs from its
default, in declared order, values as the grid would write them, e.g.
``sgd[lr=0.01,epochs=10]``.

It is a function of one cell alone, so the cells table carries it (the ``variant`` column)
and a label never depends on which other cells share a folder; the report names strategy
variants by it and states a problem's non-default parameters by it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from . import registry
from .params import Param


def param_text(value: Any, param: Param | None = None) -> str:
    """A parameter value as the grid would write it: an int parameter as ``20``, never
    ``20.0`` (a column of ints with missing values is read back as floats)."""
    if _missing(value):
        return "null"
    if param is not None and param.kind is int and float(value).is_integer():
        return str(int(value))
    if param is not None and param.kind is bool:
        return str(bool(value)).lower()
    return str(value)


def non_defaults(parameters: Mapping[str, Param], values: Mapping[str, Any],
                 omit: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(name, value as text)`` of each parameter in ``values`` that differs from its
    declared default, in declared order; ``omit`` ones left out. A missing value of a
    parameter that cannot be null is left out too: the row predates the parameter."""
    omit = set(omit)
    found = []
    for key, param in parameters.items():
        if key in omit or key not in values:
            continue
        value = values[key]
        if _missing(value) and not param.nullable:
            continue
        if param.required or not _equal(value, param.default):
            found.append((key, param_text(value, param)))
    return found


def variant_label(kind: str, name: str, values: Mapping[str, Any],
                  omit: Iterable[str] = ()) -> str:
    """``name[k=v,…]`` for the plug-in ``name`` of ``kind`` (``"strategy"`` or
    ``"problem"``) run with ``values``: every parameter not at its default (see
    :func:`non_defaults`); just ``name`` when all are, or when no such plug-in is
    registered (its defaults are unknown)."""
    try:
        cls = registry.get(kind, name)
    except KeyError:
        return name
    inner = ",".join(f"{k}={v}" for k, v in non_defaults(cls.parameters, values, omit))
    return f"{name}[{inner}]" if inner else name


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _equal(value: Any, default: Any) -> bool:
    # Values come typed from a cell or read back from Parquet (numpy scalars; ints as
    # floats where a column has nulls), so compare as the default's kind.
    if _missing(value) or default is None:
        return _missing(value) and default is None
    if isinstance(value, str) or isinstance(default, str):
        return str(value) == str(default)
    if isinstance(default, bool):
        return bool(value) == default
    return float(value) == float(default)
