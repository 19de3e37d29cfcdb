"""How ``harness compare`` pairs the cells of two runs: by ``cell_id``, or with
``--match-ignore`` by the ``cell_id`` a cell would have without the named parameters —
refusing a name no plug-in of the runs declares, a bare name that is a parameter of both
their problem and their strategy (``lr``: write ``p_lr`` or ``s_lr``), and an ignore that
would pair two cells of one run with one of the other.

Ignored parameters travel as ``{column: the name shown}`` (:func:`resolve_ignored`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from . import registry
from .cell import cell_id_of
from .errors import InputError
from .report.labels import sort_labels
from .variant import param_text
from .vocabulary import (
    PARAMETER_KINDS,
    AmbiguousName,
    is_parameter,
    parameter,
    resolve,
    short_name,
    shown_name,
)

_MISSING = object()


def match_keys(cells: pd.DataFrame, ignore: Iterable[str] = ()) -> pd.Series:
    """Per cell the key that pairs it with a cell of the other run: its ``cell_id``, or
    with ``ignore`` (parameter columns) the ``cell_id`` it would have without those
    parameters (its identity parameters only, as ``cell_id`` itself, read from the
    ``params`` column)."""
    dropped = {parameter(col) for col in ignore}  # (kind, name)
    if not dropped:
        return cells["cell_id"]
    tables = {"problem": registry.problems(), "strategy": registry.strategies()}

    def kept(part: str, plugin: str, params: dict[str, Any]) -> dict[str, Any]:
        declared = getattr(tables[part].get(plugin), "parameters", {})
        return {k: v for k, v in params.items()
                if (part, k) not in dropped and (k not in declared or declared[k].identity)}

    keys = []
    for row in cells.itertuples():
        params = json.loads(row.params)
        keys.append(cell_id_of(row.problem, kept("problem", row.problem, params["problem"]),
                               row.strategy, kept("strategy", row.strategy,
                                                  params["strategy"]), int(row.seed)))
    return pd.Series(keys, index=cells.index, dtype=object)


def resolve_ignored(a: pd.DataFrame, b: pd.DataFrame, names: Iterable[str]) -> dict[str, str]:
    """``{column: the name shown}`` of each ``--match-ignore`` name, resolved as a claim's
    names are (:func:`harness.vocabulary.resolve`) against the cells of both runs; an
    ``InputError`` for a name no problem or strategy of the runs has, or one both have."""
    both = pd.concat([a, b], ignore_index=True)
    # only parameters can be ignored: a metric named like a parameter (a strategy's chosen
    # lam beside the s_lam it was given) is not what the name means here
    rows = both[[c for c in both.columns if is_parameter(c) or c in PARAMETER_KINDS]]
    used = [c for c in rows.columns if is_parameter(c) and rows[c].notna().any()]
    found: dict[str, str] = {}
    for name in names:
        try:
            col = resolve(name, rows)
        except AmbiguousName as err:
            raise InputError(f"--match-ignore {name}: {err.message}") from None
        if col not in used:
            allowed = ", ".join(sorted({shown_name(c, rows) for c in used}))
            try:  # p_sleep_s for the strategy's sleep_s: say which column it is
                meant = resolve(short_name(name), rows) if short_name(name) != name else None
            except AmbiguousName:
                meant = None
            hint = (f"; {short_name(name)} is the parameter {meant}" if meant in used
                    else "")
            raise InputError(f"--match-ignore {name}: no problem or strategy in these runs has "
                             f"this parameter{hint}; allowed: {allowed}")
        found[col] = shown_name(col, rows)
    return dict(sorted(found.items(), key=lambda item: item[1]))


def param_value(params_json: str, col: str) -> Any:
    """The value of parameter column ``col`` in a ``params`` value (``_MISSING`` when its
    plug-in has no such parameter)."""
    kind, name = parameter(col)
    return json.loads(params_json)[kind].get(name, _MISSING)


def ignored_values(params_json: str, ignored: dict[str, str]) -> dict[str, Any]:
    """``{shown name: value}`` of the ignored parameters a ``params`` value holds."""
    values = {shown: param_value(params_json, col) for col, shown in ignored.items()}
    return {k: v for k, v in values.items() if v is not _MISSING}


def refuse_collisions(side: pd.DataFrame, name: str, ignored: dict[str, str]) -> None:
    """Refuse ``ignored`` when two cells of one run would pair with one of the other."""
    twins = side[side["match"].duplicated(keep=False)].sort_values(["title", "seed"])
    if twins.empty:
        return
    first = twins[twins["match"] == twins["match"].iloc[0]]
    shown = " and ".join(sort_labels(
        ",".join(f"{k}={param_text(v)}" for k, v in ignored_values(text, ignored).items())
        for text in first["params"])[:2])
    raise InputError(
        f"--match-ignore {','.join(ignored.values())}: {len(twins)} cells of {name} differ "
        f"only in it (e.g. {first['title'].iloc[0]} {first['strategy'].iloc[0]} seed "
        f"{first['seed'].iloc[0]}: {shown}), so the pairing would be ambiguous; ignore only "
        f"parameters that take one value per variant in each run")
