"""How ``harness compare`` pairs the cells of two runs: by ``cell_id``, or with
``--match-ignore`` by the ``cell_id`` a cell would have without the named parameters —
refusing a name no plug-in of the runs declares, and an ignore that would pair two cells
of one run with one of the other."""

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


def match_keys(cells: pd.DataFrame, ignore: Iterable[str] = ()) -> pd.Series:
    """Per cell the key that pairs it with a cell of the other run: its ``cell_id``, or
    with ``ignore`` the ``cell_id`` it would have without those parameters (its identity
    parameters only, as ``cell_id`` itself, read from the ``params`` column)."""
    ignore = set(ignore)
    if not ignore:
        return cells["cell_id"]
    tables = {"problem": registry.problems(), "strategy": registry.strategies()}

    def kept(part: str, plugin: str, params: dict[str, Any]) -> dict[str, Any]:
        declared = getattr(tables[part].get(plugin), "parameters", {})
        return {k: v for k, v in params.items()
                if k not in ignore and (k not in declared or declared[k].identity)}

    keys = []
    for row in cells.itertuples():
        params = json.loads(row.params)
        keys.append(cell_id_of(row.problem, kept("problem", row.problem, params["problem"]),
                               row.strategy, kept("strategy", row.strategy,
                                                  params["strategy"]), int(row.seed)))
    return pd.Series(keys, index=cells.index, dtype=object)


def check_ignored(a: pd.DataFrame, b: pd.DataFrame, ignored: tuple[str, ...]) -> None:
    """Refuse a name to ignore that no problem or strategy of the two runs declares."""
    if not ignored:
        return
    known = set()
    for text in pd.concat([a["params"], b["params"]]).unique():
        params = json.loads(text)
        known.update(params["problem"], params["strategy"])
    for name in ignored:
        if name not in known:
            raise InputError(f"--match-ignore {name}: no problem or strategy in these runs has "
                             f"this parameter; allowed: {', '.join(sorted(known))}")


def refuse_collisions(side: pd.DataFrame, name: str, ignored: tuple[str, ...]) -> None:
    """Refuse ``ignored`` when two cells of one run would pair with one of the other."""
    twins = side[side["match"].duplicated(keep=False)].sort_values(["title", "seed"])
    if twins.empty:
        return
    first = twins[twins["match"] == twins["match"].iloc[0]]
    shown = " and ".join(sort_labels(
        ",".join(f"{k}={param_text(v)}" for k, v in flat_params(text).items() if k in ignored)
        for text in first["params"])[:2])
    raise InputError(
        f"--match-ignore {','.join(ignored)}: {len(twins)} cells of {name} differ only in it "
        f"(e.g. {first['title'].iloc[0]} {first['strategy'].iloc[0]} seed "
        f"{first['seed'].iloc[0]}: {shown}), so the pairing would be ambiguous; ignore only "
        f"parameters that take one value per variant in each run")


def flat_params(params_json: str) -> dict[str, Any]:
    """The problem's and the strategy's parameters of a ``params`` value, in one dict."""
    params = json.loads(params_json)
    return {**params["problem"], **params["strategy"]}
