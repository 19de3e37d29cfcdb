"""The claims engine: published claims, the check kinds that judge them, and the one loop
that turns them into verdicts.

A claims file names a paper and a family and lists claims; each claim has the words of the
claim, its source, and a ``check`` of a registered kind, e.g.::

    paper: "Author et al., Title (2024)"
    family: ridge
    claims:
      - id: no_regularization_spike
        claim: Unregularized least squares spikes at the interpolation threshold m = n.
        source: abstract
        check: {kind: curve_ratio, metric: test_mse, strategy: lstsq, over: n_features,
                at: n_train, around: [0.5, 2], op: ">=", threshold: 3.0}

Claims files are found in the ``claims/`` folder of the package a family declares
(package data: the same in an installed package and in a checkout) and in the folders
given to ``harness report --claims DIR``. Strategies are selected as ``name`` (its default
parameters) or ``name[key=value,…]``; a check may give ``strategies: [selector, …]``
instead of ``strategy`` to be judged once per configuration present in the data.

Check kinds: the generic ones (``harness.report.checks``: a metric against a threshold,
a ratio or difference of two variants, a curve ratio at a named point) need no code;
a family registers only the kinds that are truly its own, with :func:`check_kind`, in its
report section's module. Every kind returns a :class:`Measurement`; the outcome vocabulary
is :data:`OUTCOMES`, decided here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from .. import registry
from ..errors import InputError, RegistrationError
from ..family import Family
from ..stats import Estimate, paired_ratio
from .document import Heading, Link, Paragraph, Table, Verdict, slug

if TYPE_CHECKING:
    from . import ReportContext

OUTCOMES = ("reproduced", "partly reproduced", "not reproduced", "inconclusive", "no data")
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


@dataclass
class Measurement:
    """What a check measured. ``passed``: one entry per item judged (one value, one per
    problem, one per point of a curve): True when the item's interval is wholly on the
    claim's side, False when wholly on the other, None when it straddles (or there is no
    interval); None or empty when there is nothing to judge (``no data``). ``estimate``:
    the figure the verdict prints (its value, 95% interval and seed count). ``every``: the
    claim must hold for every item, so some passing items do not make it partly
    reproduced."""

    criterion: str
    measured: str
    passed: list[bool | None] | None
    detail: str = ""
    estimate: Estimate | None = None
    every: bool = False

    @property
    def outcome(self) -> str:
        if not self.passed:
            return "no data"
        held = sum(p is True for p in self.passed)
        failed = sum(p is False for p in self.passed)
        if held == len(self.passed):
            return "reproduced"
        if failed == len(self.passed):
            return "not reproduced"
        if failed and (self.every or not held):
            return "not reproduced"
        if failed:
            return "partly reproduced"
        return "inconclusive"


CheckFunction = Callable[[dict[str, Any], pd.DataFrame, "ReportContext"], Measurement]
CHECK_KINDS: dict[str, CheckFunction] = {}


def check_kind(name: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check kind: a function (check, rows, ctx) → :class:`Measurement`, where
    ``rows`` are the cells of the scope the section judges (a problem, a setting, the
    family) and ``check`` the claim's ``check`` mapping."""
    def register(fn: CheckFunction) -> CheckFunction:
        other = CHECK_KINDS.get(name)
        if other is not None and other.__qualname__ != fn.__qualname__:
            raise RegistrationError(f"check kind {name!r} is registered twice: by "
                                    f"{other.__module__} and by {fn.__module__}; rename one "
                                    f"of them")
        CHECK_KINDS[name] = fn
        return fn
    return register


# -- claims files ------------------------------------------------------------------------
def claim_files(family: Family, extra_dirs: Iterable[Path] = ()) -> list[Path]:
    """The claims files that may concern ``family``: its package's ``claims/*.yaml`` and
    every ``*.yaml`` of the user's folders (filtered by their ``family`` key on load)."""
    found: list[Path] = []
    if family.claims:
        folder = resources.files(family.claims).joinpath("claims")
        if folder.is_dir():
            found += sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml"))
    for d in extra_dirs:
        found += sorted(Path(d).glob("*.yaml"))
    return found


