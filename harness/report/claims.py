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
from ..result import FAILED, OK
from ..schema import timing_columns
from ..stats import ALPHA, NON_NORMAL_P, NOT_FINITE, NOT_POSITIVE, Estimate, estimate, holm
from .document import Heading, Link, Paragraph, Table, Verdict, slug

if TYPE_CHECKING:
    from . import ReportContext

OUTCOMES = ("reproduced", "partly reproduced", "not reproduced", "inconclusive", "no data",
            "refused")
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


@dataclass(frozen=True)
class Item:
    """One thing a claim is judged on (a value, a problem, a point of a curve): its
    estimate, and the criterion ``value op threshold`` it must meet."""

    estimate: Estimate | None
    op: str
    threshold: float


def judge_items(items: list[Item], every: bool) -> list[bool | None]:
    """True / False / None per item, combined so that the claim's verdict keeps its error
    (docs/verdicts.md): an item is False only when Holm's procedure across the items rejects
    "it holds" at 2.5% (so a claim is wrongly "not reproduced" at most 2.5% of the time
    however many items it has); an item is True when its own interval is on the claim's
    side — enough for an every-item claim (an intersection-union test needs no correction),
    and Holm-corrected too when the items are judged separately."""
    p = [i.estimate.p_values(i.op, i.threshold) if i.estimate is not None else (1.0, 1.0)
         for i in items]
    fails = holm([f for _, f in p])
    holds = [h < ALPHA for h, _ in p] if every else holm([h for h, _ in p])
    return [True if h else False if f else None for h, f in zip(holds, fails, strict=True)]


@dataclass
class Measurement:
    """What a check measured. ``items``: what it judged (one value, one per problem, one
    per point of a curve), combined by :func:`judge_items`; or ``passed``, the decisions of
    a check that combines its items itself: True when the item holds, False when it surely
    does not, None when it cannot tell; None or empty when there is nothing to judge
    (``no data``). ``estimate``: the figure the verdict prints (its value, 95% interval,
    seeds and what was counted and excluded). ``every``: the claim must hold for every
    item (so one item surely failing makes it not reproduced); otherwise each item is a
    claim of its own and some passing make it partly reproduced. ``refused``: why the data
    cannot answer the claim as written."""

    criterion: str
    measured: str
    passed: list[bool | None] | None = None
    detail: str = ""
    estimate: Estimate | None = None
    every: bool = False
    items: list[Item] | None = None
    refused: str = ""
    target: str = ""  # the criterion's side and threshold, when the check's own are not it

    def __post_init__(self) -> None:
        if self.items is not None and self.passed is None:
            self.passed = judge_items(self.items, self.every) if self.items else None

    @property
    def outcome(self) -> str:
        if self.refused:
            return "refused"
        if not self.passed:
            return "no data"
        held = sum(p is True for p in self.passed)
        failed = sum(p is False for p in self.passed)
        if held == len(self.passed):
            return "reproduced"
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
    selectors with the parameters that vary, ``free`` ones left out."""
    from .labels import sort_labels, with_labels

    rows = df if name is None else df[df["strategy"] == name]
    rows = rows.drop(columns=[f"s_{k}" for k in free if f"s_{k}" in rows])
    return sort_labels(with_labels(rows)["label"]) if len(rows) else []


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


# -- the values a claim judges: failed cells counted, the rest accounted for --------------
COUNTED = tuple(sorted(FAILED))  # a method's failure is an outcome: the worst one
WORSE = ("higher", "lower")
FAILED_RULES = ("worst", "exclude")  # a duration's default is exclude


def _combine(a: int | None, b: int | None) -> int | None:
    """Two directions in which filled values may understate a truth: the same one, or
    None when they disagree (or either is unknown)."""
    if a is None or b is None:
        return None
    return a or b if not (a and b) or a == b else None


@dataclass
class Accounting:
    """Cells counted as the worst outcome and cells left out, by why; and ``bound``, the
    direction in which the counted (filled) values may understate the truth: +1 the true
    value is higher than shown, −1 lower, 0 nothing filled, None both ways."""

    counted: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    bound: int | None = 0

    def __add__(self, other: Accounting) -> Accounting:
        """The accounting of both (values of one side, or two parts of one estimate)."""
        out = Accounting(dict(self.counted), dict(self.excluded),
                         _combine(self.bound, other.bound))
        for mine, theirs in ((out.counted, other.counted), (out.excluded, other.excluded)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        return out

    def versus(self, baseline: Accounting) -> Accounting:
        """The accounting of a ratio or difference of this side over ``baseline``: a
        baseline value understated upwards understates the ratio downwards."""
        flipped = None if baseline.bound is None else -baseline.bound
        return Accounting(self.counted, self.excluded, self.bound) + Accounting(
            baseline.counted, baseline.excluded, flipped)

    def onto(self, est: Estimate | None) -> Estimate | None:
        """``est`` carrying this accounting beside its own."""
        if est is None:
            return None
        return replace(est, counted=tuple(self.counted.items()) + est.counted,
                       excluded=tuple(self.excluded.items()) + est.excluded,
                       bias=_combine(self.bound, est.bias))


def instance_of(rows: pd.DataFrame) -> pd.Series:
    """Each row's problem instance: the problem and its parameters."""
    return rows["problem"] + " " + rows["params"].map(_problem_json)


