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

Which cells a check judges is :mod:`harness.report.selection` (one named variant per side)
and :mod:`harness.report.pairing` (failed cells counted, pairs by instance and seed, one
value per seed); both are re-exported here for a family's check kinds.

Check kinds: the generic ones (``harness.report.checks``: a metric against a threshold,
a ratio or difference of two variants, a curve ratio at a named point) need no code;
a family registers only the kinds that are truly its own, with :func:`check_kind`, in its
report section's module. Every kind returns a :class:`Measurement`; the outcome vocabulary
is :data:`OUTCOMES`, decided here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from ..errors import InputError, RegistrationError
from ..family import Family
from ..sequential import nominal_levels
from ..stats import ALPHA, NON_NORMAL_P, Estimate, holm, judged_at, level
from .document import Paragraph, Verdict

# Selection and pairing live in their own modules; a family's check kinds import them from
# here, beside the Measurement they return.
from .pairing import (  # noqa: F401
    Accounting,
    instance_of,
    outcome_values,
    pair_rows,
    paired_values,
    summarise_pairs,
    variant_values,
)
from .selection import (  # noqa: F401
    ClaimRefused,
    describe_selector,
    describe_variant,
    ok_rows,
    select_strategy,
    select_variant,
    tracking,
    variant_labels,
)

if TYPE_CHECKING:
    from . import ReportContext

OUTCOMES = ("reproduced", "partly reproduced", "not reproduced", "inconclusive", "no data",
            "refused")


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
class Judged:
    """How a verdict was reached, for a run until conclusive: the claim's ``key`` (file,
    id, configuration, scope), the ``cells`` it was judged on (its scope), the distinct
    ``seeds`` among them, the figure's ``estimate``, the ``level`` (one-sided) it was
    judged at, and the check's ``op`` and ``threshold`` (None when it has no single one)."""

    key: str
    cells: tuple[str, ...]
    seeds: tuple[int, ...]
    estimate: Estimate | None
    level: float
    op: str = "<="
    threshold: float | None = None
    stopped: str = ""  # why its seeds stopped, in a folder run until conclusive


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
    sizes = [i.estimate.n if i.estimate is not None else 0 for i in items]
    fails = holm([f for _, f in p], sizes=sizes)
    holds = ([h < level(ALPHA, k) for (h, _), k in zip(p, sizes, strict=True)] if every
             else holm([h for h, _ in p], sizes=sizes))
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


def check_claim_dirs(dirs: Iterable[Path]) -> None:
    """Refuse (``InputError``, exit code 2) a user's claims file that is not YAML, or names
    no family, or one no registered problem or strategy belongs to: it would otherwise be
    ignored without a word. Its claims are checked when its family's section loads it."""
    from .. import registry

    known = sorted({cls.family for table in (registry.problems(), registry.strategies())
                    for cls in table.values()})
    for path in (p for d in dirs for p in sorted(Path(d).glob("*.yaml"))):
        spec = _read_claims_file(path)
        name = spec.get("family") if isinstance(spec, dict) else None
        if not isinstance(name, str) or name not in known:
            given = "no family key" if name is None else f"family {name!r}"
            raise InputError(f"{given}; a claims file names the family its claims are about: "
                             f"family: one of {', '.join(known)}", file=str(path))


def _read_claims_file(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"not valid YAML ({err})".replace("\n", " "),
                         file=str(path)) from None


def load_references(family: Family, extra_dirs: Iterable[Path] = ()) -> list[Reference]:
    """Every claims file of ``family``, parsed; a malformed one is an ``InputError``."""
    refs = []
    for path in claim_files(family, extra_dirs):
        spec = _read_claims_file(path)
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


SIDES = {"reproduced": True, "not reproduced": False, "inconclusive": None}


def judge_estimate(est: Estimate | None, check: dict[str, Any]) -> bool | None:
    """True / False / None (inconclusive) for an estimate's interval against the check's
    ``op``/``threshold``."""
    if est is None:
        return None
    return SIDES[est.side(check.get("op", "<="), float(check["threshold"]))]


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
            key = f"{Path(ref.path).name}:{claim.id}"
            if not selectors:
                blocks.append(_verdict(claim, *judge_claim(fn, claim.check, rows, ctx,
                                                       f"{key}:{where}"),
                                       about={**about, "label": claim.claim + in_scope,
                                              "scope": in_scope.strip()}))
                continue
            present = _distinct_variants(rows, selectors) or dict.fromkeys(selectors)
            for selector, variant in present.items():
                check = {k: v for k, v in claim.check.items() if k != "strategies"}
                check["strategy"] = selector
                described = describe_variant(variant) if variant is not None else (
                    describe_selector(selector))
                text = f"{claim.claim} — configuration `{selector}`" + (
                    f": {described}" if described else "")
                scoped = f"`{selector}`{in_scope}"
                blocks.append(_verdict(claim, *judge_claim(fn, check, rows, ctx,
                                                       f"{key}[{selector}]:{where}"),
                                       about={**about, "label": f"{claim.claim} — {scoped}",
                                              "scope": scoped}, text=text, check=check))
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


def _judge(fn: CheckFunction, check: dict[str, Any], rows: pd.DataFrame,
           ctx: ReportContext) -> Measurement:
    """``fn``'s measurement, or a refusal naming why the data cannot answer the check."""
    try:
        return fn(check, rows, ctx)
    except ClaimRefused as why:
        shown = ", ".join(f"{k}: {v}" for k, v in check.items())
        return Measurement(f"the check as written ({shown})", f"refused: {why}", refused=str(why))


def _seeds(frames: list[pd.DataFrame]) -> tuple[int, ...]:
    found = {int(x) for f in frames if len(f) for x in f["seed"].unique()}
    return tuple(sorted(found))


