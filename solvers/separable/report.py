"""Report section of the separable-network family (Newman, Chung, Chung & Ruthotto 2022):
per problem the loss-vs-epoch curves (median and band over seeds) for both strategies, the
learning-rate-sensitivity figure, the relative-error table as the paper prints it (mean ±
std, min, max per split), the time per epoch, and a verdict for each claim in ``claims/``
(family separable), with the check kinds of this family registered here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.family import Family
from harness.report.axes import style_axes
from harness.report.claims import Measurement, check_kind, claim_blocks, judge
from harness.report.document import Heading, Paragraph, Table, fmt
from harness.report.labels import by_problem, data_sources, sort_labels, with_labels

from .strategies import AdamSeparable as Adam
from .strategies import SlimTrain

if TYPE_CHECKING:
    from harness.report import ReportContext

SPLITS = ("train", "val", "test")


def section(ctx: ReportContext, family: Family) -> list[Any]:
    """Per problem: loss curves, learning-rate sensitivity, the paper's error table, cost,
    and the verdicts."""
    df = ctx.cells[ctx.cells["family"] == family.name]
    blocks: list[Any] = [Heading(family.title)]
    for title, tag, rows in by_problem(df):
        ok = rows[rows["status"] == "ok"]
        blocks.append(Heading(title, 3))
        if ok.empty:
            blocks.append(Paragraph("No ok cells for this problem."))
            continue
        source = data_sources(ok)
        if source:
            blocks.append(Paragraph(source))
        ok = _variant_labels(ok)
        curves = _curves(ctx, ok)
        blocks += [b for b in (_loss_figure(ctx, curves, tag), _lr_figure(ctx, ok, tag),
                               _theta_figure(ctx, ok, tag), _error_table(ok, tag),
                               _cost_table(ok, tag)) if b is not None]
        blocks += claim_blocks(ctx, family, rows, where=title)
    return blocks


def _variant_labels(ok: pd.DataFrame) -> pd.DataFrame:
    """``label`` with every varying parameter; ``variant`` the same without the lr."""
    ok = with_labels(ok)
    return ok.assign(variant=with_labels(ok.assign(s_lr=0.0))["label"])


def _curves(ctx: ReportContext, ok: pd.DataFrame, metric: str = "loss") -> pd.DataFrame:
    """Per-epoch values of ``metric``: history columns plus variant, strategy, s_lr, seed."""
    h = ctx.history
    if h.empty:
        return pd.DataFrame()
    h = h[h["cell_id"].isin(ok["cell_id"]) & (h["metric"] == metric)]
    return h.merge(ok[["cell_id", "variant", "strategy", "s_lr", "seed"]], on="cell_id")


def _loss_figure(ctx: ReportContext, curves: pd.DataFrame, tag: str):
    import matplotlib.pyplot as plt

    if curves.empty:
        return None
    lrs = sorted(curves["s_lr"].unique())
    fig, axes = plt.subplots(1, len(lrs), figsize=(4.6 * len(lrs), 4), sharey=True,
                             squeeze=False)
    variants = sort_labels(curves["variant"])
    colors = dict(zip(variants, plt.cm.tab10.colors, strict=False))
    for ax, lr in zip(axes[0], lrs, strict=True):
        for variant in variants:
            for split, style in (("train", "--"), ("val", "-")):
                c = curves[(curves["s_lr"] == lr) & (curves["variant"] == variant)
                           & (curves["split"] == split)]
                if c.empty:
                    continue
                stats = c.groupby("step")["value"].agg(["median", "min", "max"])
                epochs = stats.index + 1
                ax.plot(epochs, stats["median"], style, color=colors[variant],
                        label=f"{variant} ({split})")
                if split == "val":
                    ax.fill_between(epochs, stats["min"], stats["max"], color=colors[variant],
                                    alpha=0.15, lw=0)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"learning rate {lr:g}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel("loss (the problem's reported loss)")
    axes[0, -1].legend(fontsize=7)
    seeds = curves["seed"].nunique()
    return ctx.save_figure(fig, f"separable-{tag}-loss-vs-epoch",
                           f"Training (dashed) and validation (solid) loss per epoch, median "
                           f"over {seeds} seed(s), band = min…max of the validation loss; one "
                           f"panel per learning rate.")


def _lr_figure(ctx: ReportContext, ok: pd.DataFrame, tag: str):
    import matplotlib.pyplot as plt

    if ok["s_lr"].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for variant, g in ok.groupby("variant"):
        stats = g.groupby("s_lr")["val_loss"].agg(["median", "min", "max"])
        (line,) = ax.plot(stats.index, stats["median"], marker="o", label=variant)
        ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(),
                        alpha=0.15, lw=0)
    style_axes(ax, "learning rate", "final validation loss", xlog=10, legend=8)
    return ctx.save_figure(fig, f"separable-{tag}-lr-sensitivity",
                           "Final validation loss against the learning rate (median over "
                           "seeds, band = min…max): a flat curve is a method insensitive to "
                           "the learning rate.")


def _theta_figure(ctx: ReportContext, ok: pd.DataFrame, tag: str):
    import matplotlib.pyplot as plt

    h = _curves(ctx, ok, "theta_change")
    if h.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for (variant, lr), g in h.groupby(["variant", "s_lr"]):
        med = g.groupby("step")["value"].median()
        ax.plot(med.index + 1, med.values, label=f"{variant}, lr {lr:g}")
    style_axes(ax, "epoch", "‖θₖ − θₖ₋₁‖", ncol=2)
    return ctx.save_figure(fig, f"separable-{tag}-theta-change",
                           "Change of the feature-extractor weights per epoch (median over "
                           "seeds), per strategy and learning rate.")


def _error_table(ok: pd.DataFrame, tag: str) -> Table:
    rows = []
    for label in sort_labels(ok["label"]):
        g = ok[ok["label"] == label]
        row = [label]
        for split in SPLITS:
            m = g[[f"rel_err_{split}_{s}" for s in ("mean", "std", "min", "max")]].median()
            row += [f"{m.iloc[0]:.3g} ± {m.iloc[1]:.2g}", m.iloc[2], m.iloc[3]]
        rows.append(row)
    cols = ["variant"] + [f"{split} {c}" for split in SPLITS for c in ("mean ± std", "min",
                                                                        "max")]
    return Table(cols, rows, caption="Relative error ‖W z − c‖/‖c‖ per sample (median over "
                                     "seeds of each statistic), as in the paper's table.",
                 name=f"separable-{tag}-relative-error")


def _cost_table(ok: pd.DataFrame, tag: str) -> Table:
    med = ok.groupby("label")[["epoch_s", "train_loss", "val_loss", "best_val_loss",
                               "test_loss"]].median()
    rows = [[label, *med.loc[label]] for label in sort_labels(med.index)]
    return Table(["variant", "s / epoch", "train loss", "val loss", "best val loss",
                  "test loss"], rows,
                 caption="Time per epoch (evaluation excluded) and final losses, medians over "
                         "seeds.", name=f"separable-{tag}-cost")


def _select(ok: pd.DataFrame, strategy: str, fixed: dict[str, Any]) -> pd.DataFrame:
    mask = ok["strategy"] == strategy
    for key, value in fixed.items():
        if f"s_{key}" in ok:
            mask &= ok[f"s_{key}"] == value
    return ok[mask]


def _pair(check: dict, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ok slimTrain and Adam rows the check names (``slimtrain: {r: 5}`` fixes
    parameters), labelled as in the section."""
    ok = rows[rows["status"] == "ok"]
    return (_select(ok, SlimTrain.name, check.get(SlimTrain.name, {})),
            _select(ok, Adam.name, check.get(Adam.name, {})))