def outcome_values(variant: pd.DataFrame, scope: pd.DataFrame, metric: str,
                   worse: str = "higher", failed: str | None = None
                   ) -> tuple[pd.DataFrame, Accounting]:
    """The rows of ``variant`` with ``metric`` as a claim counts it: an ``ok`` cell its
    value; a failed cell (error, timeout, diverged, oom) the worst value any cell of its
    problem instance in ``scope`` reached (the largest when ``worse`` is ``higher``), which
    can only understate how bad the failure was — the accounting's ``bound`` says which
    way, and a verdict is never decided in the direction a filled value could flatter. A
    duration (``failed: exclude``, the default for timings: a crash is not a training time)
    leaves failed cells out instead. A cell that is not an outcome of the method
    (preempted, skipped) or an ok cell without a finite value is left out. Returns the rows
    kept and what was counted and left out."""
    if worse not in WORSE:
        raise ClaimRefused(f"worse: {worse!r}; one of {', '.join(WORSE)}")
    failed = failed or ("exclude" if metric in timing_columns() else "worst")
    if failed not in FAILED_RULES:
        raise ClaimRefused(f"failed: {failed!r}; one of {', '.join(FAILED_RULES)}")
    if metric not in variant:
        return variant.iloc[0:0], Accounting(excluded={f"no column {metric}": len(variant)})
    status = variant["status"]
    is_failed = status.isin(COUNTED)
    ok = (status == OK) & np.isfinite(pd.to_numeric(variant[metric], errors="coerce"))
    fill = pd.Series(np.nan, index=variant.index)
    if failed == "worst" and metric in scope and is_failed.any():
        values = pd.to_numeric(scope[metric], errors="coerce")
        finite = values[np.isfinite(values)]
        worst = finite.groupby(instance_of(scope)[finite.index])
        worst = worst.max() if worse == "higher" else worst.min()
        fill = instance_of(variant).map(worst).astype(float)
    filled = is_failed & fill.notna()
    acc = Accounting(bound=(1 if worse == "higher" else -1) if filled.any() else 0)
    for st, n in status[filled].value_counts().items():
        acc.counted[f"{st} cell{'s' * (n > 1)}"] = n
    for st, n in status[(is_failed & ~filled) | (~is_failed & (status != OK))
                        ].value_counts().items():
        acc.excluded[f"{st} cell{'s' * (n > 1)}"] = n
    missing = int(((status == OK) & ~ok).sum())
    if missing:
        acc.excluded[f"ok cell{'s' * (missing > 1)} without a finite {metric}"] = missing
    kept = variant[ok | filled].copy()
    kept[metric] = pd.to_numeric(kept[metric], errors="coerce").where(
        kept["status"] == OK, fill[kept.index]).astype(float)
    return kept, acc


SIDES = {"reproduced": True, "not reproduced": False, "inconclusive": None}


def judge_estimate(est: Estimate | None, check: dict[str, Any]) -> bool | None:
    """True / False / None (inconclusive) for an estimate's interval against the check's
    ``op``/``threshold``."""
    if est is None:
        return None
    return SIDES[est.side(check.get("op", "<="), float(check["threshold"]))]


def variant_values(rows: pd.DataFrame, selector: str, metric: str, free: tuple[str, ...] = (),
                   worse: str = "higher", failed: str | None = None
                   ) -> tuple[pd.DataFrame, Accounting]:
    """The one variant ``selector`` names in ``rows`` with ``metric`` as a claim counts it
    (:func:`select_variant`, :func:`outcome_values`)."""
    return outcome_values(select_variant(rows, selector, free), rows, metric, worse, failed)


def paired_values(rows: pd.DataFrame, selector: str, baseline: str, metric: str,
                  keys: tuple[str, ...] = (), worse: str = "higher", failed: str | None = None
                  ) -> tuple[pd.DataFrame, Accounting]:
    """The cells of the variants ``selector`` and ``baseline`` paired (see
    :func:`pair_rows`), failed cells counted as the worst outcome, and the accounting.
    ``keys``: parameter columns both sides are paired on (and free to vary)."""
    free = tuple(k[2:] if k.startswith("s_") else k for k in keys)
    a, acc_a = variant_values(rows, selector, metric, free, worse, failed)
    b, acc_b = variant_values(rows, baseline, metric, free, worse, failed)
    return pair_rows(a, b, metric, keys), acc_a.versus(acc_b)


