"""``harness compare BASE NEW``: two runs of one grid, cell by cell.

Cells are matched by identity (``cell_id``: problem, strategy, their parameters and the
seed — not backend, host or device), so the same comparison serves a commit against the
last release, a GPU run against a CPU run, and one backend against another. Per problem
and strategy variant: the ratio NEW ÷ BASE of the training time and of the time per
iteration (geometric mean over the matched cells with a 95% t interval on the log-ratios,
``harness.stats``), the difference NEW − BASE of every declared quality metric (exactly
equal, or its mean with an interval), cells whose status changed, cells found in one run
only, and a figure of the per-variant time ratios. Written as ``compare.md`` and a
self-contained ``compare.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import atomic
from .errors import InputError
from .report.document import Document, Figure, Heading, Paragraph, Table, to_html, to_markdown
from .report.labels import by_problem, sort_labels, with_labels
from .result import FAILED, OK
from .schema import deterministic_metric_columns
from .stats import Estimate, paired_difference, paired_ratio
from .store import load_cells

PER_ITERATION = ("iter_s", "epoch_s")  # time of one iteration or epoch, where declared


@dataclass
class Variant:
    """One problem × strategy variant present in both runs."""

    problem: str
    label: str
    cells: int
    train: Estimate | None
    per_iteration: Estimate | None
    per_iteration_metric: str | None
    equal: list[str] = field(default_factory=list)  # quality metrics exactly equal
    differences: dict[str, Estimate] = field(default_factory=dict)  # the others


@dataclass
class RunComparison:
    base: Path
    new: Path
    common: int
    variants: list[Variant]
    status_changes: pd.DataFrame  # cell_id, problem, strategy, seed, status_base, status_new
    only_base: pd.DataFrame
    only_new: pd.DataFrame

    def regressions(self, pct: float) -> list[Variant]:
        """Variants whose training time ratio's interval lies wholly above 1 + pct/100."""
        bound = 1 + pct / 100
        return [v for v in self.variants if v.train is not None and v.train.has_interval
                and v.train.low > bound]

    def newly_failed(self) -> pd.DataFrame:
        """Cells ``ok`` in BASE and failed (error, timeout, diverged, oom) in NEW."""
        s = self.status_changes
        return s[(s["status_base"] == OK) & s["status_new"].isin(FAILED)]


def compare_runs(base: Path, new: Path) -> RunComparison:
    """Match the latest attempts of two output folders by ``cell_id``; an ``InputError``
    when they share no cell."""
    a, b = load_cells(base), load_cells(new)
    common = sorted(set(a["cell_id"]) & set(b["cell_id"]))
    if not common:
        raise InputError(f"no cell in common with {new} ({len(a)} and {len(b)} cells): "
                         f"compare two runs of the same grid", file=str(base))
    a, b = a.set_index("cell_id"), b.set_index("cell_id")
    both = a.loc[common].join(b.loc[common], suffixes=("", "_new"))
    keep = ["problem", "strategy", "seed"]
    changed = both[both["status"] != both["status_new"]].reset_index()
    changes = changed[["cell_id", *keep, "status", "status_new"]].rename(
        columns={"status": "status_base"})
    only_base = a.drop(index=common).reset_index()[["cell_id", *keep, "status"]]
    only_new = b.drop(index=common).reset_index()[["cell_id", *keep, "status"]]
    ok = both[(both["status"] == OK) & (both["status_new"] == OK)].reset_index()
    return RunComparison(base, new, len(common), _variants(ok), changes, only_base, only_new)


def _variants(ok: pd.DataFrame) -> list[Variant]:
    quality = [m for m in deterministic_metric_columns()
               if m in ok and pd.api.types.is_numeric_dtype(ok[m]) and ok[m].notna().any()]
    variants = []
    for title, _, rows in by_problem(with_labels(ok)):
        for label in sort_labels(rows["label"]):
            g = rows[rows["label"] == label]
            per_iter = next((m for m in PER_ITERATION if m in g and g[m].notna().any()), None)
            v = Variant(title, label, len(g), _ratio(g, "train_s"),
                        _ratio(g, per_iter) if per_iter else None, per_iter)
            for metric in quality:
                x, y = g[metric].to_numpy(float), g[f"{metric}_new"].to_numpy(float)
                if not (np.isfinite(x) | np.isfinite(y)).any():
                    continue
                if np.array_equal(x, y, equal_nan=True):
                    v.equal.append(metric)
                elif (d := _in_cells(paired_difference(y, x))) is not None:
                    v.differences[metric] = d
            variants.append(v)
    return variants


def _ratio(g: pd.DataFrame, metric: str) -> Estimate | None:
    est = paired_ratio(g[f"{metric}_new"].to_numpy(float), g[metric].to_numpy(float))
    return _in_cells(est)