@check_kind("early_loss_ratio")
def early_loss_ratio(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """The largest, over learning rates, of slimTrain's median validation loss after an
    early epoch over Adam's."""
    slim, adam = _pair(check, rows)
    epoch, op, threshold = int(check["epoch"]), check["op"], check["threshold"]
    criterion = (f"at every learning rate, median validation loss of slimTrain ÷ Adam's "
                 f"after epoch {epoch} {op} {threshold:g}; the value is the largest ratio")
    curves = _curves(ctx, _variant_labels(rows[rows["status"] == "ok"]))
    if slim.empty or adam.empty or curves.empty:
        return Measurement(criterion, "no cells of one of the strategies", None)
    c = curves[(curves["split"] == "val") & (curves["step"] == epoch - 1)]
    ratios = {}
    for lr in sorted(set(slim["s_lr"]) & set(adam["s_lr"])):
        s = c[c["cell_id"].isin(slim[slim["s_lr"] == lr]["cell_id"])]["value"].median()
        a = c[c["cell_id"].isin(adam[adam["s_lr"] == lr]["cell_id"])]["value"].median()
        if np.isfinite(s) and np.isfinite(a):
            ratios[lr] = s / a
    if not ratios:
        return Measurement(criterion, f"no common learning rate with epoch {epoch}", None)
    text = ", ".join(f"lr {lr:g}: {r:.3f}" for lr, r in ratios.items())
    return Measurement(criterion, text, judge(max(ratios.values()), check))


@check_kind("lr_spread_ratio")
def lr_spread_ratio(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """slimTrain's spread of the final validation loss across learning rates over Adam's."""
    slim, adam = _pair(check, rows)
    criterion = (f"spread of the final validation loss across learning rates (max ÷ min "
                 f"of the medians) of slimTrain ÷ that of Adam {check['op']} "
                 f"{check['threshold']:g}")
    spreads = {}
    for name, g in (("slimTrain", slim), ("Adam", adam)):
        med = g.groupby("s_lr")["val_loss"].median()
        if len(med) >= 2:
            spreads[name] = float(med.max() / med.min())
    if len(spreads) < 2:
        return Measurement(criterion, "fewer than two learning rates for a strategy", None)
    ratio = spreads["slimTrain"] / spreads["Adam"]
    return Measurement(criterion, f"{ratio:.3f} (slimTrain spread "
                                  f"{fmt(spreads['slimTrain'], 3)}, Adam "
                                  f"{fmt(spreads['Adam'], 3)})", judge(ratio, check))


@check_kind("epoch_time_ratio")
def epoch_time_ratio(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """slimTrain's median time per epoch over Adam's."""
    slim, adam = _pair(check, rows)
    criterion = f"median time per epoch of slimTrain ÷ Adam's {check['op']} " \
                f"{check['threshold']:g}"
    if slim.empty or adam.empty:
        return Measurement(criterion, "no cells of one of the strategies", None)
    ratio = float(slim["epoch_s"].median() / adam["epoch_s"].median())
    return Measurement(criterion, f"{ratio:.2f} ({fmt(slim['epoch_s'].median(), 3)} s vs "
                                  f"{fmt(adam['epoch_s'].median(), 3)} s)", judge(ratio, check))
