"""Report section of the random-feature family (Kan, Nagy & Ruthotto 2020): the
double-descent figure, the test error / accuracy / ‖W‖ tables, the hybrid's test error
along its iterations, and a verdict for each claim in ``claims/`` (family rfm), with the
check kinds of this family registered here."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness import registry
from harness.family import Family
from harness.report.axes import style_axes
from harness.report.checks import curve_ratios
from harness.report.claims import (
    Accounting,
    Item,
    Measurement,
    check_kind,
    claim_blocks,
    describe_selector,
    ok_rows,
    paired_values,
    select_strategy,
    summarise_pairs,
    target,
)
from harness.report.document import Heading, Paragraph, Table, fmt
from harness.report.labels import data_sources, problem_settings, sort_labels, with_labels
from harness.report.outcomes import not_ok_sentence
from harness.stats import estimate
from harness.vocabulary import PROBLEM, column

from .strategies import AUTHORS, AUTHORS_CAPS, Hybrid, MinNorm, Tikhonov

if TYPE_CHECKING:
    from harness.report import ReportContext

M, N, DATASET = (column(PROBLEM, p) for p in ("n_features", "n_train", "dataset"))
# The references printed beside every spike verdict: no regularization, and weight decay
# tuned on the test data.
SPIKE_REFERENCES = (MinNorm.name, f"{Tikhonov.name}[select=oracle]")
AUTHORS_SELECTOR = (f"{Hybrid.name}[regparam={AUTHORS[0]},stop={AUTHORS[1]},"
                    f"max_iter={AUTHORS[2]}]")


def section(ctx: ReportContext, family: Family) -> list[Any]:
    """Per setting (dataset, n): the double-descent figures and tables, the hybrid's
    iterations, and the verdicts."""
    df = with_labels(ctx.cells[ctx.cells["family"] == family.name])
    blocks: list[Any] = [Heading(family.title)]
    for (dataset, n), setting in df.groupby([DATASET, N], sort=True):
        n = int(n)
        tag = f"{dataset}-n{n}"
        ok = setting[setting["status"] == "ok"]
        blocks.append(Heading(f"{dataset}, n = {n} training images", 3))
        if ok.empty:
            blocks.append(Paragraph("No ok cells in this setting."))
            continue
        source = data_sources(ok)
        if source:
            blocks.append(Paragraph(f"{source} The {n} training images are drawn at random "
                                    f"per seed, the test images from the rest; the same seed "
                                    f"gives every strategy the same split and features."))
        settings = problem_settings(ok)
        if settings:
            blocks.append(Paragraph(settings))
        legend = _variant_legend(ok)
        if legend is not None:
            blocks.append(legend)
        blocks.append(_double_descent(ctx, ok, n, tag))
        blocks.append(_panels(ctx, ok, n, tag))
        not_ok = not_ok_sentence(setting, ctx.history)
        for metric, title in (("test_mse", "Test error ‖WZ − C‖²/(2·samples)"),
                              ("test_acc", "Test accuracy"), ("w_norm", "‖W‖_F")):
            table = _metric_table(ok, metric, title, f"rfm-{tag}-{metric}")
            blocks.append(replace(table, caption=f"{table.caption} {not_ok}".strip()))
        blocks += _hybrid_iterations(ctx, ok, tag)
        blocks += claim_blocks(ctx, family, setting, where=f"{dataset}, n = {n}")
    return blocks


def _variant_legend(ok: pd.DataFrame) -> Table | None:
    """label → the strategy's own description of the variant, where it gives one."""
    rows = []
    for label in sort_labels(ok["label"]):
        g = ok[ok["label"] == label]
        cls = registry.strategies().get(g["strategy"].iloc[0])
        described = cls.describe(json.loads(g["params"].iloc[0])["strategy"]) if cls else None
        if described:
            rows.append([f"`{label}`", described])
    if not rows:
        return None
    return Table(["variant", "what it is"], rows, caption="The variants named in the figures "
                 "and tables below.")