class _Look:
    """The level of the look a claim's seeds reach (``(alpha, size) → level``, for
    :func:`harness.stats.judged_at`): ``n`` is fixed at the first use, from the cells the
    check selected by then (a check selects its cells before it estimates anything)."""

    def __init__(self, plan: Any, state: Any, selected: list[pd.DataFrame],
                 n: int | None = None):
        self.plan, self.state, self.selected, self.n = plan, state, selected, n

    @property
    def looks(self) -> tuple[int, ...]:
        return self.plan.looks(self.state.first if self.state is not None else self.n)

    def __call__(self, alpha: float, size: int | None = None) -> float:
        if self.n is None:
            self.n = len(_seeds(self.selected))
        return nominal_levels(self.looks, self.plan.spending, self.n)(alpha, size)


def _at_a_look(seeds: tuple[int, ...], looks: tuple[int, ...]) -> tuple[int, ...] | None:
    """The claim's first seeds at the last scheduled look they reach, or None when they
    are at a look already (or below the first). Why: between two looks (another claim
    bought seeds for the same cells) a claim judged on all its seeds would be judged again
    at the same boundary, and each extra judging adds error."""
    reached = [size for size in looks if size <= len(seeds)]
    if not reached or reached[-1] == len(seeds):
        return None
    return seeds[:reached[-1]]


def judge_claim(fn: CheckFunction, check: dict[str, Any], rows: pd.DataFrame,
                ctx: ReportContext, key: str) -> tuple[Measurement, Judged]:
    """``fn``'s measurement and how it was reached (:class:`Judged`). In a folder run until
    conclusive (``ctx.looks``) the claim is judged at the level of the look its seeds reach
    (the seeds of the cells its check selects), on the seeds of that look, and a claim that
    stopped on the cells it stopped with (:mod:`harness.looks`)."""
    plan = ctx.looks
    state = plan.claims.get(key) if plan is not None else None
    if state is not None and state.stopped:  # not the cells other claims bought later
        rows = rows[~rows["cell_id"].isin(plan.bought_after(state))]
    look = None
    with tracking() as selected:
        if plan is None:
            m = _judge(fn, check, rows, ctx)
        else:
            look = _Look(plan, state, selected)
            with judged_at(look):
                m = _judge(fn, check, rows, ctx)
    scope = pd.concat(selected) if selected else rows
    seeds = _seeds([scope])
    if look is not None and seeds:
        if look.n is None:  # the check estimated nothing (no data): its look is its seeds'
            look.n = len(seeds)
        kept = _at_a_look(seeds, look.looks) or seeds
        if kept != seeds or look.n != len(seeds):
            # judge again on the seeds of the look reached (or, when the check selected
            # more seeds after its first estimate, at their final count)
            look = _Look(plan, state, [], n=len(kept))
            with judged_at(look):
                m = _judge(fn, check, rows[rows["seed"].isin(kept)], ctx)
    level_used = ALPHA if look is None else (look(ALPHA) if seeds else 0.0)
    cells = tuple(sorted(set(scope["cell_id"]))) if "cell_id" in scope else ()
    threshold = check.get("threshold")
    return m, Judged(key, cells, seeds, m.estimate, level_used, str(check.get("op", "<=")),
                     float(threshold) if isinstance(threshold, int | float) else None,
                     state.stopped if state is not None else "")


def target(check: dict[str, Any]) -> str:
    """The criterion's side and threshold, ``≤ 1.15``, when the check has them."""
    if "threshold" not in check:
        return ""
    op = {"<=": "≤", ">=": "≥"}.get(check.get("op", "<="), check.get("op", "<="))
    return f"{op} {float(check['threshold']):g}"


def _verdict(claim: Claim, m: Measurement, judged: Judged | None = None, *,
             about: dict[str, Any], text: str | None = None,
             check: dict[str, Any] | None = None) -> Verdict:
    est = m.estimate
    check = check or claim.check
    detail = f"{m.detail} {claim.note} {_assumption(est)}".strip()
    numbers: dict[str, Any] = {}
    if est is not None:
        op, threshold = _criterion_of(m, check)
        numbers = {"value": est.value, "low": est.low, "high": est.high, "kind": est.kind,
                   "op": op, "threshold": threshold}
    return Verdict(claim=text or claim.claim, source=claim.source, criterion=m.criterion,
                   measured=m.measured, outcome=m.outcome, detail=detail,
                   estimate=est.text(accounting=False) if est else (
                       f"none: {m.refused}" if m.refused else "no estimate"),
                   seeds=est.n if est else 0, claim_id=claim.id,
                   target=m.target or target(check),
                   quantity=describe_kind(est.kind) if est else "",
                   accounting=est.accounting().lstrip("; ") if est else "", judged=judged,
                   stopped=judged.stopped if judged else "", **numbers,
                   **about)


def _criterion_of(m: Measurement, check: dict[str, Any]) -> tuple[str, float | None]:
    """The side and threshold the printed estimate was judged against: its own item's when
    it is one of the items (a check whose threshold is not the check's ``threshold``, e.g.
    a band's low end or one tolerance per problem), else the check's; (op, None) when it
    has none."""
    for item in m.items or ():
        if item.estimate is not None and item.estimate == m.estimate:  # equal, if rebuilt
            return item.op, float(item.threshold)
    op = str(check.get("op", "<="))
    try:
        return op, float(check["threshold"])
    except (KeyError, TypeError, ValueError):
        return op, None


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
    """What an estimate of ``kind`` is, in a verdict's words (its section's block)."""
    return {"ratio": "ratio (geometric mean)", "reduction": "reduction, %",
            "difference": "difference (mean)", "mean": "mean",
            "bounds": "fraction of problems (bounds, not an interval)"}.get(kind, kind)
