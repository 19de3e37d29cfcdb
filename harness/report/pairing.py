"""The values a claim judges: failed cells counted as the worst outcome (in the direction
that cannot flatter a claim), everything left out counted, cells paired by problem
instance and seed, and a seed's pairs reduced to one value before any interval."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..audit import TIMING_FLAG
from ..result import FAILED, OK
from ..schema import timing_columns
from ..stats import NOT_FINITE, NOT_POSITIVE, Estimate, estimate
from ..vocabulary import STRATEGY, parameter_names
from .selection import ClaimRefused, select_variant

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
    # numpy masks: pandas' string comparisons made this the costly part of judging a claim
    status = variant["status"].to_numpy(dtype=object)
    is_ok, is_failed = status == OK, np.isin(status, COUNTED)
    values = pd.to_numeric(variant[metric], errors="coerce").to_numpy(dtype=float)
    ok = is_ok & np.isfinite(values)
    fill = np.full(len(variant), np.nan)
    if failed == "worst" and metric in scope and is_failed.any():
        in_scope = pd.to_numeric(scope[metric], errors="coerce")
        finite = in_scope[np.isfinite(in_scope)]
        worst = finite.groupby(instance_of(scope)[finite.index])
        worst = worst.max() if worse == "higher" else worst.min()
        fill = instance_of(variant).map(worst).to_numpy(dtype=float)
    filled = is_failed & ~np.isnan(fill)
    acc = Accounting(bound=(1 if worse == "higher" else -1) if filled.any() else 0)
    for st, n in Counter(status[filled]).most_common():
        acc.counted[f"{st} cell{'s' * (n > 1)}"] = n
    for st, n in Counter(status[(is_failed & ~filled) | (~is_failed & ~is_ok)]).most_common():
        acc.excluded[f"{st} cell{'s' * (n > 1)}"] = n
    missing = int((is_ok & ~ok).sum())
    if missing:
        acc.excluded[f"ok cell{'s' * (missing > 1)} without a finite {metric}"] = missing
    if failed == "exclude" and TIMING_FLAG in variant:  # a timing the audit flagged
        tainted = ok & variant[TIMING_FLAG].notna().to_numpy()
        if tainted.any():
            acc.excluded["cells whose timing the placement audit flagged"] = int(tainted.sum())
            ok &= ~tainted
    keep = ok | filled
    kept = variant[keep].copy()
    kept[metric] = np.where(is_ok[keep], values[keep], fill[keep]).astype(float)
    return kept, acc


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
    ``keys``: columns both sides are paired on (strategy parameters among them are free
    to vary)."""
    free = parameter_names(keys, STRATEGY)
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
        r = r.assign(instance=instance_of(r))[[*on, metric]]
        twice = r[r.duplicated(on, keep=False)]
        if len(twice):
            first = twice.iloc[0]
            where = ", ".join(f"{k} {first[k]}" for k in on)
            raise ClaimRefused(f"{which} has {int(twice.duplicated(on).sum()) + 1} cells for "
                               f"{where}: it holds several variants; name one")
        return r

    left, right = side(a, "the strategy"), side(b, "the baseline")
    # an inner join on the keys, in the left side's order (as DataFrame.merge, which costs
    # milliseconds per claim on these few rows); a missing key matches a missing key
    theirs = dict(zip(_keys(right, on), right[metric].tolist(), strict=True))
    pairs = [(*k, mine, theirs[k]) for k, mine in zip(_keys(left, on), left[metric].tolist(),
                                                      strict=True) if k in theirs]
    both = pd.DataFrame(pairs, columns=[*on, "a", "b"]).astype({"a": float, "b": float})
    # cells whose instance and seed the other side lacks: no pair, but counted
    both.attrs["unpaired"] = len(left) + len(right) - 2 * len(both)
    return both


def _keys(frame: pd.DataFrame, on: list[str]) -> list[tuple]:
    """Each row's values of the columns ``on``, missing values as None (NaN ≠ NaN)."""
    columns = [[None if isinstance(v, float) and v != v else v for v in frame[c].tolist()]
               for c in on]
    return list(zip(*columns, strict=True)) if columns else []


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


def _problem_json(params: str) -> str:
    return json.dumps(json.loads(params)["problem"], sort_keys=True)

