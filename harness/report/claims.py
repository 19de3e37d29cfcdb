"""Published claims and values (``results/reference/*.yaml``) and how to pick the cells a
claim talks about.

A reference file names a paper and lists claims; each claim has the words of the claim,
its source, and a ``check`` that a family's report section knows how to evaluate, e.g.::

    - id: min_norm_spike
      claim: Minimum-norm regression spikes at the interpolation threshold m = n.
      source: abstract
      check: {kind: spike_ratio, strategy: min_norm, op: ">=", threshold: 3.0}

Strategies are selected as ``name`` (its default parameters) or ``name[key=value,…]``; a
check may give ``strategies: [selector, …]`` instead of ``strategy`` to be judged once per
configuration present in the data. Each claim's ``source`` says where its threshold comes
from (the project's docs/papers.md collects them).
"""

from __future__ import annotations

import operator
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .. import registry
from ..errors import InputError
from ..provenance import SOURCE_ROOT

REFERENCE_ENV = "HARNESS_REFERENCE"
OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_SELECTOR = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(\[(?P<params>[^\]]*)\])?$")


@dataclass
class Claim:
    id: str
    claim: str
    source: str
    check: dict[str, Any]
    note: str = ""


@dataclass
class Reference:
    paper: str
    family: str
    claims: list[Claim] = field(default_factory=list)
    path: str = ""


def reference_dir() -> Path:
    """``$HARNESS_REFERENCE`` or the repository's ``results/reference``."""
    return Path(os.environ.get(REFERENCE_ENV, SOURCE_ROOT / "results" / "reference"))


def load_references(family: str) -> list[Reference]:
    """Every reference file of ``family``."""
    refs = []
    for path in sorted(reference_dir().glob("*.yaml")):
        spec = yaml.safe_load(path.read_text()) or {}
        if spec.get("family") != family:
            continue
        try:
            claims = [Claim(id=c["id"], claim=c["claim"], source=c.get("source", ""),
                            check=c["check"], note=c.get("note", ""))
                      for c in spec.get("claims", [])]
        except (KeyError, TypeError) as err:
            raise InputError(f"malformed claim ({err}); each needs id, claim and check",
                             file=str(path)) from None
        refs.append(Reference(paper=spec.get("paper", ""), family=family, claims=claims,
                              path=str(path)))
    return refs


def select_strategy(df: pd.DataFrame, selector: str) -> pd.DataFrame:
    """Rows of ``df`` run with the strategy ``selector`` (``name`` or ``name[k=v,…]``);
    parameters not named must have their default value."""
    match = _SELECTOR.match(selector.strip())
    if not match:
        raise ValueError(f"strategy selector {selector!r}; write name or name[key=value,…]")
    name = match["name"]
    cls = registry.strategies().get(name)
    if cls is None:
        return df.iloc[0:0]
    params = cls.validate(_selector_params(match))
    mask = df["strategy"] == name
    for key, value in params.items():
        col = f"s_{key}"
        if col not in df:
            continue
        mask &= df[col].isna() if value is None else (df[col] == value)
    return df[mask]


def describe_selector(selector: str) -> str | None:
    """The strategy's own words for the variant ``selector`` names (``Strategy.describe``),
    or None."""
    match = _SELECTOR.match(selector.strip())
    cls = registry.strategies().get(match["name"]) if match else None
    if cls is None:
        return None
    return cls.describe(cls.validate(_selector_params(match)))


def _selector_params(match: re.Match) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for item in filter(None, (match["params"] or "").split(",")):
        key, _, value = item.partition("=")
        given[key.strip()] = yaml.safe_load(value.strip())
    return given


def compare(value: float, op: str, threshold: float) -> bool:
    return bool(OPS[op](value, threshold))
