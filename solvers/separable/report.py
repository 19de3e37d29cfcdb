"""Report section of the separable-network family (Newman, Chung, Chung & Ruthotto 2022):
per problem the loss-vs-epoch curves (median and band over seeds) for both strategies, the
learning-rate-sensitivity figure, the relative-error table with the paper's statistics
(mean, std, min, max per split; median [min, max] over seeds), the time per epoch, and a
verdict for each claim in ``claims/`` (family separable), with the check kinds of this
family registered here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.family import Family
from harness.report.axes import style_axes
from harness.report.checks import judge_points, nothing_left
from harness.report.claims import (
    Accounting,
    Item,
    Measurement,
    check_kind,
    claim_blocks,
    iteration_spread,
    outcome_values,
    pair_rows,
    paired_values,
    select_variant,
    summarise_pairs,
)
from harness.report.document import Heading, Paragraph, Table, fmt
from harness.report.generic import problem_parts, spread
from harness.report.labels import (
    sort_labels,
    with_labels,
)
from harness.report.outcomes import mark_not_ok
from harness.stats import Estimate
from harness.vocabulary import STRATEGY, column

from .strategies import AdamSeparable as Adam
from .strategies import SlimTrain
from .train import REL_ERR_STATS, SPLITS

if TYPE_CHECKING:
    from harness.report import ReportContext

FREE = ("lr",)  # the checks pair or sweep the learning rate; every other parameter is fixed
LR, LB = column(STRATEGY, "lr"), column(STRATEGY, "lb")


def section(ctx: ReportContext, family: Family) -> list[Any]:
    """Per problem: loss curves, learning-rate sensitivity, the paper's error table, cost,
    and the verdicts."""
    blocks: list[Any] = [Heading(family.title)]
    for part in problem_parts(ctx, family):
        blocks += part.opening()
        if part.ok.empty:
            continue
        ok, tag = _variant_labels(part.ok), part.tag
        curves = _curves(ctx, ok)
        tables = [mark_not_ok(table, part.labelled, history=ctx.history)
                  for table in (_error_table(ok, tag), _cost_table(ok, tag))]
        blocks += [b for b in (_loss_figure(ctx, curves, tag), _lr_figure(ctx, ok, tag),
                               _theta_figure(ctx, ok, tag), *tables) if b is not None]
        blocks += _sgcv_branch(ctx, ok, tag)
        blocks += claim_blocks(ctx, family, part.rows, where=part.title)
    return blocks


def _variant_labels(ok: pd.DataFrame) -> pd.DataFrame:
    """``label``: the variant; ``method``: the same without the learning rate (a line of
    the figures that sweep it or have a panel per learning rate)."""
    return with_labels(ok).assign(method=with_labels(ok, omit=FREE)["label"])


def _sgcv_branch(ctx: ReportContext, ok: pd.DataFrame, tag: str) -> list[Any]:
    """Per slimTrain variant choosing Λ by sGCV: in how many batches its denominator base
    (first term − trace) was ≤ 0 at the chosen Λ — the wrong branch, where sGCV falls
    toward the most negative candidate — and how often Λ̄ sat at the lower bound; then, in
    words, what a variant mostly on the wrong branch actually did."""
    h = ctx.history
    if h.empty:
        return []
    h = h[h["cell_id"].isin(ok["cell_id"]) & h["metric"].isin(["sgcv_free", "lam_bar"])]
    if not (h["metric"] == "sgcv_free").any():
        return []
    wide = h.pivot_table(index=["cell_id", "step"], columns="metric", values="value")
    wide = wide.dropna(subset=["sgcv_free"]).reset_index()
    wide = wide.merge(ok[["cell_id", "method", LB]], on="cell_id")
    rows, said = [], []
    for variant, g in wide.groupby("method", sort=True):
        wrong = int((g["sgcv_free"] <= 0).sum())
        at_lb = int((g["lam_bar"] <= g[LB] * (1 + 1e-6)).sum())
        rows.append([f"`{variant}`", len(g), f"{wrong} ({wrong / len(g):.0%})",
                     f"{at_lb} ({at_lb / len(g):.0%})", fmt(g["lam_bar"].median())])
        if 2 * wrong >= len(g):
            said.append(f"`{variant}` minimised sGCV on its wrong branch in {wrong} of "
                        f"{len(g)} batches, and Λ̄ sat at the lower bound "
                        f"{fmt(g[LB].iloc[0])} in {at_lb}" + (
                            ": in these runs its last layer was in effect fitted "
                            "unregularised, not by a GCV-chosen Λ." if 2 * at_lb >= len(g)
                            else "."))
    blocks: list[Any] = [Table(
        ["variant", "sGCV batches", "wrong branch (first term − trace ≤ 0)",
         "Λ̄ at the lower bound", "median Λ̄"], rows,
        caption="What sGCV did, over every batch of every seed: on the wrong branch its "
        "denominator's base is ≤ 0 (with `denominator: samples` and fewer images in a batch "
        "than features, at every small Λ̄ + Λ), sGCV is smallest at the most negative "
        "candidate and Λ̄ falls to the lower bound. Neither source guards this; the harness "
        "follows them and counts it.", name=f"separable-{tag}-sgcv-branch")]
    if said:
        blocks.append(Paragraph(" ".join(said)))
    return blocks


def _curves(ctx: ReportContext, ok: pd.DataFrame, metric: str = "loss") -> pd.DataFrame:
    """Per-epoch values of ``metric``: history columns plus method, strategy, learning rate
    (``LR``) and seed."""
    h = ctx.history
    if h.empty:
        return pd.DataFrame()
    h = h[h["cell_id"].isin(ok["cell_id"]) & (h["metric"] == metric)]
    return h.merge(ok[["cell_id", "method", "strategy", LR, "seed"]], on="cell_id")


def _loss_figure(ctx: ReportContext, curves: pd.DataFrame, tag: str):
    import matplotlib.pyplot as plt

    if curves.empty:
        return None
    lrs = sorted(curves[LR].unique())
    fig, axes = plt.subplots(1, len(lrs), figsize=(4.6 * len(lrs), 4), sharey=True,
                             squeeze=False)
    variants = sort_labels(curves["method"])
    colors = dict(zip(variants, plt.cm.tab10.colors, strict=False))
    for ax, lr in zip(axes[0], lrs, strict=True):
        for variant in variants:
            for split, style in (("train", "--"), ("val", "-")):
                c = curves[(curves[LR] == lr) & (curves["method"] == variant)
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

    if ok[LR].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for variant, g in ok.groupby("method"):
        stats = g.groupby(LR)["val_loss"].agg(["median", "min", "max"])
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
    for (variant, lr), g in h.groupby(["method", LR]):
        med = g.groupby("step")["value"].median()
        ax.plot(med.index + 1, med.values, label=f"{variant}, lr {lr:g}")
    style_axes(ax, "epoch", "‖θₖ − θₖ₋₁‖", ncol=2)
    return ctx.save_figure(fig, f"separable-{tag}-theta-change",
                           "Change of the feature-extractor weights per epoch (median over "
                           "seeds), per strategy and learning rate.")


def _error_table(ok: pd.DataFrame, tag: str) -> Table:
    """Per variant and split: the per-sample relative error's median, mean, std, min and
    max, each the median over seeds [min, max over seeds] — one row per split, so a heavy
    tail (samples near c = 0, or a seed that blew up) shows as a bracket beside a readable
    median rather than as one "87.5 ± 9e+02"."""
    rows = []
    for label in sort_labels(ok["label"]):
        g = ok[ok["label"] == label]
        for split in SPLITS:
            rows.append([label, split, *(spread(g[f"rel_err_{split}_{s}"], digits=3)
                                         for s in REL_ERR_STATS)])
    return Table(["variant", "split", *REL_ERR_STATS], rows,
                 caption="Relative error ‖W z − c‖/‖c‖ per sample: its median, mean, std, "
                         "min and max over the samples of a split (the paper's table has "
                         "all but the median, which is there because the per-sample error "
                         "is heavy-tailed where ‖c‖ is near 0), each the median over seeds "
                         "[min, max over seeds].",
                 name=f"separable-{tag}-relative-error")


def _cost_table(ok: pd.DataFrame, tag: str) -> Table:
    med = ok.groupby("label")[["epoch_s", "train_loss", "val_loss", "best_val_loss",
                               "test_loss"]].median()
    rows = [[label, *med.loc[label]] for label in sort_labels(med.index)]
    return Table(["variant", "s / epoch", "train loss", "val loss", "best val loss",
                  "test loss"], rows,
                 caption="Time per epoch (evaluation excluded) and final losses, medians over "
                         "seeds.", name=f"separable-{tag}-cost")


def _sides(check: dict) -> tuple[str, str]:
    """The two variants a check compares: ``strategy`` (slimTrain) and ``baseline``
    (Adam), each one variant whose learning rate is free (the checks pair or sweep it)."""
    return check.get("strategy", SlimTrain.name), check.get("baseline", Adam.name)


def _per_lr(check: dict, rows: pd.DataFrame, metric: str) -> dict[float, Estimate | None]:
    """Per learning rate in the scope, ``metric`` of the strategy ÷ the baseline's, per seed
    (a failed cell as the worst value of its instance at that learning rate)."""
    sel, base = _sides(check)
    sides = [select_variant(rows, s, FREE) for s in (sel, base)]
    points = {}
    for lr in sorted(rows[LR].dropna().unique()):
        scope = rows[rows[LR] == lr]
        (a, acc_a), (b, acc_b) = (outcome_values(x[x[LR] == lr], scope, metric)
                                  for x in sides)
        points[float(lr)] = summarise_pairs(pair_rows(a, b, metric), "ratio",
                                            acc_a.versus(acc_b))
    return points


@check_kind("early_loss_ratio")
def early_loss_ratio(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """At every learning rate, slimTrain's validation loss after an early epoch over Adam's,
    per seed (a cell that failed counts as the worst loss at that learning rate)."""
    epoch, op, threshold = int(check["epoch"]), check["op"], check["threshold"]
    sel, base = _sides(check)
    criterion = (f"at every learning rate, validation loss of `{sel}` ÷ that of `{base}` after "
                 f"epoch {epoch}, per seed, {op} {threshold:g}")
    h = ctx.history
    if h.empty:
        return Measurement(criterion, "no history", None)
    at = h[(h["metric"] == "loss") & (h["split"] == "val") & (h["step"] == epoch - 1)]
    early = rows["cell_id"].map(at.groupby("cell_id")["value"].first())
    points = _per_lr(check, rows.assign(early=early), "early")
    return judge_points({**check, "over": "lr"}, points, criterion)


@check_kind("lr_spread_ratio")
def lr_spread_ratio(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """slimTrain's spread of the final validation loss across learning rates (max ÷ min)
    over Adam's, per seed; a cell that failed (diverged) counts as the worst validation loss
    any cell of the problem reached, so a divergence widens its strategy's spread."""
    sel, base = _sides(check)
    criterion = (f"spread of the final validation loss across learning rates (max ÷ min, per "
                 f"seed) of `{sel}` ÷ that of `{base}` {check['op']} {check['threshold']:g}")

    def spread(selector: str) -> tuple[pd.Series, Accounting]:
        values, acc = outcome_values(select_variant(rows, selector, FREE), rows, "val_loss")
        per = values.pivot_table(index="seed", columns=LR, values="val_loss",
                                 aggfunc="mean")
        if per.shape[1] < 2:
            return pd.Series(dtype=float), acc
        partial = int(per.isna().any(axis=1).sum())
        acc = acc + Accounting(excluded={"seeds without every learning rate": partial})
        per = per.dropna()
        return per.max(axis=1) / per.min(axis=1), acc

    (a, acc_a), (b, acc_b) = spread(sel), spread(base)
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
    est = summarise_pairs(both.rename_axis("seed").reset_index(), "ratio", acc_a.versus(acc_b))
    if est is None:
        return Measurement(criterion, "fewer than two learning rates for a strategy", None)
    return Measurement(criterion, f"{est.text()} (median spreads: {sel} "
                                  f"{fmt(both['a'].median(), 3)}, {base} "
                                  f"{fmt(both['b'].median(), 3)})",
                       items=[Item(est, check["op"], float(check["threshold"]))],
                       estimate=est)


