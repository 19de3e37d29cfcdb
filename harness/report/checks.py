"""The generic check kinds: claims any family can state without code.

Each is judged on the ``ok`` rows of the scope a section shows, with medians over seeds:

- ``metric``: a statistic (``stat``: median, mean, min or max; default median) of a
  metric of one strategy variant against a threshold::

      {kind: metric, metric: test_mse, strategy: "ridge[lam=0.1]", op: "<=", threshold: 0.05}

- ``ratio`` / ``difference``: the median of a metric of ``strategy`` divided by (minus) the
  median of ``baseline`` against a threshold::

      {kind: ratio, metric: train_s, strategy: disc_opt, baseline: opt_disc, op: "<", threshold: 1}

- ``curve_ratio``: a curve property — along a swept parameter ``over``, the median at the
  point ``at`` (a number, or the name of a parameter whose value in the rows is the point)
  divided by the smaller of the medians at ``at × f`` for ``f`` in ``around`` (default
  [0.5, 2]); with ``baseline``, that ratio divided by the baseline's own.

Every kind accepts ``where: {param: value, …}`` to restrict the rows, and ``metric``,
``ratio`` and ``difference`` accept ``over: PARAM`` to judge each value of a swept parameter
(``reduce: all``, the default, judges every point; ``max`` or ``min`` the extreme one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from .claims import Measurement, check_kind, judge, ok_rows
from .document import fmt

if TYPE_CHECKING:
    from . import ReportContext

STATS = ("median", "mean", "min", "max")


def param_column(rows: pd.DataFrame, name: str) -> str | None:
    """The column of parameter (or metric) ``name``: itself, ``p_name`` or ``s_name``."""
    for col in (name, f"p_{name}", f"s_{name}"):
        if col in rows:
            return col
    return None


def _scoped(rows: pd.DataFrame, selector: str, check: dict[str, Any]) -> pd.DataFrame:
    rows = ok_rows(rows, selector)
    for key, value in (check.get("where") or {}).items():
        col = param_column(rows, key)
        rows = rows[rows[col] == value] if col else rows.iloc[0:0]
    return rows


def _stat(rows: pd.DataFrame, metric: str, stat: str = "median") -> float | None:
    if rows.empty or metric not in rows:
        return None
    values = pd.to_numeric(rows[metric], errors="coerce").dropna()
    return None if values.empty else float(getattr(values, stat)())


def _criterion(what: str, check: dict[str, Any]) -> str:
    return f"{what} {check.get('op', '<=')} {float(check['threshold']):g}"


def _over(check: dict[str, Any], rows: pd.DataFrame, value_at) -> tuple[list[bool] | None,
                                                                        str]:
    """Judge ``value_at(rows of one point)`` at each value of ``check['over']``."""
    col = param_column(rows, check["over"])
    if col is None:
        return None, f"no parameter {check['over']!r} in the rows"
    values = {}
    for point, g in rows.groupby(col, sort=True):
        v = value_at(g)
        if v is not None:
            values[point] = v
    if not values:
        return None, "no point with data"
    reduce = check.get("reduce", "all")
    text = ", ".join(f"{check['over']} = {fmt(p)}: {fmt(v, 3)}" for p, v in values.items())
    if reduce in ("max", "min"):
        extreme = max(values.values()) if reduce == "max" else min(values.values())
        return judge(extreme, check), f"{reduce} {fmt(extreme, 4)} ({text})"
    passed = [p for v in values.values() for p in (judge(v, check) or [])]
    return passed, text


@check_kind("metric")
def metric_check(check: dict[str, Any], rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    metric, stat, sel = check["metric"], check.get("stat", "median"), check["strategy"]
    if stat not in STATS:
        raise ValueError(f"stat {stat!r}; one of {', '.join(STATS)}")
    criterion = _criterion(f"{stat} of `{metric}` of `{sel}` over seeds", check)
    data = _scoped(rows, sel, check)
    if "over" in check:
        passed, text = _over(check, data, lambda g: _stat(g, metric, stat))
        return Measurement(criterion + f", at each {check['over']}", text, passed)
    value = _stat(data, metric, stat)
    return Measurement(criterion, "no ok cells" if value is None else
                       f"{fmt(value, 4)} over {len(data)} cell(s)",
                       judge(value, check))


def _two(check: dict[str, Any], rows: pd.DataFrame, combine, sign: str) -> Measurement:
    metric, sel, base = check["metric"], check["strategy"], check["baseline"]
    criterion = _criterion(f"median `{metric}` of `{sel}` {sign} that of `{base}`", check)
    a, b = _scoped(rows, sel, check), _scoped(rows, base, check)

    def value(ga: pd.DataFrame, gb: pd.DataFrame) -> float | None:
        va, vb = _stat(ga, metric), _stat(gb, metric)
        return None if va is None or vb is None else combine(va, vb)

    if "over" in check:
        col = param_column(a, check["over"])
        if col is None or col not in b:
            return Measurement(criterion, f"no parameter {check['over']!r}", None)
        passed, text = _over(check, a, lambda g: value(g, b[b[col] == g[col].iloc[0]]))
        return Measurement(criterion + f", at each {check['over']}", text, passed)
    v = value(a, b)
    measured = ("no ok cells of one of the two variants" if v is None else
                f"{fmt(v, 4)} ({fmt(_stat(a, metric), 4)} vs {fmt(_stat(b, metric), 4)})")
    return Measurement(criterion, measured, judge(v, check))


@check_kind("ratio")
def ratio_check(check: dict[str, Any], rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    return _two(check, rows, lambda a, b: a / b if b else None, "÷")


@check_kind("difference")
def difference_check(check: dict[str, Any], rows: pd.DataFrame,
                     ctx: ReportContext) -> Measurement:
    return _two(check, rows, lambda a, b: a - b, "−")


def curve_ratio(rows: pd.DataFrame, check: dict[str, Any], selector: str
                ) -> tuple[float | None, str]:
    """The median of ``metric`` at the point ``at`` over the smaller of the medians at the
    points ``at × around``, for ``selector``; (None, why) when a point has no data."""
    data = _scoped(rows, selector, check)
    col = param_column(data, check["over"])
    if col is None or data.empty:
        return None, f"no ok cells of `{selector}`"
    at = check["at"]
    if isinstance(at, str):
        at_col = param_column(data, at)
        if at_col is None:
            return None, f"no parameter {at!r}"
        at = data[at_col].iloc[0]
    points = {f: float(at) * f for f in check.get("around", [0.5, 2])}
    med = {p: _stat(data[data[col] == p], check["metric"])
           for p in [float(at), *points.values()]}
    missing = [fmt(p) for p, v in med.items() if v is None]
    if missing:
        return None, f"`{selector}`: no ok cells at {check['over']} = {', '.join(missing)}"
    low = min(med[p] for p in points.values())
    ratio = med[float(at)] / low
    text = ", ".join(f"{fmt(p)}: {fmt(v, 4)}" for p, v in med.items())
    return ratio, f"`{selector}` {ratio:.3f} (medians at {check['over']} = {text})"


@check_kind("curve_ratio")
def curve_ratio_check(check: dict[str, Any], rows: pd.DataFrame,
                      ctx: ReportContext) -> Measurement:
    sel, over = check["strategy"], check["over"]
    what = (f"median `{check['metric']}` of `{sel}` at {over} = {check['at']} ÷ the smaller "
            f"of its medians at {over} = {check['at']} × {check.get('around', [0.5, 2])}")
    value, text = curve_ratio(rows, check, sel)
    if "baseline" in check:
        base, base_text = curve_ratio(rows, check, check["baseline"])
        what += f", ÷ the same ratio of `{check['baseline']}`"
        value = None if value is None or base is None else value / base
        text = f"{text}; {base_text}"
        if value is not None:
            text = f"{value:.3f}: {text}"
    return Measurement(_criterion(what, check), text, judge(value, check))
