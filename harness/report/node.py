"""Report section of the neural-ODE family (Onken & Ruthotto 2020): per problem the paper's
table (training time, time per iteration, NFE forward/backward, train loss, test loss or
NLL, inverse error, Disc-Opt's time reduction), loss against wall time, the Taylor-test
plot and toy-density samples; then a verdict for each claim in results/reference/ (family
node)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import section
from .claims import compare, load_references
from .document import Heading, Paragraph, Table, Verdict, fmt
from .labels import by_problem, with_labels

if TYPE_CHECKING:
    from . import ReportContext

DO, OD = "disc_opt", "opt_disc"
SMOOTH = 20  # iterations in the running mean of the loss curves


@dataclass
class Comparison:
    """Disc-Opt vs Opt-Disc on one problem: the chosen variants and their medians."""

    title: str
    do_label: str
    od_label: str
    do_time: float
    od_time: float
    do_quality: float
    od_quality: float
    nll: bool  # quality is a test NLL (nats), else a test loss

    @property
    def reduction(self) -> float:
        """Disc-Opt's training-time reduction in % of Opt-Disc's."""
        return 100.0 * (1.0 - self.do_time / self.od_time)


@section("node")
def node_section(ctx: ReportContext) -> list[Any]:
    df = ctx.cells[ctx.cells["family"] == "node"]
    blocks: list[Any] = [Heading("Neural ODEs: Discretize-Optimize vs Optimize-Discretize")]
    comparisons = []
    for title, tag, rows in by_problem(df):
        ok = with_labels(rows[rows["status"] == "ok"])  # variants named within the problem
        blocks.append(Heading(title, 3))
        if ok.empty:
            blocks.append(Paragraph("No ok cells for this problem."))
            continue
        quality = "test_nll" if ok["test_nll"].notna().any() else "test_loss"
        comp = _compare(ok, title, quality)
        blocks.append(_table(ok, quality, comp, f"node-{tag}"))
        if comp is not None:
            comparisons.append(comp)
        blocks += [b for b in (_loss_vs_time(ctx, ok, tag), _taylor(ctx, ok, tag),
                               _samples(ctx, ok, tag)) if b is not None]
    blocks += _verdicts(comparisons)
    return blocks


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
    return Comparison(title, d, o, float(t[d]), float(t[o]), float(q[d]), float(q[o]),
                      quality == "test_nll")


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
    for label in med.index:
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
    """The integrator of a cell in words, e.g. ``RK4 3/8, h = 0.25``."""
    if row["strategy"] == DO:
        size = (f"{int(row['s_n_steps'])} steps" if pd.notna(row.get("s_n_steps"))
                else f"h = {row['s_step_size'] if pd.notna(row.get('s_step_size')) else 0.05:.4g}")
        return f"RK4 {row['s_rule']}, {size}"
    return f"{row['s_method']} + adjoint, rtol {row['s_rtol']:g}, atol {row['s_atol']:g}"


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
    colors = dict(zip(sorted(h["label"].unique()), plt.cm.tab10.colors, strict=False))
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
    labels = sorted(h["label"].unique())
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
    labels = sorted(h["label"].unique())
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


def _verdicts(comparisons: list[Comparison]) -> list[Any]:
    blocks: list[Any] = []
    for ref in load_references("node"):
        blocks.append(Paragraph(f"Claims of {ref.paper} (`{ref.path.split('/')[-1]}`):"))
        for claim in ref.claims:
            value, outcome, criterion, measured = _check(claim.check, comparisons)
            if value is None and outcome is None:
                outcome = "no data"
            blocks.append(Verdict(claim=claim.claim, source=claim.source, criterion=criterion,
                                  measured=measured, outcome=outcome, detail=claim.note))
    return blocks


def _check(check: dict, comps: list[Comparison]) -> tuple[Any, str | None, str, str]:
    kind = check["kind"]
    per = "; ".join(f"{c.title}: {c.reduction:.0f}% (`{c.do_label}` {fmt(c.do_time, 3)} s vs "
                    f"`{c.od_label}` {fmt(c.od_time, 3)} s)" for c in comps) or "no pairs"
    if kind == "cheaper_fraction":
        op, threshold = check.get("op", ">="), float(check["threshold"])
        criterion = f"fraction of problems where Disc-Opt trains faster {op} {threshold:g}"
        if not comps:
            return None, None, criterion, per
        frac = sum(c.reduction > 0 for c in comps) / len(comps)
        outcome = "reproduced" if compare(frac, op, threshold) else "not reproduced"
        return frac, outcome, criterion, f"{frac:.2f} of {len(comps)} problem(s) — {per}"
    if kind == "reduction_band":
        low, high = float(check["low"]), float(check["high"])
        criterion = f"Disc-Opt time reduction within [{low:g}%, {high:g}%] on every problem"
        if not comps:
            return None, None, criterion, per
        inside = [low <= c.reduction <= high for c in comps]
        outcome = "reproduced" if all(inside) else (
            "partly reproduced" if any(inside) else "not reproduced")
        return sum(inside), outcome, criterion, per
    if kind == "quality":
        nll_tol, rel = float(check["nll_tol"]), float(check["loss_rel_tol"])
        criterion = (f"Disc-Opt's median test NLL at most {nll_tol:g} nats above Opt-Disc's, or "
                     f"its test loss at most {100 * rel:g}% above")
        if not comps:
            return None, None, criterion, "no pairs"
        good, parts = [], []
        for c in comps:
            if c.nll:
                good.append(c.do_quality - c.od_quality <= nll_tol)
                parts.append(f"{c.title}: ΔNLL {c.do_quality - c.od_quality:+.3f} nats")
            else:
                good.append(c.do_quality <= (1 + rel) * c.od_quality)
                parts.append(f"{c.title}: loss {fmt(c.do_quality, 3)} vs {fmt(c.od_quality, 3)}")
        outcome = "reproduced" if all(good) else (
            "partly reproduced" if any(good) else "not reproduced")
        return sum(good), outcome, criterion, "; ".join(parts)
    raise ValueError(f"unknown check kind {kind!r} in a node reference file")