def _in_cells(est: Estimate | None) -> Estimate | None:
    return None if est is None else replace(est, unit="cell")


def _text(est: Estimate | None) -> str:
    return est.text() if est is not None else "–"


def write_compare(result: RunComparison, out: Path, fail_pct: float | None = None
                  ) -> list[Path]:
    """``out/compare.md``, ``out/compare.html`` and ``out/figures/compare-ratios.png``."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    doc = Document(title=f"Harness compare — {result.new} vs {result.base}")
    doc.add(*_summary(result, fail_pct))
    figure = _figure(result, out, fail_pct)
    if figure is not None:
        doc.add(figure)
    doc.add(*_quality_blocks(result), *_status_blocks(result))
    written = []
    for name, text in (("compare.md", to_markdown(doc, out)), ("compare.html", to_html(doc))):
        atomic.write_text(out / name, text)
        written.append(out / name)
    return [*written, *([figure.path] if figure else [])]


def _summary(result: RunComparison, fail_pct: float | None) -> list[Any]:
    blocks: list[Any] = [Heading("Timing: NEW ÷ BASE"), Paragraph(
        f"BASE `{result.base}`, NEW `{result.new}`: {result.common} cells in common "
        f"(matched by identity: problem, strategy, parameters, seed), {len(result.only_base)} "
        f"in BASE only, {len(result.only_new)} in NEW only, {len(result.status_changes)} "
        f"with another status. Ratios are geometric means over the cells ok in both with a "
        f"95% t interval on the log-ratios; above 1 means NEW is slower.")]
    slower = {id(v) for v in result.regressions(fail_pct)} if fail_pct is not None else set()
    rows = [[v.problem, v.label, v.cells, _text(v.train),
             f"{v.per_iteration_metric}: {_text(v.per_iteration)}" if v.per_iteration else "–",
             "slower" if id(v) in slower else ""] for v in result.variants]
    blocks.append(Table(["problem", "variant", "cells", "training time NEW ÷ BASE",
                         "per iteration NEW ÷ BASE", "regression"], rows,
                        caption="Per problem and strategy variant." + (
                            f" Regression: the whole interval above 1 + {fail_pct:g}%."
                            if fail_pct is not None else "")))
    return blocks


def _quality_blocks(result: RunComparison) -> list[Any]:
    rows = []
    for v in result.variants:
        for metric, d in v.differences.items():
            rows.append([v.problem, v.label, metric, _text(d)])
    equal = sum(len(v.equal) for v in result.variants)
    text = (f"{equal} (variant, metric) pairs are exactly equal in both runs"
            + (", every deterministic metric of every variant." if not rows else
               "; the others differ:"))
    blocks: list[Any] = [Heading("Quality metrics: NEW − BASE"), Paragraph(text)]
    if rows:
        blocks.append(Table(["problem", "variant", "metric", "NEW − BASE (mean [95%], cells)"],
                            rows, caption="Declared metrics other than timings."))
    return blocks


def _status_blocks(result: RunComparison) -> list[Any]:
    blocks: list[Any] = [Heading("Status changes and unmatched cells")]
    s = result.status_changes
    if s.empty:
        blocks.append(Paragraph("No cell changed status."))
    else:
        blocks.append(Table(["cell_id", "problem", "strategy", "seed", "BASE", "NEW"],
                            s.values.tolist(), caption="Cells whose status changed."))
    for name, frame in (("BASE", result.only_base), ("NEW", result.only_new)):
        if len(frame):
            blocks.append(Table(["cell_id", "problem", "strategy", "seed", "status"],
                                frame.head(50).values.tolist(),
                                caption=f"Cells in {name} only ({len(frame)}; first 50)."))
    return blocks


def _figure(result: RunComparison, out: Path, fail_pct: float | None) -> Figure | None:
    import matplotlib.pyplot as plt

    shown = [v for v in result.variants if v.train is not None]
    if not shown:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(shown) + 1.5))
    for i, v in enumerate(shown):
        low = v.train.low if v.train.has_interval else v.train.value
        high = v.train.high if v.train.has_interval else v.train.value
        ax.errorbar([v.train.value], [i], xerr=[[v.train.value - low], [high - v.train.value]],
                    fmt="o", color="C3" if low > 1 else "C0", capsize=3)
    ax.axvline(1.0, color="k", lw=1)
    if fail_pct is not None:
        ax.axvline(1 + fail_pct / 100, color="C3", lw=1, ls="--")
    ax.set_yticks(range(len(shown)), [f"{v.problem}: {v.label}" for v in shown], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("training time NEW ÷ BASE (95% interval)")
    ax.grid(True, which="both", axis="x", alpha=0.3)
    (out / "figures").mkdir(exist_ok=True)
    path = out / "figures" / "compare-ratios.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Figure(path, "Training time NEW ÷ BASE per variant with its 95% interval; red: "
                        "the whole interval above 1.")

