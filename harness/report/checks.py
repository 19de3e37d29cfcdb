"""The generic check kinds: claims any family can state without code.

Each judges one variant per side (a selector: ``name``, ``name[key=value,…]``; parameters
it does not name take their one value in the scope, or their default when they take
several, else the claim is refused), one value per seed (a seed's cells are reduced to
their mean — of the log ratios for a ratio — before any interval), with failed cells
counted as the worst outcome (``worse: higher``, the default, or ``lower``) and every
left-out cell counted in the estimate. The claim is reproduced when the whole 95% interval
is on its side of the threshold, not reproduced when it is wholly on the other side,
inconclusive when it straddles (``harness.stats``; several items: ``judge_items``).

- ``metric``: the mean of a metric of one strategy variant, against a threshold::

      {kind: metric, metric: test_mse, strategy: "ridge[lam=0.1]", op: "<=", threshold: 0.05}

- ``ratio`` / ``difference``: a metric of ``strategy`` divided by (minus) that of
  ``baseline`` in the same problem instance and seed, against a threshold::

      {kind: ratio, metric: train_s, strategy: fast, baseline: slow, op: "<", threshold: 1}

- ``curve_ratio``: a curve property — along a swept parameter ``over``, per seed the value
  at the point ``at`` (a number, or the name of a parameter whose value in the rows is the
  point) divided by the smaller of the values at ``at × f`` for ``f`` in ``around``
  (default [0.5, 2]); with ``baseline``, that ratio divided by the baseline's own.

Every kind accepts ``where: {param: value, …}`` to restrict the rows, and ``metric``,
``ratio`` and ``difference`` accept ``over: PARAM``: the claim must hold at every value of
the parameter in the scope (each value is an item; a value without data is inconclusive,
never skipped), and both sides are free to vary along it (``over: lr`` pairs each learning
rate of the strategy with the baseline's at the same learning rate).

A name in ``over:``, ``at:`` or ``where:`` is a column's full name (``s_lr``) or a bare
parameter name (``lr``), resolved by :func:`claim_column` against the scope's cells; a bare
name that both their problem and their strategy declare refuses the claim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..stats import Estimate, estimate
from ..vocabulary import STRATEGY, AmbiguousName, parameter_names, resolve
from .claims import (
    Accounting,
    ClaimRefused,
    Item,
    Measurement,
    check_kind,
    outcome_values,
    pair_rows,
    paired_values,
    select_variant,
    summarise_pairs,
    variant_values,
)
from .document import fmt

if TYPE_CHECKING:
    from . import ReportContext


def claim_column(rows: pd.DataFrame, name: str) -> str | None:
    """The column of ``rows`` that ``name`` (a key of ``over:``, ``at:`` or ``where:``)
    means (:func:`harness.vocabulary.resolve`), None when none; a bare name that both the
    problem and the strategy of the rows declare (``lr`` for ``p_lr`` and ``s_lr``)
    refuses the claim, naming both columns."""
    try:
        return resolve(name, rows)
    except AmbiguousName as err:
        raise ClaimRefused(str(err)) from None


def _where(rows: pd.DataFrame, check: dict[str, Any]) -> pd.DataFrame:
    scope = rows  # names are resolved against the whole scope, never a filtered part
    for key, value in (check.get("where") or {}).items():
        col = claim_column(scope, key)
        rows = rows[rows[col] == value] if col else rows.iloc[0:0]
    return rows


def _criterion(what: str, check: dict[str, Any]) -> str:
    return f"{what} {check.get('op', '<=')} {float(check['threshold']):g}"


def _item(est: Estimate | None, check: dict[str, Any]) -> Item:
    return Item(est, check.get("op", "<="), float(check["threshold"]))


def _over(rows: pd.DataFrame, check: dict[str, Any]) -> str | None:
    """The column ``over`` names; refused when the check reduces it to one point chosen by
    the data."""
    if check.get("reduce", "all") != "all":
        raise ClaimRefused(f"reduce: {check['reduce']} picks the point by the data it then "
                           f"judges; a claim over {check['over']} is judged at every point")
    col = claim_column(rows, check["over"])
    if col is None:
        raise ClaimRefused(f"over: no parameter {check['over']!r} in the scope")
    return col


def judge_points(check: dict[str, Any], points: dict[Any, Estimate | None], criterion: str
                 ) -> Measurement:
    """One item per value of ``over`` in the scope (``points``: value → estimate, None
    where there is no data); the claim must hold at each."""
    if not points or all(e is None for e in points.values()):
        return Measurement(criterion, "no point with data", None)
    over = check["over"]
    text = "; ".join(f"{over} = {fmt(p)}: {e.text() if e else 'no data of both sides'}"
                     for p, e in points.items())
    judged = [e for e in points.values() if e is not None]
    worst = max(judged, key=lambda e: _distance(e, check))
    return Measurement(f"{criterion}, at each {over}", text,
                       items=[_item(e, check) for e in points.values()],
                       estimate=worst, every=True)


def _distance(e: Estimate, check: dict[str, Any]) -> float:
    """How far an estimate is on the wrong side of the threshold (for the point shown)."""
    sign = 1.0 if check.get("op", "<=") in ("<", "<=") else -1.0
    return sign * (e.value - float(check["threshold"]))


def nothing_left(empty: str, acc: Accounting | None) -> str:
    """Why a check has no data, with what was left out (e.g. every timing the placement
    audit flagged), so a "no data" verdict says it."""
    left = "; ".join(f"{n} excluded ({why})" for why, n in (acc.excluded.items()
                                                             if acc else ()) if n)
    return f"{empty} ({left})" if left else empty


def _single(check: dict[str, Any], est: Estimate | None, criterion: str,
            empty: str, acc: Accounting | None = None) -> Measurement:
    if est is None:
        return Measurement(criterion, nothing_left(empty, acc), None)
    return Measurement(criterion, est.text(), items=[_item(est, check)], estimate=est)


def _mean_over_seeds(rows: pd.DataFrame, metric: str, acc: Accounting) -> Estimate | None:
    return acc.onto(estimate(rows.groupby("seed")[metric].mean().to_numpy(), "mean"))


def _free(over: str | None) -> tuple[str, ...]:
    """The strategy parameter ``over`` sweeps (free in a selector), if it is one."""
    return parameter_names([over] if over else [], STRATEGY)


def _at_points(rows: pd.DataFrame, over: str, variants: list[pd.DataFrame]):
    """(point, the scope's rows there, each variant's rows there) for every value of
    ``over`` in the scope."""
    for p in sorted(rows[over].dropna().unique()):
        yield p, rows[rows[over] == p], [v[v[over] == p] for v in variants]


@check_kind("metric")
def metric_check(check: dict[str, Any], rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    metric, sel, worse = check["metric"], check["strategy"], check.get("worse", "higher")
    criterion = _criterion(f"mean of `{metric}` of `{sel}` over seeds", check)
    over = _over(rows, check) if "over" in check else None
    rows = _where(rows, check)
    variant = select_variant(rows, sel, _free(over))
    if over:
        points = {}
        for p, scope, (v,) in _at_points(rows, over, [variant]):
            data, acc = outcome_values(v, scope, metric, worse)
            points[p] = _mean_over_seeds(data, metric, acc)
        return judge_points(check, points, criterion)
    data, acc = outcome_values(variant, rows, metric, worse)
    return _single(check, _mean_over_seeds(data, metric, acc), criterion, "no cells", acc)


def _paired(check: dict[str, Any], rows: pd.DataFrame, kind: str, sign: str) -> Measurement:
    metric, sel, base = check["metric"], check["strategy"], check["baseline"]
    worse = check.get("worse", "higher")
    criterion = _criterion(f"`{metric}` of `{sel}` {sign} that of `{base}`, per seed", check)
    over = _over(rows, check) if "over" in check else None
    rows = _where(rows, check)
    if not over:
        pairs, acc = paired_values(rows, sel, base, metric, (), worse)
        return _single(check, summarise_pairs(pairs, kind, acc), criterion,
                       "no cells of both variants with a common seed", acc)
    sides = [select_variant(rows, s, _free(over)) for s in (sel, base)]
    points = {}
    for p, scope, (a, b) in _at_points(rows, over, sides):
        (a, acc_a), (b, acc_b) = (outcome_values(x, scope, metric, worse) for x in (a, b))
        points[p] = summarise_pairs(pair_rows(a, b, metric), kind, acc_a.versus(acc_b))
    return judge_points(check, points, criterion)


@check_kind("ratio")
def ratio_check(check: dict[str, Any], rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    return _paired(check, rows, "ratio", "÷")


@check_kind("difference")
def difference_check(check: dict[str, Any], rows: pd.DataFrame,
                     ctx: ReportContext) -> Measurement:
    return _paired(check, rows, "difference", "−")


def curve_ratios(rows: pd.DataFrame, check: dict[str, Any], selector: str
                 ) -> tuple[pd.Series | None, str, Accounting]:
    """Per seed, the value of ``metric`` at the point ``at`` over the smaller of the values
    at the points ``at × around`` for the one variant ``selector`` names (a seed's cells at
    a point reduced to their mean, failed cells counted as the worst value of the scope);
    (None, why, accounting) when a point has no data."""
    col, at = claim_column(rows, check["over"]), check["at"]
    at_col = claim_column(rows, at) if isinstance(at, str) else None
    rows = _where(rows, check)
    if col is None:
        return None, f"no parameter {check['over']!r}", Accounting()
    data, acc = variant_values(rows, selector, check["metric"], _free(col),
                               check.get("worse", "higher"))
    if data.empty:
        return None, nothing_left(f"no cells of `{selector}`", acc), acc
    if isinstance(at, str):
        if at_col is None:
            return None, f"no parameter {at!r}", acc
        at = data[at_col].iloc[0]
    around = [float(at) * f for f in check.get("around", [0.5, 2])]
    table = data.pivot_table(index="seed", columns=col, values=check["metric"], aggfunc="mean")
    missing = [fmt(p) for p in [float(at), *around] if p not in table.columns]
    if missing:
        return None, f"`{selector}`: no cells at {check['over']} = {', '.join(missing)}", acc
    table = table[[float(at), *around]]
    if acc.bound:  # a filled value at `at` raises the ratio, one around it lowers it
        acc = Accounting(acc.counted, acc.excluded, None)
    incomplete = int(table.isna().any(axis=1).sum())
    if incomplete:
        acc = acc + Accounting(excluded={"seeds without every point": incomplete})
    table = table.dropna()
    return table[float(at)] / table[around].min(axis=1), "", acc


@check_kind("curve_ratio")
def curve_ratio_check(check: dict[str, Any], rows: pd.DataFrame,
                      ctx: ReportContext) -> Measurement:
    sel, over = check["strategy"], check["over"]
    what = (f"value of `{check['metric']}` for `{sel}` at {over} = {check['at']} ÷ the smaller "
            f"of its values at {over} = {check['at']} × {check.get('around', [0.5, 2])}, "
            f"per seed")
    own, why, acc = curve_ratios(rows, check, sel)
    if own is None:
        return Measurement(_criterion(what, check), why, None)
    if "baseline" not in check:
        est = acc.onto(estimate(np.log(own.to_numpy(float)), "ratio"))
        return _single(check, est, _criterion(what, check), "no seed")
    base, why, acc_b = curve_ratios(rows, check, check["baseline"])
    what += f", ÷ the same ratio of `{check['baseline']}`"
    if base is None:
        return Measurement(_criterion(what, check), why, None)
    both = pd.concat([own.rename("a"), base.rename("b")], axis=1).dropna()
    est = summarise_pairs(both.rename_axis("seed").reset_index(), "ratio", acc.versus(acc_b))
    return _single(check, est, _criterion(what, check), "no common seed")