def pair_rows(a: pd.DataFrame, b: pd.DataFrame, metric: str,
              keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Cells of ``a`` and ``b`` paired by problem instance (problem and its parameters),
    seed and the columns ``keys``: a frame with ``instance``, ``seed``, the keys, and ``a``
    and ``b`` (the metric of each). Cells with the same seed share data, split and initial
    weights, so a per-pair ratio or difference removes what the seed changes. A side with
    two cells for one (instance, seed, keys) is refused (:class:`ClaimRefused`): it holds
    two variants, and pairing each with each would count one seed several times."""
    on = ["instance", "seed", *keys]

    def side(r: pd.DataFrame, which: str) -> pd.DataFrame:
        if r.empty or metric not in r:
            return pd.DataFrame(columns=[*on, metric])
        r = r.assign(instance=r["problem"] + " " + r["params"].map(_problem_json))[
            [*on, metric]]
        twice = r[r.duplicated(on, keep=False)]
        if len(twice):
            first = twice.iloc[0]
            where = ", ".join(f"{k} {first[k]}" for k in on)
            raise ClaimRefused(f"{which} has {int(twice.duplicated(on).sum()) + 1} cells for "
                               f"{where}: it holds several variants; name one")
        return r

    left, right = side(a, "the strategy"), side(b, "the baseline")
    both = left.merge(right, on=on, suffixes=("_a", "_b"))
    both = both.rename(columns={f"{metric}_a": "a", f"{metric}_b": "b"})
    both = both[[*on, "a", "b"]].astype({"a": float, "b": float})
    # cells whose instance and seed the other side lacks: no pair, but counted
    both.attrs["unpaired"] = len(left) + len(right) - 2 * len(both)
    return both


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


def summarise_pairs(pairs: pd.DataFrame, kind: str = "ratio", acc: Accounting | None = None
                    ) -> Estimate | None:
    """The estimate of ``kind`` (``ratio`` or ``difference``) from the pairs of
    :func:`pair_rows`, reduced within each seed first (the mean log ratio, or the mean
    difference, over the seed's instances and keys), so that n counts seeds and the
    interval has seeds − 1 degrees of freedom. Pairs with a value the scale cannot take
    (not finite, or not positive for a ratio) are left out and counted."""
    if pairs.empty:
        return None
    a, b = pairs["a"].to_numpy(float), pairs["b"].to_numpy(float)
    # (a filled value on either side keeps its direction: ``acc`` carries it)
    if kind == "ratio":
        ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
        x = np.log(np.where(ok, a, 1.0)) - np.log(np.where(ok, b, 1.0))
    else:
        x = a - b
        ok = np.isfinite(x)
    per_seed = pd.Series(x[ok]).groupby(pairs["seed"].to_numpy()[ok]).mean()
    dropped = int((~ok).sum())
    why = NOT_POSITIVE if kind == "ratio" else NOT_FINITE
    unpaired = ("cells without a partner (the other side lacks their instance and seed)",
                int(pairs.attrs.get("unpaired", 0)))
    return (acc or Accounting()).onto(
        estimate(per_seed.to_numpy(), kind, [(f"pairs with {why}", dropped), unpaired]))


def per_seed_mean(rows: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` reduced within each seed (the mean over the seed's cells)."""
    return rows.groupby("seed")[metric].mean()


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
                blocks.append(_verdict(claim, _judge(fn, claim.check, rows, ctx),
                                       about={**about, "label": claim.claim + in_scope}))
                continue
            present = _distinct_variants(rows, selectors) or dict.fromkeys(selectors)
            for selector, variant in present.items():
                check = {k: v for k, v in claim.check.items() if k != "strategies"}
                check["strategy"] = selector
                described = describe_variant(variant) if variant is not None else (
                    describe_selector(selector))
                text = f"{claim.claim} — configuration `{selector}`" + (
                    f": {described}" if described else "")
                label = f"{claim.claim} — `{selector}`{in_scope}"
                blocks.append(_verdict(claim, _judge(fn, check, rows, ctx),
                                       about={**about, "label": label}, text=text,
                                       check=check))
    return blocks


def _distinct_variants(rows: pd.DataFrame, selectors: list[str]
                       ) -> dict[str, pd.DataFrame]:
    """The selectors that name a variant present in ``rows``, each variant once (the first
    selector naming it), with the variant's rows."""
    found: dict[str, pd.DataFrame] = {}
    seen: set[frozenset[str]] = set()
    for selector in selectors:
        try:
            variant = select_variant(rows, selector)
        except ClaimRefused:
            continue
        cells = frozenset(variant.index)  # rows of one frame: its index names them
        if cells not in seen:
            seen.add(cells)
            found[selector] = variant
    return found


def describe_variant(rows: pd.DataFrame) -> str | None:
    """The strategy's own words for the variant of ``rows`` (``Strategy.describe`` of the
    parameters its cells ran with), or None."""
    cls = registry.strategies().get(str(rows["strategy"].iloc[0]))
    if cls is None:
        return None
    return cls.describe(json.loads(rows["params"].iloc[0])["strategy"])


def _judge(fn: CheckFunction, check: dict[str, Any], rows: pd.DataFrame,
           ctx: ReportContext) -> Measurement:
    """``fn``'s measurement, or a refusal naming why the data cannot answer the check."""
    try:
        return fn(check, rows, ctx)
    except ClaimRefused as why:
        shown = ", ".join(f"{k}: {v}" for k, v in check.items())
        return Measurement(f"the check as written ({shown})", f"refused: {why}", refused=str(why))


def target(check: dict[str, Any]) -> str:
    """The criterion's side and threshold, ``≤ 1.15``, when the check has them."""
    if "threshold" not in check:
        return ""
    op = {"<=": "≤", ">=": "≥"}.get(check.get("op", "<="), check.get("op", "<="))
    return f"{op} {float(check['threshold']):g}"


def _verdict(claim: Claim, m: Measurement, about: dict[str, Any],
             text: str | None = None, check: dict[str, Any] | None = None) -> Verdict:
    est = m.estimate
    detail = f"{m.detail} {claim.note} {_assumption(est)}".strip()
    return Verdict(claim=text or claim.claim, source=claim.source, criterion=m.criterion,
                   measured=m.measured, outcome=m.outcome, detail=detail,
                   estimate=est.text(accounting=False) if est else (
                       f"none: {m.refused}" if m.refused else "no estimate"),
                   seeds=est.n if est else 0, claim_id=claim.id,
                   target=m.target or target(check or claim.check),
                   quantity=describe_kind(est.kind) if est else "",
                   accounting=est.accounting().lstrip("; ") if est else "", **about)


def _assumption(est: Estimate | None) -> str:
    """A warning when the per-seed values look far from normal (docs/verdicts.md)."""
    p = est.normality() if est is not None else None
    if p is None or p >= NON_NORMAL_P:
        return ""
    return (f"Warning: the per-seed values look far from normal (Shapiro–Wilk p = {p:.2g}, "
            f"{est.n} seeds), the interval's assumption: a disturbance of one side of some "
            f"pairs (another job on a cell's cores) does not cancel, and the interval may be "
            f"too narrow.")


def describe_kind(kind: str) -> str:
    """What an estimate of ``kind`` is, in the scoreboard's words."""
    return {"ratio": "ratio (geometric mean)", "reduction": "reduction, %",
            "difference": "difference (mean)", "mean": "mean",
            "bounds": "fraction of problems (bounds, not an interval)"}.get(kind, kind)


def scoreboard(verdicts: list[Verdict]) -> list[Any]:
    """The report's opening: one line per verdict — paper, claim, verdict, the criterion,
    what the estimate is and its value with its interval, the seeds it rests on, what it
    counted as worst or excluded, the CPU- and GPU-hours of the cells it was judged on, and
    a link to its section."""
    if not verdicts:
        return [Paragraph("No published claim concerns the families in this folder.")]
    counts = ", ".join(f"{sum(v.outcome == o for v in verdicts)} {o}" for o in OUTCOMES
                       if any(v.outcome == o for v in verdicts))
    rows = [[v.paper.split(",")[0], v.label or v.claim, v.outcome.upper(),
             v.target or "see section", v.quantity or "–", v.estimate, v.seeds,
             v.accounting or "none", f"{v.cpu_hours:.3f}", f"{v.gpu_hours:.3f}",
             Link(v.section, f"#{slug(v.section)}")]
            for v in verdicts]
    return [Heading("Scoreboard"),
            Paragraph(f"{len(verdicts)} verdicts: {counts}. A claim is reproduced when the "
                      f"whole 95% interval of its estimate (one value per seed, paired by "
                      f"seed) is on its side of the criterion, not reproduced when the whole "
                      f"interval is on the other side (for a claim of several items, when "
                      f"Holm's procedure across them finds one on the other side), "
                      f"inconclusive when it straddles, refused when the data cannot answer "
                      f"the claim as written. Failed cells count as the worst outcome; what "
                      f"was left out is listed. What a verdict guarantees and assumes: "
                      f"docs/verdicts.md."),
            Table(["paper", "claim", "verdict", "criterion", "estimate of", "estimate [95% "
                   "interval]", "seeds", "counted as worst / excluded", "CPU-h", "GPU-h",
                   "section"], rows, caption="Every verdict of this report; cost: the cells "
                   "of the scope each claim is judged on.")]