def load_references(family: Family, extra_dirs: Iterable[Path] = ()) -> list[Reference]:
    """Every claims file of ``family``, parsed; a malformed one is an ``InputError``."""
    refs = []
    for path in claim_files(family, extra_dirs):
        try:
            spec = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise InputError(f"not valid YAML ({err})".replace("\n", " "),
                             file=str(path)) from None
        if not isinstance(spec, dict) or spec.get("family") != family.name:
            continue
        try:
            claims = [Claim(id=c["id"], claim=c["claim"], source=c.get("source", ""),
                            check=dict(c["check"]), note=c.get("note", ""))
                      for c in spec.get("claims", [])]
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"malformed claim ({err}); each needs id, claim and check",
                             file=str(path)) from None
        refs.append(Reference(paper=spec.get("paper", ""), family=family.name, claims=claims,
                              path=str(path)))
    return refs


# -- selecting the rows a check talks about ---------------------------------------------
def select_strategy(df: pd.DataFrame, selector: str) -> pd.DataFrame:
    """Rows of ``df`` run with the strategy ``selector`` (``name`` or ``name[k=v,…]``);
    parameters not named must have their default value."""
    match = _SELECTOR.match(str(selector).strip())
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


def ok_rows(df: pd.DataFrame, selector: str) -> pd.DataFrame:
    """The ``ok`` rows of ``selector``."""
    rows = select_strategy(df, selector)
    return rows[rows["status"] == "ok"]


def describe_selector(selector: str) -> str | None:
    """The strategy's own words for the variant ``selector`` names (``Strategy.describe``),
    or None."""
    match = _SELECTOR.match(str(selector).strip())
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


SIDES = {"reproduced": True, "not reproduced": False, "inconclusive": None}


def judge_estimate(est: Estimate | None, check: dict[str, Any]) -> bool | None:
    """True / False / None (inconclusive) for an estimate's interval against the check's
    ``op``/``threshold``."""
    if est is None:
        return None
    return SIDES[est.side(check.get("op", "<="), float(check["threshold"]))]


