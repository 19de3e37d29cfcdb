"""Report section of the neural-ODE family (Onken & Ruthotto 2020): per problem the paper's
table (training time, time per iteration, NFE forward/backward, train loss, test loss or
NLL, inverse error, Disc-Opt's time reduction), loss against wall time, the Taylor-test
plot and toy-density samples; then a verdict for each claim in ``claims/`` (family node),
with the check kinds of this family registered here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.family import Family
from harness.report.claims import (
    Measurement,
    check_kind,
    claim_blocks,
    iteration_spread,
    judge_estimate,
    pair_rows,
)
from harness.report.document import Heading, Paragraph, Table, fmt
from harness.report.labels import by_problem, sort_labels, with_labels
from harness.stats import Estimate, paired_difference, paired_ratio

from .strategies import DiscOpt, OptDisc

if TYPE_CHECKING:
    from harness.report import ReportContext

DO, OD = DiscOpt.name, OptDisc.name
SMOOTH = 20  # iterations in the running mean of the loss curves


@dataclass
class Comparison:
    """Disc-Opt vs Opt-Disc on one problem: the chosen variants, their medians, and the
    per-seed paired estimates (time ratio Disc-Opt ÷ Opt-Disc; quality difference in nats
    for an NLL, ratio for a loss)."""

    title: str
    do_label: str
    od_label: str
    do_time: float
    od_time: float
    do_quality: float
    od_quality: float
    nll: bool  # quality is a test NLL (nats), else a test loss
    time_ratio: Estimate | None = None
    quality_gap: Estimate | None = None
    cells: tuple[list[str], list[str]] = ([], [])  # cell ids of the two variants

    @property
    def reduction(self) -> float:
        """Disc-Opt's training-time reduction in % of Opt-Disc's (medians)."""
        return 100.0 * (1.0 - self.do_time / self.od_time)

    @property
    def reduction_estimate(self) -> Estimate | None:
        """The reduction in %, 100 · (1 − ratio), with its interval, from the paired
        per-seed time ratios."""
        r = self.time_ratio
        if r is None:
            return None
        def percent(x: float | None) -> float | None:
            return None if x is None else 100.0 * (1.0 - x)
        return Estimate(percent(r.value), percent(r.high), percent(r.low), r.n, "difference",
                        r.unit)


def section(ctx: ReportContext, family: Family) -> list[Any]:
    """The family's section: per problem the paper's table and figures, then the verdicts
    (judged over all problems)."""
    df = ctx.cells[ctx.cells["family"] == family.name]
    blocks: list[Any] = [Heading(family.title)]
    for title, tag, rows in by_problem(df):
        ok = with_labels(rows[rows["status"] == "ok"])  # variants named within the problem
        blocks.append(Heading(title, 3))
        if ok.empty:
            blocks.append(Paragraph("No ok cells for this problem."))
            continue
        quality = _quality(ok)
        comp = _compare(ok, title, quality)
        blocks.append(_table(ok, quality, comp, f"node-{tag}"))
        blocks += [b for b in (_loss_vs_time(ctx, ok, tag), _taylor(ctx, ok, tag),
                               _samples(ctx, ok, tag)) if b is not None]
    blocks += claim_blocks(ctx, family, df)
    return blocks


def _quality(ok: pd.DataFrame) -> str:
    return "test_nll" if ok["test_nll"].notna().any() else "test_loss"


def comparisons(df: pd.DataFrame) -> list[Comparison]:
    """Disc-Opt vs Opt-Disc on every problem of ``df`` that has ok cells of both."""
    found = []
    for title, _, rows in by_problem(df):
        ok = with_labels(rows[rows["status"] == "ok"])
        comp = None if ok.empty else _compare(ok, title, _quality(ok))
        if comp is not None:
            found.append(comp)
    return found


def _medians(ok: pd.DataFrame, column: str) -> pd.Series:
    return ok.groupby("label")[column].median()


def _compare(ok: pd.DataFrame, title: str, quality: str) -> Comparison | None:
    """The best-quality variant of each strategy (median test metric over seeds)."""
    q, t = _medians(ok, quality), _medians(ok, "train_s")
    strategy = ok.groupby("label")["strategy"].first()
    best = {}
    for name in (DO, OD):
        labels = q[strategy[q.index] == name].dropna()
        if labels.empty:
            return None
        best[name] = labels.idxmin()
    d, o = best[DO], best[OD]
    do_rows, od_rows = ok[ok["label"] == d], ok[ok["label"] == o]
    times = pair_rows(do_rows, od_rows, "train_s")
    qual = pair_rows(do_rows, od_rows, quality)
    nll = quality == "test_nll"
    gap = (paired_difference if nll else paired_ratio)(qual["a"], qual["b"])
    return Comparison(title, d, o, float(t[d]), float(t[o]), float(q[d]), float(q[o]), nll,
                      paired_ratio(times["a"], times["b"]), gap,
                      (list(do_rows["cell_id"]), list(od_rows["cell_id"])))


def _table(ok: pd.DataFrame, quality: str, comp: Comparison | None, name: str) -> Table:
    cnf = quality == "test_nll"
    cols = {"train_s": "train time s", "iter_s": "s / iteration", "nfe_fwd": "NFE fwd",
            "nfe_bwd": "NFE bwd", "train_loss": "train loss", quality: quality.replace("_", " "),
            f"{quality}_dopri": f"{quality.replace('_', ' ')} (dopri5 1e-8)"}
    if cnf:
        cols.update({"inv_err": "inverse error", "inv_err_dopri": "inverse error (dopri5)"})
    else:
        cols["extrap_err"] = "extrapolation RMS"
    med = ok.groupby("label")[list(cols)].median()
    seeds = ok.groupby("label")["seed"].nunique()
    od_time = comp.od_time if comp else None
    first = ok.groupby("label").first()
    rows = []
    for label in sort_labels(med.index):
        reduction = (100 * (1 - med.loc[label, "train_s"] / od_time)
                     if od_time and ok.loc[ok["label"] == label, "strategy"].iloc[0] == DO
                     else None)
        rows.append([label, _settings(first.loc[label]), int(seeds[label]),
                     *(med.loc[label, c] for c in cols),
                     "–" if reduction is None else f"{reduction:.0f}%"])
    ref = f" against `{comp.od_label}`" if comp else ""
    return Table(["variant", "integrator", "seeds", *cols.values(), "time reduction"], rows,
                 caption=f"Medians over seeds. Time reduction: 1 − Disc-Opt training time / "
                         f"Opt-Disc training time{ref} (paper: 39–97%). NFE per iteration.",
                 name=name)


def _settings(row: pd.Series) -> str:
    """The integrator of a cell in the strategy's own words, e.g. ``RK4 3/8, h = 0.25``."""
    cls = DiscOpt if row["strategy"] == DO else OptDisc
    return cls.integrator_text(cls.validate(json.loads(row["params"])["strategy"]))