@check_kind("epoch_time_ratio")
def epoch_time_ratio(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """slimTrain's time per epoch over Adam's, paired by seed and learning rate and reduced
    within the seed. A failed cell's time per epoch is not a cost outcome (it may have
    stopped at its first step): it is left out, and counted."""
    sel, base = _sides(check)
    criterion = (f"time per epoch of `{sel}` ÷ that of `{base}`, per seed (its learning "
                 f"rates' ratios averaged on the log scale), {check['op']} "
                 f"{check['threshold']:g}")
    pairs, acc = paired_values(rows, sel, base, "epoch_s", (LR,), failed="exclude")
    est = summarise_pairs(pairs, "ratio", acc)
    if est is None:
        return Measurement(criterion, nothing_left("no cells of one of the strategies", acc),
                           None)
    slim, adam = (select_variant(rows, s, FREE) for s in (sel, base))
    cv = [iteration_spread(ctx.history, g["cell_id"], "epoch_s") for g in (slim, adam)]
    detail = (f"Within-cell spread of the epoch time (median coefficient of variation over "
              f"the cells): {sel} {100 * cv[0]:.0f}%, {base} {100 * cv[1]:.0f}%."
              if None not in cv else "")
    return Measurement(criterion, f"{est.text()} (medians {fmt(slim['epoch_s'].median(), 3)} "
                                  f"s vs {fmt(adam['epoch_s'].median(), 3)} s)",
                       items=[Item(est, check["op"], float(check["threshold"]))], detail=detail,
                       estimate=est)