def paired_values(rows: pd.DataFrame, selector: str, baseline: str, metric: str,
                  keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """The ok cells of ``selector`` and ``baseline`` paired (see :func:`pair_rows`)."""
    return pair_rows(ok_rows(rows, selector), ok_rows(rows, baseline), metric, keys)


def pair_rows(a: pd.DataFrame, b: pd.DataFrame, metric: str,
              keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Cells of ``a`` and ``b`` paired by problem instance (problem and its parameters),
    seed and the columns ``keys``: a frame with ``seed``, the keys, and ``a`` and ``b``
    (the metric of each). Cells with the same seed share data, split and initial
    weights, so a per-pair ratio or difference removes what the seed changes."""
    def side(r: pd.DataFrame) -> pd.DataFrame:
        if r.empty or metric not in r:
            return pd.DataFrame(columns=["_instance", "seed", *keys, metric])
        return r.assign(_instance=r["problem"] + "|" + r["params"].map(_problem_json))[
            ["_instance", "seed", *keys, metric]]

    on = ["_instance", "seed", *keys]
    both = side(a).merge(side(b), on=on, suffixes=("_a", "_b"))
    both = both.rename(columns={f"{metric}_a": "a", f"{metric}_b": "b"})
    return both[[*on[1:], "a", "b"]].astype({"a": float, "b": float})


def iteration_spread(history: pd.DataFrame, cell_ids: Any, metric: str | None = None
                     ) -> float | None:
    """The within-cell spread of a timing: the median over the cells ``cell_ids`` of the
    coefficient of variation of their per-iteration times, taken from the history values
    of ``metric`` (e.g. ``epoch_s`` per epoch) or, without one, from the training-time
    stamps of consecutive training-loss steps. None when the history has no such rows."""
    if history.empty:
        return None
    h = history[history["cell_id"].isin(list(cell_ids))]
    wanted = (h["metric"] == metric) if metric else (h["metric"] == "loss") & (
        h["split"] == "train")
    h = h[wanted]
    cvs = []
    for _, g in h.sort_values("step").groupby("cell_id"):
        times = g["value"].to_numpy(float) if metric else np.diff(g["wall_s"].to_numpy(float))
        if len(times) >= 2 and times.mean() > 0:
            cvs.append(times.std(ddof=1) / times.mean())
    return float(np.median(cvs)) if cvs else None


def summarise_pairs(pairs: pd.DataFrame, summarise: Callable[[Any, Any], Estimate | None]
                    = paired_ratio) -> Estimate | None:
    """``summarise(a, b)`` of the pairs of :func:`pair_rows`, counted in pairs when a seed
    gives several (e.g. one per learning rate), else in seeds."""
    est = summarise(pairs["a"], pairs["b"]) if len(pairs) else None
    if est is not None and len(pairs) > pairs["seed"].nunique():
        est = replace(est, unit="pair")
    return est


def _problem_json(params: str) -> str:
    return json.dumps(json.loads(params)["problem"], sort_keys=True)


# -- the one loop -----------------------------------------------------------------------
def claim_blocks(ctx: ReportContext, family: Family, rows: pd.DataFrame,
                 where: str = "") -> list[Any]:
    """A verdict for every claim of ``family``, judged on ``rows`` (the scope a section
    shows: a problem, a setting, or the whole family); ``where`` names that scope in the
    heading line. A check listing ``strategies`` gets one verdict per configuration present
    in the data (every one as ``no data`` when none is)."""
    from . import checks  # noqa: F401  (registers the generic kinds)

    blocks: list[Any] = []
    cost = {"cpu_hours": float(rows["cpu_hours"].sum()) if "cpu_hours" in rows else 0.0,
            "gpu_hours": float(rows["gpu_hours"].sum()) if "gpu_hours" in rows else 0.0}
    for ref in load_references(family, ctx.claim_dirs):
        scope = f", {where}" if where else ""
        about = {"paper": ref.paper, "section": family.title, **cost}
        in_scope = f" ({where})" if where else ""
        blocks.append(Paragraph(f"Claims of {ref.paper} (`{Path(ref.path).name}`){scope}:"))
        for claim in ref.claims:
            fn = CHECK_KINDS.get(str(claim.check.get("kind")))
            if fn is None:
                raise InputError(
                    f"claim {claim.id!r}: unknown check kind {claim.check.get('kind')!r}; "
                    f"known kinds: {', '.join(sorted(CHECK_KINDS))}", file=ref.path)
            selectors = claim.check.get("strategies")
            if not selectors:
                blocks.append(_verdict(claim, fn(claim.check, rows, ctx),
                                       about={**about, "label": claim.claim + in_scope}))
                continue
            present = [s for s in selectors if not ok_rows(rows, s).empty] or selectors
            for selector in present:
                check = {k: v for k, v in claim.check.items() if k != "strategies"}
                check["strategy"] = selector
                described = describe_selector(selector)
                text = f"{claim.claim} — configuration `{selector}`" + (
                    f": {described}" if described else "")
                label = f"{claim.claim} — `{selector}`{in_scope}"
                blocks.append(_verdict(claim, fn(check, rows, ctx),
                                       about={**about, "label": label}, text=text))
    return blocks


def _verdict(claim: Claim, m: Measurement, about: dict[str, Any],
             text: str | None = None) -> Verdict:
    detail = f"{m.detail} {claim.note}".strip()
    return Verdict(claim=text or claim.claim, source=claim.source, criterion=m.criterion,
                   measured=m.measured, outcome=m.outcome, detail=detail,
                   estimate=m.estimate.text() if m.estimate else "no estimate",
                   seeds=m.estimate.n if m.estimate else 0, claim_id=claim.id, **about)


def scoreboard(verdicts: list[Verdict]) -> list[Any]:
    """The report's opening: one line per verdict — paper, claim, verdict, estimate with
    its interval and seeds, the CPU- and GPU-hours of the cells it was judged on, and a
    link to its section."""
    if not verdicts:
        return [Paragraph("No published claim concerns the families in this folder.")]
    counts = ", ".join(f"{sum(v.outcome == o for v in verdicts)} {o}" for o in OUTCOMES
                       if any(v.outcome == o for v in verdicts))
    rows = [[v.paper.split(",")[0], v.label or v.claim, v.outcome.upper(), v.estimate,
             f"{v.cpu_hours:.3f}", f"{v.gpu_hours:.3f}", Link(v.section, f"#{slug(v.section)}")]
            for v in verdicts]
    return [Heading("Scoreboard"),
            Paragraph(f"{len(verdicts)} verdicts: {counts}. A claim is reproduced when the "
                      f"whole 95% interval of its estimate (paired over seeds) is on its "
                      f"side of the criterion, not reproduced when the whole interval is on "
                      f"the other side, inconclusive when it straddles."),
            Table(["paper", "claim", "verdict", "estimate [95% interval], seeds", "CPU-h",
                   "GPU-h", "section"], rows, caption="Every verdict of this report; cost: "
                   "the cells of the scope each claim is judged on.")]
