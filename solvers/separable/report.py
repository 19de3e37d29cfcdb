"""Report section of the separable-network family (Newman, Chung, Chung & Ruthotto 2022):
per problem the loss-vs-epoch curves (median and band over seeds) for both strategies, the
learning-rate-sensitivity figure, the relative-error table as the paper prints it (mean ±
std, min, max per split), the time per epoch, and a verdict for each claim in ``claims/``
(family separable), with the check kinds of this family registered here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.family import Family
from harness.report.axes import style_axes
from harness.report.claims import (
    Measurement,
    check_kind,
    claim_blocks,
    iteration_spread,
    judge_estimate,
    pair_rows,
    summarise_pairs,
)
from harness.report.document import Heading, Paragraph, Table, fmt
from harness.report.labels import by_problem, data_sources, sort_labels, with_labels
from harness.stats import paired_ratio

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
    """At every learning rate, slimTrain's validation loss after an early epoch over Adam's,
    per seed."""
    slim, adam = _pair(check, rows)
    epoch, op, threshold = int(check["epoch"]), check["op"], check["threshold"]
    criterion = (f"at every learning rate, validation loss of slimTrain ÷ Adam's after epoch "
                 f"{epoch}, per seed, {op} {threshold:g}")
    curves = _curves(ctx, _variant_labels(rows[rows["status"] == "ok"]))
    if slim.empty or adam.empty or curves.empty:
        return Measurement(criterion, "no cells of one of the strategies", None)
    at = curves[(curves["split"] == "val") & (curves["step"] == epoch - 1)]
    at = at.groupby("cell_id")["value"].first()
    pairs = pair_rows(slim.assign(early=slim["cell_id"].map(at)),
                      adam.assign(early=adam["cell_id"].map(at)), "early", ("s_lr",))
    per_lr = {lr: e for lr, g in pairs.groupby("s_lr", sort=True)
              if (e := paired_ratio(g["a"], g["b"])) is not None}
    if not per_lr:
        return Measurement(criterion, f"no common learning rate with epoch {epoch}", None)
    worst = max(per_lr, key=lambda lr: per_lr[lr].value)
    text = "; ".join(f"lr {lr:g}: {e.text()}" for lr, e in per_lr.items())
    return Measurement(criterion, text, [judge_estimate(e, check) for e in per_lr.values()],
                       estimate=per_lr[worst], every=True)


@check_kind("lr_spread_ratio")
def lr_spread_ratio(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """slimTrain's spread of the final validation loss across learning rates (max ÷ min)
    over Adam's, per seed."""
    slim, adam = _pair(check, rows)
    criterion = (f"spread of the final validation loss across learning rates (max ÷ min, per "
                 f"seed) of slimTrain ÷ that of Adam {check['op']} {check['threshold']:g}")

    def spread(g: pd.DataFrame) -> pd.Series:
        per = g.pivot_table(index="seed", columns="s_lr", values="val_loss", aggfunc="mean")
        per = per.dropna()
        return per.max(axis=1) / per.min(axis=1) if per.shape[1] >= 2 else pd.Series(
            dtype=float)

    both = pd.concat([spread(slim).rename("a"), spread(adam).rename("b")], axis=1).dropna()
    est = paired_ratio(both["a"], both["b"]) if len(both) else None
    if est is None:
        return Measurement(criterion, "fewer than two learning rates for a strategy", None)
    return Measurement(criterion, f"{est.text()} (median spreads: slimTrain "
                                  f"{fmt(both['a'].median(), 3)}, Adam "
                                  f"{fmt(both['b'].median(), 3)})",
                       [judge_estimate(est, check)], estimate=est)


@check_kind("epoch_time_ratio")
def epoch_time_ratio(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """slimTrain's time per epoch over Adam's, paired by seed and learning rate."""
    slim, adam = _pair(check, rows)
    criterion = (f"time per epoch of slimTrain ÷ Adam's, per seed and learning rate, "
                 f"{check['op']} {check['threshold']:g}")
    est = summarise_pairs(pair_rows(slim, adam, "epoch_s", ("s_lr",)))
    if est is None:
        return Measurement(criterion, "no cells of one of the strategies", None)
    cv = [iteration_spread(ctx.history, g["cell_id"], "epoch_s") for g in (slim, adam)]
    detail = (f"Within-cell spread of the epoch time (median coefficient of variation over "
              f"the cells): slimTrain {100 * cv[0]:.0f}%, Adam {100 * cv[1]:.0f}%."
              if None not in cv else "")
    return Measurement(criterion, f"{est.text()} (medians {fmt(slim['epoch_s'].median(), 3)} "
                                  f"s vs {fmt(adam['epoch_s'].median(), 3)} s)",
                       [judge_estimate(est, check)], detail, estimate=est)
