"""The section every family gets with no code: per problem, a table of each declared
metric per strategy variant and swept parameter (median and min–max over seeds), a
default figure, and the verdicts of the family's claims.

A family's own section (named by its declaration) refines this one; it can reuse
:func:`metric_table` and :func:`metric_figure`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import registry
from ..family import Family
from ..variant import param_text
from ..vocabulary import DATASET, PROBLEM, is_parameter, role_columns, short_name, shown_name
from .axes import style_axes
from .claims import claim_blocks
from .document import Figure, Heading, Paragraph, Table, fmt
from .labels import by_problem, data_sources, problem_settings, sort_labels, with_labels
from .outcomes import mark_not_ok

if TYPE_CHECKING:
    from . import ReportContext

MAX_FIGURE_METRICS = 3  # panels of the default figure


@dataclass(frozen=True)
class ProblemPart:
    """One problem's cells in a family's section: its title and file-name tag, its rows of
    every status, the same labelled (``label``: the variant), and the ok ones."""

    title: str
    tag: str
    rows: pd.DataFrame
    labelled: pd.DataFrame
    ok: pd.DataFrame

    def opening(self) -> list[Any]:
        """The problem's heading, then where its data came from and its settings, or
        that it has no ok cell."""
        if self.ok.empty:
            return [Heading(self.title, 3), Paragraph("No ok cells for this problem.")]
        return [Heading(self.title, 3), *(Paragraph(p) for p in (
            data_sources(self.ok), problem_settings(self.ok)) if p)]


def problem_parts(ctx: ReportContext, family: Family) -> Iterator[ProblemPart]:
    """The problems of ``family`` in the report's cells, in title order."""
    df = ctx.cells[ctx.cells["family"] == family.name]
    for title, tag, rows in by_problem(df):
        labelled = with_labels(rows)
        yield ProblemPart(title, tag, rows, labelled, labelled[labelled["status"] == "ok"])


def generic_section(ctx: ReportContext, family: Family) -> list[Any]:
    """The generic section of ``family``."""
    blocks: list[Any] = [Heading(family.title)]
    for part in problem_parts(ctx, family):
        blocks += part.opening()
        ok, tag = part.ok, part.tag
        if not ok.empty:
            metrics = declared_metrics(ok)
            swept = varying_problem_columns(ok)
            blocks.append(mark_not_ok(metric_table(ok, metrics, swept,
                                                   f"{family.name}-{tag}-metrics"),
                                      part.labelled, history=ctx.history))
            figure = metric_figure(ctx, ok, metrics[:MAX_FIGURE_METRICS], swept,
                                   f"{family.name}-{tag}-metrics")
            if figure is not None:
                blocks.append(figure)
        blocks += claim_blocks(ctx, family, part.rows, where=part.title)
    return blocks


def declared_metrics(ok: pd.DataFrame) -> list[str]:
    """The numeric metrics the rows' problem and strategies declare (problem's first), that
    some row has, then the training time."""
    names: list[str] = []
    classes = [registry.problems().get(p) for p in sorted(ok["problem"].unique())]
    classes += [registry.strategies().get(s) for s in sorted(ok["strategy"].unique())]
    for cls in filter(None, classes):
        for name, metric in cls.metrics.items():
            if metric.kind in (int, float) and name not in names and name in ok \
                    and ok[name].notna().any():
                names.append(name)
    return [*names, "train_s"]


def varying_problem_columns(ok: pd.DataFrame) -> list[str]:
    """The problem parameter columns that take more than one value in ``ok``: the points
    its table and figure show, data sets aside (:func:`~harness.report.labels.by_problem`
    gives each its own heading)."""
    headed = set(role_columns(DATASET, ok.columns))
    return [c for c in ok.columns if is_parameter(c, PROBLEM) and c not in headed
            and ok[c].astype(str).nunique() > 1]


def spread(values: pd.Series, digits: int = 4) -> str:
    """The report's summary over seeds: ``median [min, max]`` (just the median for one
    value, an en dash for none); robust when a few seeds blow up, and the bracket shows
    that they did."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return "–"
    med = fmt(float(values.median()), digits)
    if len(values) < 2:
        return med
    return f"{med} [{fmt(float(values.min()), 3)}, {fmt(float(values.max()), 3)}]"


def metric_table(ok: pd.DataFrame, metrics: list[str], swept: list[str], name: str) -> Table:
    """One row per variant and swept-parameter value: each metric's median [min, max] over
    seeds."""
    rows = []
    for label in sort_labels(ok["label"]):
        g = ok[ok["label"] == label]
        groups = g.groupby(swept, sort=True) if swept else [((), g)]
        for point, p in groups:
            point = point if isinstance(point, tuple) else (point,)
            values = [param_text(v, _param(ok, c)) for c, v in zip(swept, point, strict=True)]
            rows.append([label, *values, p["seed"].nunique(),
                         *(spread(p[m]) for m in metrics)])
    columns = ["variant", *(shown_name(c, ok) for c in swept), "seeds", *metrics]
    return Table(columns, rows, caption="Median over seeds [min, max].", name=name)


def _param(ok: pd.DataFrame, column: str) -> Any:
    cls = registry.problems().get(ok["problem"].iloc[0])
    return cls.parameters.get(short_name(column)) if cls else None


def metric_figure(ctx: ReportContext, ok: pd.DataFrame, metrics: list[str],
                  swept: list[str], name: str) -> Figure | None:
    """Each metric against the first swept numeric parameter (median line, min–max band,
    one line per variant), or per variant as points with min–max bars when nothing
    numeric is swept."""
    import matplotlib.pyplot as plt

    if not metrics:
        return None
    x = next((c for c in swept if pd.api.types.is_numeric_dtype(ok[c])), None)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.8),
                             squeeze=False)
    labels = sort_labels(ok["label"])
    for ax, metric in zip(axes[0], metrics, strict=True):
        values = pd.to_numeric(ok[metric], errors="coerce")
        positive = bool((values.dropna() > 0).all())
        for i, label in enumerate(labels):
            g = ok[ok["label"] == label].assign(_v=values)
            if x is None:
                med, lo, hi = g["_v"].median(), g["_v"].min(), g["_v"].max()
                ax.errorbar([i], [med], yerr=[[med - lo], [hi - med]], fmt="o", label=label)
                continue
            stats = g.groupby(x)["_v"].agg(["median", "min", "max"]).dropna()
            (line,) = ax.plot(stats.index, stats["median"], marker="o", ms=3, label=label)
            ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(),
                            alpha=0.18, lw=0)
        xs = ok[x].dropna() if x else None
        xlog = 2 if x is not None and (xs > 0).all() and xs.max() >= 8 * xs.min() else None
        style_axes(ax, shown_name(x, ok) if x else "variant", metric, xlog=xlog, ylog=positive,
                   legend=7 if ax is axes[0, 0] else None)
        if x is None:
            ax.set_xticks(np.arange(len(labels)), labels, rotation=30, fontsize=7)
    against = f"against {shown_name(x, ok)}" if x else "per variant"
    return ctx.save_figure(fig, name, f"{', '.join(metrics)} {against}: median over seeds, "
                                      f"band or bar = min…max.")