def _history(ctx: ReportContext, ok: pd.DataFrame, splits: list[str],
             columns: list[str]) -> pd.DataFrame | None:
    """History rows of the cells in ``ok`` with one of ``splits``, joined with ``columns``
    of the cells; None when there are none."""
    h = ctx.history
    if h.empty:
        return None
    h = h[h["cell_id"].isin(ok["cell_id"]) & h["split"].isin(splits)]
    return None if h.empty else h.merge(ok[["cell_id", *columns]], on="cell_id")


def _loss_vs_time(ctx: ReportContext, ok: pd.DataFrame, tag: str):
    import matplotlib.pyplot as plt

    h = _history(ctx, ok, ["train"], ["label"])
    if h is None:
        return None
    h = h[h["metric"] == "loss"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = dict(zip(sort_labels(h["label"]), plt.cm.tab10.colors, strict=False))
    for (label, _), c in h.sort_values("step").groupby(["label", "cell_id"]):
        smooth = c["value"].rolling(SMOOTH, min_periods=1).mean()
        ax.plot(c["wall_s"], smooth, color=colors[label], lw=1, alpha=0.8)
    for label, color in colors.items():
        ax.plot([], [], color=color, label=label)
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel(f"training loss (running mean of {SMOOTH})")
    if (h["value"] > 0).all():
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ctx.save_figure(fig, f"node-{tag}-loss-vs-time",
                           "Training loss against training wall time (evaluation excluded), "
                           "one line per cell.")


def _taylor(ctx: ReportContext, ok: pd.DataFrame, tag: str):
    import matplotlib.pyplot as plt

    h = _history(ctx, ok, ["taylor"], ["label", "seed", "taylor_slope_e1"])
    if h is None:
        return None
    labels = sort_labels(h["label"])
    fig, axes = plt.subplots(1, len(labels), figsize=(4.6 * len(labels), 4), sharey=True,
                             squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        g = h[h["label"] == label]
        g = g[g["seed"] == g["seed"].min()]
        for metric, marker in (("taylor_e0", "o"), ("taylor_e1", "s")):
            c = g[g["metric"] == metric].sort_values("step")
            ax.loglog(2.0 ** -c["step"], c["value"], marker=marker, ms=3, label=metric[7:].upper())
        hs = 2.0 ** -np.arange(1, 21)
        ax.loglog(hs, hs * g["value"].max(), "k:", lw=1, label="O(h)")
        ax.loglog(hs, hs**2 * g["value"].max(), "k--", lw=1, label="O(h²)")
        ax.set_title(f"{label}: E1 slope {fmt(g['taylor_slope_e1'].iloc[0], 3)}", fontsize=9)
        ax.set_xlabel("h")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("error")
    return ctx.save_figure(fig, f"node-{tag}-taylor",
                           "Taylor test at the initial weights: E0(h) = |J(θ+hv) − J(θ)| and "
                           "E1(h) = |J(θ+hv) − J(θ) − h∇Jᵀv| (lowest seed); an exact gradient "
                           "gives E1 = O(h²).")


def _samples(ctx: ReportContext, ok: pd.DataFrame, tag: str):
    import matplotlib.pyplot as plt

    h = _history(ctx, ok, ["data", "model"], ["label", "seed"])
    if h is None:
        return None
    labels = sort_labels(h["label"])
    fig, axes = plt.subplots(1, len(labels) + 1, figsize=(3.6 * (len(labels) + 1), 3.6),
                             sharex=True, sharey=True)

    def points(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows[rows["cell_id"] == rows.sort_values("seed")["cell_id"].iloc[0]]
        return rows.pivot_table(index="step", columns="metric", values="value")

    panels = [("data (test samples)", h[h["split"] == "data"])]
    panels += [(f"{label}: f⁻¹(y), y ~ N(0, I)",
                h[(h["split"] == "model") & (h["label"] == label)]) for label in labels]
    for ax, (title, rows) in zip(axes, panels, strict=True):
        p = points(rows)
        ax.scatter(p["x0"], p["x1"], s=2, alpha=0.5)
        ax.set_title(title, fontsize=8)
        ax.set_aspect("equal")
    return ctx.save_figure(fig, f"node-{tag}-samples",
                           "Test samples and samples generated by each trained flow (lowest "
                           "seed), integrated backward with the training integrator.")


def _per_problem(comps: list[Comparison]) -> str:
    return "; ".join(
        f"{c.title}: reduction (%) {c.reduction_estimate.text() if c.reduction_estimate else '–'}"
        f" (`{c.do_label}` {fmt(c.do_time, 3)} s vs `{c.od_label}` {fmt(c.od_time, 3)} s, "
        f"medians)" for c in comps) or "no pairs"


def _fraction(comps: list[Comparison]) -> Estimate:
    """The fraction of problems where Disc-Opt trains faster: the point value from the
    estimates, the interval from the problems where it is surely faster (interval below
    1) and where it may be (interval reaching below 1)."""
    n = len(comps)
    faster = sum(c.time_ratio.value < 1 for c in comps)
    surely = sum(c.time_ratio.has_interval and c.time_ratio.high < 1 for c in comps)
    maybe = sum(not c.time_ratio.has_interval or c.time_ratio.low < 1 for c in comps)
    seeds = min(c.time_ratio.n for c in comps)
    return Estimate(faster / n, surely / n, maybe / n, seeds, "fraction")


@check_kind("cheaper_fraction")
def cheaper_fraction(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """The fraction of problems where Disc-Opt trains faster, against a threshold."""
    comps = [c for c in comparisons(rows) if c.time_ratio is not None]
    op, threshold = check.get("op", ">="), float(check["threshold"])
    criterion = (f"fraction of problems where Disc-Opt trains faster (per-seed time ratio "
                 f"below 1) {op} {threshold:g}")
    if not comps:
        return Measurement(criterion, _per_problem(comps), None)
    est = _fraction(comps)
    return Measurement(criterion, f"{est.value:.2f} of {len(comps)} problem(s) — "
                                  f"{_per_problem(comps)}", [judge_estimate(est, check)],
                       estimate=est)


@check_kind("reduction_band")
def reduction_band(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """Disc-Opt's time reduction inside [low, high] % on each problem."""
    comps = [c for c in comparisons(rows) if c.reduction_estimate is not None]
    low, high = float(check["low"]), float(check["high"])
    criterion = f"Disc-Opt time reduction within [{low:g}%, {high:g}%] on every problem"
    spread = []
    for c in comps:
        do_cv, od_cv = (iteration_spread(ctx.history, ids) for ids in c.cells)
        if do_cv is not None and od_cv is not None:
            spread.append(f"{c.title}: {100 * do_cv:.0f}% and {100 * od_cv:.0f}%")
    detail = ("Within-cell spread of the time per iteration (median coefficient of variation "
              "over the cells, Disc-Opt and Opt-Disc): " + "; ".join(spread) + "."
              ) if spread else ""
    items, worst = [], None
    for c in comps:
        e = c.reduction_estimate
        inside = e.has_interval and low <= e.low and e.high <= high
        outside = e.has_interval and (e.high < low or e.low > high)
        items.append(True if inside else False if outside else None)
        distance = max(low - e.value, e.value - high)
        if worst is None or distance > worst[0]:
            worst = (distance, e)
    return Measurement(criterion, _per_problem(comps), items, detail,
                       estimate=worst[1] if worst else None)


@check_kind("quality")
def quality(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """Disc-Opt's test NLL within ``nll_tol`` nats of Opt-Disc's, or its test loss within
    ``loss_rel_tol`` of it, on each problem (per-seed differences or ratios)."""
    comps = [c for c in comparisons(rows) if c.quality_gap is not None]
    nll_tol, rel = float(check["nll_tol"]), float(check["loss_rel_tol"])
    criterion = (f"per seed, Disc-Opt's test NLL minus Opt-Disc's ≤ {nll_tol:g} nats, or its "
                 f"test loss ÷ Opt-Disc's ≤ {1 + rel:g}, on every problem")
    items, parts, worst = [], [], None
    for c in comps:
        limit = nll_tol if c.nll else 1 + rel
        items.append(judge_estimate(c.quality_gap, {"op": "<=", "threshold": limit}))
        what = "ΔNLL (nats)" if c.nll else "test-loss ratio"
        parts.append(f"{c.title}: {what} {c.quality_gap.text()}")
        distance = c.quality_gap.value - limit
        if worst is None or distance > worst[0]:
            worst = (distance, c.quality_gap)
    return Measurement(criterion, "; ".join(parts) or "no pairs", items,
                       estimate=worst[1] if worst else None)
