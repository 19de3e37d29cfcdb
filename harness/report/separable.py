"""Report section of the separable-network family (Newman, Chung, Chung & Ruthotto 2022):
per problem the loss-vs-epoch curves (median and band over seeds) for both strategies, the
learning-rate-sensitivity figure, the relative-error table as the paper prints it (mean ±
std, min, max per split), the time per epoch, and a verdict for each claim in
results/reference/ (family separable)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import section
from .axes import style_axes
from .claims import compare, load_references
from .document import Heading, Paragraph, Table, Verdict, fmt
from .labels import by_problem, data_sources, with_labels

if TYPE_CHECKING:
    from . import ReportContext

SPLITS = ("train", "val", "test")


@section("separable")
def separable_section(ctx: ReportContext) -> list[Any]:
    df = ctx.cells[ctx.cells["family"] == "separable"]
    blocks: list[Any] = [Heading("Separable networks: slimTrain vs Adam")]
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
        blocks += _verdicts(ok, curves, title)
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
    variants = sorted(curves["variant"].unique())
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
    for label, g in ok.groupby("label", sort=True):
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
    rows = [[label, *med.loc[label]] for label in med.index]
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


def _verdicts(ok: pd.DataFrame, curves: pd.DataFrame, title: str) -> list[Any]:
    blocks: list[Any] = []
    for ref in load_references("separable"):
        blocks.append(Paragraph(f"Claims of {ref.paper} (`{ref.path.split('/')[-1]}`), "
                                f"{title}:"))
        for claim in ref.claims:
            check = claim.check
            slim = _select(ok, "slimtrain", check.get("slimtrain", {}))
            adam = _select(ok, "adam", check.get("adam", {}))
            value, measured, criterion = _measure(check, slim, adam, curves)
            outcome = ("no data" if value is None else "reproduced"
                       if compare(value, check["op"], float(check["threshold"]))
                       else "not reproduced")
            blocks.append(Verdict(claim=claim.claim, source=claim.source, criterion=criterion,
                                  measured=measured, outcome=outcome, detail=claim.note))
    return blocks


def _measure(check: dict, slim: pd.DataFrame, adam: pd.DataFrame,
             curves: pd.DataFrame) -> tuple[float | None, str, str]:
    kind, op, threshold = check["kind"], check["op"], check["threshold"]
    if kind == "early_loss_ratio":
        epoch = int(check["epoch"])
        criterion = (f"at every learning rate, median validation loss of slimTrain ÷ Adam's "
                     f"after epoch {epoch} {op} {threshold:g}; the value is the largest ratio")
        if slim.empty or adam.empty or curves.empty:
            return None, "no cells of one of the strategies", criterion
        c = curves[(curves["split"] == "val") & (curves["step"] == epoch - 1)]
        ratios = {}
        for lr in sorted(set(slim["s_lr"]) & set(adam["s_lr"])):
            s = c[c["cell_id"].isin(slim[slim["s_lr"] == lr]["cell_id"])]["value"].median()
            a = c[c["cell_id"].isin(adam[adam["s_lr"] == lr]["cell_id"])]["value"].median()
            if np.isfinite(s) and np.isfinite(a):
                ratios[lr] = s / a
        if not ratios:
            return None, f"no common learning rate with epoch {epoch}", criterion
        text = ", ".join(f"lr {lr:g}: {r:.3f}" for lr, r in ratios.items())
        return max(ratios.values()), text, criterion
    if kind == "lr_spread_ratio":
        criterion = (f"spread of the final validation loss across learning rates (max ÷ min "
                     f"of the medians) of slimTrain ÷ that of Adam {op} {threshold:g}")
        spreads = {}
        for name, rows in (("slimTrain", slim), ("Adam", adam)):
            med = rows.groupby("s_lr")["val_loss"].median()
            if len(med) >= 2:
                spreads[name] = float(med.max() / med.min())
        if len(spreads) < 2:
            return None, "fewer than two learning rates for a strategy", criterion
        return (spreads["slimTrain"] / spreads["Adam"],
                f"{spreads['slimTrain'] / spreads['Adam']:.3f} (slimTrain spread "
                f"{fmt(spreads['slimTrain'], 3)}, Adam {fmt(spreads['Adam'], 3)})", criterion)
    if kind == "epoch_time_ratio":
        criterion = f"median time per epoch of slimTrain ÷ Adam's {op} {threshold:g}"
        if slim.empty or adam.empty:
            return None, "no cells of one of the strategies", criterion
        ratio = float(slim["epoch_s"].median() / adam["epoch_s"].median())
        return ratio, (f"{ratio:.2f} ({fmt(slim['epoch_s'].median(), 3)} s vs "
                       f"{fmt(adam['epoch_s'].median(), 3)} s)"), criterion
    raise ValueError(f"unknown check kind {kind!r} in a separable reference file")