def _curves(ok: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """label → (m, median, min, max) over seeds."""
    out = {}
    for label in sort_labels(ok["label"]):
        g = ok[ok["label"] == label]
        out[label] = g.groupby(M)[metric].agg(["median", "min", "max"]).reset_index()
    return out


def _plot_curves(ax: Any, curves: dict[str, pd.DataFrame], n: int, ylabel: str) -> None:
    for label, c in curves.items():
        (line,) = ax.plot(c[M], c["median"], marker="o", ms=3, label=label)
        ax.fill_between(c[M], c["min"], c["max"], color=line.get_color(), alpha=0.18, lw=0)
    ax.axvline(n, color="k", ls="--", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("features m")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def _double_descent(ctx: ReportContext, ok: pd.DataFrame, n: int, tag: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    _plot_curves(ax, _curves(ok, "test_mse"), n, "test error ‖WZ − C‖²/(2·samples)")
    ax.text(n, ax.get_ylim()[1], " m = n", va="top", ha="left", fontsize=9)
    ax.legend(fontsize=8)
    ax.set_title(f"Double descent — {tag}: median over seeds, band = min…max")
    seeds = ok["seed"].nunique()
    return ctx.save_figure(fig, f"rfm-{tag}-double-descent",
                           f"Test error vs number of features m (log axes), median over {seeds} "
                           f"seed(s) with the min–max band; dashed line: the interpolation "
                           f"threshold m = n = {n}.")


def _panels(ctx: ReportContext, ok: pd.DataFrame, n: int, tag: str):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    _plot_curves(axes[0], _curves(ok, "train_mse"), n, "training error")
    _plot_curves(axes[1], _curves(ok, "w_norm"), n, "‖W‖_F")
    axes[1].legend(fontsize=7)
    return ctx.save_figure(fig, f"rfm-{tag}-train-and-norm",
                           "Training error and weight norm vs m (medians, min–max bands).")


def _metric_table(ok: pd.DataFrame, metric: str, title: str, name: str) -> Table:
    pivot = ok.pivot_table(index=M, columns="label", values=metric, aggfunc="median")
    pivot = pivot[sort_labels(pivot.columns)]
    rows = [[int(m), *(pivot.loc[m, c] for c in pivot.columns)] for m in pivot.index]
    return Table(["m", *pivot.columns], rows, caption=f"{title}: median over seeds.", name=name)


def _hybrid_history(ctx: ReportContext, ok: pd.DataFrame) -> tuple[str, pd.DataFrame] | None:
    """(selector, the test error of its iterate after k iterations per cell) for the
    authors' hybrid configuration when the data has it, else for the default hybrid."""
    hist = ctx.history
    if hist.empty:
        return None
    for selector in (AUTHORS_SELECTOR, Hybrid.name):
        hyb = select_strategy(ok, selector)
        if hyb.empty:
            continue
        h = hist[hist["cell_id"].isin(hyb["cell_id"]) & (hist["metric"] == "test_mse")
                 & (hist["split"] == "test")]
        if not h.empty:
            return selector, h.merge(hyb[["cell_id", M, "seed"]], on="cell_id")
    return None


def _hybrid_iterations(ctx: ReportContext, ok: pd.DataFrame, tag: str) -> list[Any]:
    """The hybrid's test error against its iteration k, one line per m; for the authors'
    configuration also the table of their driver: the error at each cap ≤ m."""
    import matplotlib.pyplot as plt

    found = _hybrid_history(ctx, ok)
    if found is None:
        return []
    selector, h = found
    described = describe_selector(selector)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ms = sorted(h[M].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(ms)))
    for m, color in zip(ms, colors, strict=True):
        c = h[h[M] == m].groupby("step")["value"].median()
        ax.plot(c.index, c.values, marker=".", color=color, label=f"m = {m}")
    style_axes(ax, "hybrid iteration k", "test error", xlog=2, ncol=2)
    blocks: list[Any] = [ctx.save_figure(
        fig, f"rfm-{tag}-hybrid-iterations",
        f"`{selector}` ({described}): test error of the iterate after k iterations, one "
        f"line per m, median over seeds.")]
    if selector == AUTHORS_SELECTOR:
        blocks.append(_cap_table(h, tag))
    return blocks


def _cap_table(h: pd.DataFrame, tag: str) -> Table:
    """The authors' driver's table: the test error at each cap MaxIter = 2^4 … 2^10 that is
    ≤ m (and reached: k ≤ n), median over seeds with the seeds' range."""
    at_caps = h[h["step"].isin(AUTHORS_CAPS)]
    caps = [c for c in AUTHORS_CAPS if (at_caps["step"] == c).any()]  # none above n
    rows = []
    for m in sorted(at_caps[M].unique()):
        g = at_caps[at_caps[M] == m]
        row: list[Any] = [int(m)]
        for cap in caps:
            v = g[g["step"] == cap]["value"]
            row.append(f"{fmt(v.median())} [{fmt(v.min())}, {fmt(v.max())}]"
                       if cap <= m and len(v) else "")
        rows.append(row)
    return Table(["m", *(f"k = {c}" for c in caps)], rows,
                 caption=f"The authors' configuration (`{AUTHORS_SELECTOR}`) as their driver "
                 f"records it: test error after MaxIter = k iterations, for each cap k ≤ m, "
                 f"median over seeds [min, max]. Caps above the training size n are not "
                 f"shown: the Krylov space is full at k = n, so they are never reached.",
                 name=f"rfm-{tag}-hybrid-caps")


def _median_at(df: pd.DataFrame, selector: str, m: int) -> float | None:
    rows = ok_rows(df, selector)
    rows = rows[rows[M] == m]
    return float(rows["test_mse"].median()) if len(rows) else None


def _spike(df: pd.DataFrame, selector: str, n: int) -> tuple[float | None, str]:
    at = {m: _median_at(df, selector, m) for m in (n // 2, n, 2 * n)}
    if any(v is None for v in at.values()):
        missing = [m for m, v in at.items() if v is None]
        return None, f"no ok cells at m = {missing}"
    ratio = at[n] / min(at[n // 2], at[2 * n])
    return ratio, (f"{ratio:.3f} (median test error {fmt(at[n])} at m = {n}; {fmt(at[n // 2])} "
                   f"at m = {n // 2}; {fmt(at[2 * n])} at m = {2 * n})")


def _spike_per_seed(rows: pd.DataFrame, selector: str, n: int
                    ) -> tuple[pd.Series | None, Accounting]:
    """Per seed, the test error at m = n over the smaller of those at m = n/2 and 2n."""
    check = {"metric": "test_mse", "over": "n_features", "at": n, "around": [0.5, 2]}
    per_seed, _, acc = curve_ratios(rows, check, selector)
    return per_seed, acc


def _item(est, check: dict) -> list[Item]:
    return [Item(est, check.get("op", "<="), float(check["threshold"]))]


@check_kind("spike_ratio")
def spike_ratio(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """The test error at m = n over the smaller of those at m = n/2 and 2n, per seed."""
    selector, n = check["strategy"], int(rows[N].iloc[0])
    op, threshold = check.get("op", "<="), float(check["threshold"])
    criterion = (f"test error of `{selector}` at m = n divided by the smaller of its test "
                 f"errors at m = n/2 and m = 2n, per seed, {op} {threshold:g}")
    per_seed, acc = _spike_per_seed(rows, selector, n)
    _, medians = _spike(rows, selector, n)
    if per_seed is None or per_seed.empty:
        return Measurement(criterion, medians, None)
    est = acc.onto(estimate(np.log(per_seed.to_numpy(float)), "ratio"))
    return Measurement(criterion, f"{est.text()}; from the medians {medians}",
                       items=_item(est, check), detail=_spike_context(rows, n, selector),
                       estimate=est)


@check_kind("spike_ratio_vs")
def spike_ratio_vs(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """A variant's spike ratio divided by a baseline's, per seed."""
    selector, baseline, n = check["strategy"], check["baseline"], int(rows[N].iloc[0])
    op, threshold = check.get("op", "<="), float(check["threshold"])
    criterion = (f"spike ratio of `{selector}` (test error at m = n over the smaller of "
                 f"those at m = n/2 and 2n) ÷ that of `{baseline}`, per seed, "
                 f"{op} {threshold:g}")
    (own, acc_a), (base, acc_b) = (_spike_per_seed(rows, s, n) for s in (selector, baseline))
    _, own_text = _spike(rows, selector, n)
    _, base_text = _spike(rows, baseline, n)
    measured = f"medians: `{selector}` {own_text}; `{baseline}` {base_text}"
    if own is None or base is None:
        return Measurement(criterion, measured, None)
    both = pd.concat([own.rename("a"), base.rename("b")], axis=1).dropna()
    est = summarise_pairs(both.rename_axis("seed").reset_index(), "ratio", acc_a.versus(acc_b))
    if est is None:
        return Measurement(criterion, measured, None)
    return Measurement(criterion, f"{est.text()}; {measured}", items=_item(est, check),
                       detail=_spike_context(rows, n, selector, baseline), estimate=est)


@check_kind("max_ratio_to")
def max_ratio_to(check: dict, rows: pd.DataFrame, ctx: ReportContext) -> Measurement:
    """At every m, a variant's test error over a baseline's, per seed."""
    selector, baseline = check["strategy"], check["baseline"]
    op, threshold = check.get("op", "<="), float(check["threshold"])
    criterion = (f"at every m, test error of `{selector}` ÷ that of `{baseline}`, per seed, "
                 f"{op} {threshold:g}")
    per_m = {}
    for m in sorted(rows[M].dropna().unique()):
        pairs, acc = paired_values(rows[rows[M] == m], selector, baseline, "test_mse")
        per_m[int(m)] = summarise_pairs(pairs, "ratio", acc)
    judged = {m: e for m, e in per_m.items() if e is not None}
    if not judged:
        return Measurement(criterion, "no cells of both strategies at a common m", None)
    worst = max(judged, key=lambda m: judged[m].value)
    detail = "Per m: " + ", ".join(f"{m}: {e.value:.3f}" if e else f"{m}: no data"
                                   for m, e in per_m.items()) + "."
    return Measurement(criterion, f"max at m = {worst}: {judged[worst].text()}", detail=detail,
                       items=[Item(e, op, threshold) for e in per_m.values()],
                       estimate=judged[worst], every=True,
                       target=f"{target(check)} at every m")


def _spike_context(df: pd.DataFrame, n: int, *shown: str) -> str:
    """The spike ratio of the reference strategies not ``shown`` already, printed beside a
    spike verdict."""
    context = []
    for other in SPIKE_REFERENCES:
        if other not in shown:
            r, _ = _spike(df, other, n)
            if r is not None:
                context.append(f"`{other}` {r:.3f}")
    return ("Same ratio for " + ", ".join(context) + ".") if context else ""
