"""The generic check kinds: claims any family can state without code.

Each is judged on the ``ok`` rows of the scope a section shows, seed by seed (cells with
the same seed share data, split and initial weights), with a 95% interval
(``harness.stats``): the claim is reproduced when the whole interval is on its side of the
threshold, not reproduced when the whole interval is on the other side, inconclusive when
it straddles.

- ``metric``: the mean of a metric of one strategy variant over its cells, against a
  threshold::

      {kind: metric, metric: test_mse, strategy: "ridge[lam=0.1]", op: "<=", threshold: 0.05}

- ``ratio`` / ``difference``: a metric of ``strategy`` divided by (minus) that of
  ``baseline`` in the same problem instance and seed (geometric mean of the per-seed
  ratios, mean of the differences), against a threshold::

      {kind: ratio, metric: train_s, strategy: fast, baseline: slow, op: "<", threshold: 1}

- ``curve_ratio``: a curve property — along a swept parameter ``over``, per seed the value
  at the point ``at`` (a number, or the name of a parameter whose value in the rows is the
  point) divided by the smaller of the values at ``at × f`` for ``f`` in ``around``
  (default [0.5, 2]); with ``baseline``, that ratio divided by the baseline's own.

Every kind accepts ``where: {param: value, …}`` to restrict the rows, and ``metric``,
``ratio`` and ``difference`` accept ``over: PARAM`` to judge each value of a swept parameter
(``reduce: all``, the default, judges every point and the claim must hold at each; ``max``
or ``min`` judges the point with the largest or smallest estimate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..stats import Estimate, mean_interval, paired_difference, paired_ratio, ratio_interval
from .claims import (
    Measurement,
    check_kind,
    judge_estimate,
    ok_rows,
    paired_values,
    summarise_pairs,
)
from .document import fmt

if TYPE_CHECKING:
    from . import ReportContext


def param_column(rows: pd.DataFrame, name: str) -> str | None:
    """The column of parameter (or metric) ``name``: itself, ``p_name`` or ``s_name``."""
    for col in (name, f"p_{name}", f"s_{name}"):
        if col in rows:
            return col
    return None


def _where(rows: pd.DataFrame, check: dict[str, Any]) -> pd.DataFrame:
    for key, value in (check.get("where") or {}).items():
        col = param_column(rows, key)
        rows = rows[rows[col] == value] if col else rows.iloc[0:0]
    return rows


def _criterion(what: str, check: dict[str, Any]) -> str:
    return f"{what} {check.get('op', '<=')} {float(check['threshold']):g}"


def _judge_points(check: dict[str, Any], points: dict[Any, Estimate], criterion: str
                  ) -> Measurement:
    """One item per point of ``over`` (``reduce: all``), or the extreme point only."""
    if not points:
        return Measurement(criterion, "no point with data", None)
    over = check["over"]
    text = "; ".join(f"{over} = {fmt(p)}: {e.text()}" for p, e in points.items())
    reduce = check.get("reduce", "all")
    if reduce in ("max", "min"):
        pick = (max if reduce == "max" else min)(points, key=lambda p: points[p].value)
        return Measurement(f"{criterion}, {reduce} over {over}", f"at {over} = {fmt(pick)} "
                           f"({text})", [judge_estimate(points[pick], check)],
                           estimate=points[pick])
    worst = max(points, key=lambda p: _distance(points[p], check))
    return Measurement(f"{criterion}, at each {over}", text,
                       [judge_estimate(e, check) for e in points.values()],
                       estimate=points[worst], every=True)


def _distance(e: Estimate, check: dict[str, Any]) -> float:
    """How far an estimate is on the wrong side of the threshold (for the point shown)."""
    sign = 1.0 if check.get("op", "<=") in ("<", "<=") else -1.0
    return sign * (e.value - float(check["threshold"]))


def _single(check: dict[str, Any], est: Estimate | None, criterion: str,
            empty: str) -> Measurement:
    if est is None:
        return Measurement(criterion, empty, None)
    return Measurement(criterion, est.text(), [judge_estimate(est, check)], estimate=est)


@check_kind("metric")
def metric_check(check: dict[str, Any], rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    metric, sel = check["metric"], check["strategy"]
    criterion = _criterion(f"mean of `{metric}` of `{sel}` over its cells", check)
    data = _where(ok_rows(rows, sel), check)
    if metric not in data:
        return Measurement(criterion, f"no metric {metric!r}", None)
    if "over" in check:
        col = param_column(data, check["over"])
        if col is None:
            return Measurement(criterion, f"no parameter {check['over']!r}", None)
        points = {p: e for p, g in data.groupby(col, sort=True)
                  if (e := mean_interval(g[metric])) is not None}
        return _judge_points(check, points, criterion)
    return _single(check, mean_interval(data[metric]), criterion, "no ok cells")


def _paired(check: dict[str, Any], rows: pd.DataFrame,
            summarise: Callable[[Any, Any], Estimate | None], sign: str) -> Measurement:
    metric, sel, base = check["metric"], check["strategy"], check["baseline"]
    criterion = _criterion(f"`{metric}` of `{sel}` {sign} that of `{base}`, per seed", check)
    rows = _where(rows, check)
    over = param_column(rows, check["over"]) if "over" in check else None
    if "over" in check and over is None:
        return Measurement(criterion, f"no parameter {check['over']!r}", None)
    pairs = paired_values(rows, sel, base, metric, (over,) if over else ())
    if over:
        points = {p: e for p, g in pairs.groupby(over, sort=True)
                  if (e := summarise_pairs(g, summarise)) is not None}
        return _judge_points(check, points, criterion)
    return _single(check, summarise_pairs(pairs, summarise), criterion,
                   "no ok cells of both variants with a common seed")


@check_kind("ratio")
def ratio_check(check: dict[str, Any], rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    return _paired(check, rows, paired_ratio, "÷")


@check_kind("difference")
def difference_check(check: dict[str, Any], rows: pd.DataFrame,
                     ctx: ReportContext) -> Measurement:
    return _paired(check, rows, paired_difference, "−")


def curve_ratios(rows: pd.DataFrame, check: dict[str, Any], selector: str
                 ) -> tuple[pd.Series | None, str]:
    """Per seed, the value of ``metric`` at the point ``at`` over the smaller of the values
    at the points ``at × around`` for ``selector``; (None, why) when a point has no data."""
    data = _where(ok_rows(rows, selector), check)
    col = param_column(data, check["over"])
    if col is None or data.empty:
        return None, f"no ok cells of `{selector}`"
    at = check["at"]
    if isinstance(at, str):
        at_col = param_column(data, at)
        if at_col is None:
            return None, f"no parameter {at!r}"
        at = data[at_col].iloc[0]
    around = [float(at) * f for f in check.get("around", [0.5, 2])]
    table = data.pivot_table(index="seed", columns=col, values=check["metric"], aggfunc="mean")
    missing = [fmt(p) for p in [float(at), *around] if p not in table.columns]
    if missing:
        return None, f"`{selector}`: no ok cells at {check['over']} = {', '.join(missing)}"
    table = table[[float(at), *around]].dropna()
    return table[float(at)] / table[around].min(axis=1), ""


@check_kind("curve_ratio")
def curve_ratio_check(check: dict[str, Any], rows: pd.DataFrame,
                      ctx: ReportContext) -> Measurement:
    sel, over = check["strategy"], check["over"]
    what = (f"value of `{check['metric']}` for `{sel}` at {over} = {check['at']} ÷ the smaller "
            f"of its values at {over} = {check['at']} × {check.get('around', [0.5, 2])}, "
            f"per seed")
    own, why = curve_ratios(rows, check, sel)
    if own is None:
        return Measurement(_criterion(what, check), why, None)
    if "baseline" not in check:
        return _single(check, ratio_interval(own.to_numpy()), _criterion(what, check),
                       "no seed")
    base, why = curve_ratios(rows, check, check["baseline"])
    what += f", ÷ the same ratio of `{check['baseline']}`"
    if base is None:
        return Measurement(_criterion(what, check), why, None)
    both = pd.concat([own.rename("a"), base.rename("b")], axis=1).dropna()
    return _single(check, paired_ratio(both["a"], both["b"]), _criterion(what, check),
                   "no common seed")
