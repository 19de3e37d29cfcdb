"""``harness compare BASE NEW``: two runs of one grid, cell by cell.

Cells are matched by identity (``cell_id``: problem, strategy, their parameters and the
seed — not backend, host or device), so the same comparison serves a commit against the
last release, a GPU run against a CPU run, and one backend against another. With
``--match-ignore NAME`` they are matched on that identity without the named parameters,
so a grid in which one parameter changed (a strategy's ``r: 5`` → ``r: 10``) pairs its
cells and says what the change did; an ignore that would pair two cells of one run with
one cell of the other is refused. Per problem
instance and strategy variant: the ratio NEW ÷ BASE of the training time and of the time
per iteration (a metric declared with the role ``harness.vocabulary.PER_ITERATION``)
(geometric mean over the matched cells with a 95% t interval on the log-ratios,
``harness.stats``), the difference NEW − BASE of every declared quality metric (exactly
equal, or its mean with an interval), cells whose status changed, cells found in
one run only (with their full labels), and a figure of the per-variant time ratios.
Written as ``compare.md`` and a self-contained ``compare.html``; the terminal gets the
summary (variants slower, faster, equal; unmatched cells; warnings) and why the command
exits as it does.

A regression (``--fail-on-regression PCT``) is decided so that an A/A comparison — the same
code run twice — rarely cries wolf: one hypothesis per variant ("its time ratio exceeds
1 + PCT/100", a one-sided t test on its cells' log ratios) and one for the run as a whole
(the same test on the variants' mean log ratios: a slowdown of everything), with Holm's
procedure across all of them at 5%. Variants with fewer than two matched cells cannot be
tested and are listed; runs on different machines are warned about (docs/verdicts.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import atomic, audit
from .errors import InputError
from .folder import OutputFolder, document_names
from .matching import ignored_values, match_keys, refuse_collisions, resolve_ignored
from .report.document import Document, Figure, Heading, Paragraph, Table, to_html, to_markdown
from .report.labels import by_problem, label_sort_key, sort_labels, with_labels
from .result import FAILED, OK
from .schema import deterministic_metric_columns
from .stats import Estimate, estimate, holm, paired_difference, paired_ratio
from .store import load_cells
from .variant import param_text
from .vocabulary import PER_ITERATION, PROBLEM, is_parameter, role_columns, shown_name

FAMILY_ERROR = 0.05  # Holm across the variants and the whole run, one-sided
MACHINE = ("host", "gpu_name", "device", "backend")  # where a cell ran, per row
_MD = document_names("compare")[0]  # where the differences are listed
UNMATCHED = ["cell_id", "title", "label", "seed", "status"]  # the columns of unmatched cells
SHOWN = 10  # variants named per line on the terminal


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
    ignored: list[str] = field(default_factory=list)  # ``r: 5 → 10``, where the runs differ


@dataclass
class RunComparison:
    base: Path
    new: Path
    common: int
    variants: list[Variant]
    status_changes: pd.DataFrame  # cell_id, problem, variant, seed, status_base, status_new
    only_base: pd.DataFrame  # cell_id, problem, variant, seed, status
    only_new: pd.DataFrame
    machines: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    per_seed: pd.Series = field(default_factory=pd.Series)  # mean training-time log ratio
    ignored: tuple[str, ...] = ()  # parameters left out of the matching (--match-ignore)
    audit: dict[str, str] = field(default_factory=dict)  # side → the placement audit's finding
    set_aside: dict[str, list[Path]] = field(default_factory=dict)  # side → damaged files

    @property
    def overall(self) -> Estimate | None:
        """The whole run's training-time ratio NEW ÷ BASE: per seed the mean log ratio of
        its cells, their geometric mean with a t interval over seeds. Seeds, not variants,
        are its unit: the run order takes seed after seed, so drift of either machine over
        the run shows up as a difference between seeds instead of hiding in a shared
        offset of every variant."""
        return None if self.per_seed.empty else replace(
            estimate(self.per_seed.to_numpy(), "ratio"), unit="seed")

    def untestable(self) -> list[Variant]:
        """Variants with fewer than two cells ok in both runs: no test can flag them."""
        return [v for v in self.variants if v.train is None or len(v.train.sample) < 2]

    def regressions(self, pct: float) -> list[Variant | str]:
        """What is slower than 1 + pct/100 after Holm's procedure across every testable
        variant and the whole run (``"the whole run"`` for the latter)."""
        bound = 1 + pct / 100
        tested: list[Variant | str] = [v for v in self.variants if v not in self.untestable()]
        overall = self.overall
        if overall is not None and overall.n >= 2:
            tested.append("the whole run")
        p = [(overall if isinstance(t, str) else t.train).p_values(">", bound)[0]
             for t in tested]
        return [t for t, slower in zip(tested, holm(p, FAMILY_ERROR), strict=True) if slower]

    def matching(self) -> str:
        """How the cells were paired, in words."""
        if not self.ignored:
            return "matched by identity: problem, strategy, parameters, seed"
        return (f"matched by problem, strategy, parameters and seed, ignoring "
                f"{', '.join(self.ignored)}")

    def machine_differences(self) -> list[str]:
        """``host: vm vs gpu-node-3`` for every way the two runs' machines differ."""
        return [f"{what}: {', '.join(a) or '–'} vs {', '.join(b) or '–'}"
                for what, (a, b) in self.machines.items() if a != b]

    def contamination(self) -> list[str]:
        """``BASE: the timings of 4 of 16 cells are contaminated (…)`` for each side on
        which the placement audit flagged cells (harness/audit.py)."""
        return [f"{side}: {finding}" for side, finding in self.audit.items()]

    def newly_failed(self) -> pd.DataFrame:
        """Cells ``ok`` in BASE and failed (error, timeout, diverged, oom) in NEW."""
        s = self.status_changes
        return s[(s["status_base"] == OK) & s["status_new"].isin(FAILED)]


def compare_runs(base: Path, new: Path, ignore: Iterable[str] = ()) -> RunComparison:
    """Match the latest attempts of two output folders by ``cell_id`` (without the
    parameters in ``ignore``: :func:`match_keys`); an ``InputError`` when they share no
    cell or ``ignore`` is refused."""
    a, b = load_cells(base), load_cells(new)
    set_aside = {side: OutputFolder(out).damaged() for side, out in (("BASE", base),
                                                                      ("NEW", new))}
    for side, rows, out in (("BASE", a, base), ("NEW", b, new)):
        if rows.empty:  # say why there is nothing to compare, not only that
            lost = (f"; {len(set_aside[side])} unreadable file(s) of it were set aside in "
                    f"{OutputFolder(out).damaged_dir}/" if set_aside[side] else "")
            raise InputError(f"no cell recorded in it ({side}){lost}: nothing to compare",
                             file=str(out))
    result = compare_cells(a, b, base, new, (_cpu_models(base), _cpu_models(new)), ignore)
    result.set_aside = {side: files for side, files in set_aside.items() if files}
    return result


def compare_cells(a: pd.DataFrame, b: pd.DataFrame, base: Path, new: Path,
                  cpu_models: tuple[list[str], list[str]] = ([], []),
                  ignore: Iterable[str] = ()) -> RunComparison:
    """The comparison of two cells tables (latest attempts) of one grid."""
    columns = resolve_ignored(a, b, dict.fromkeys(ignore))  # {column: name shown}
    ignored = tuple(columns.values())
    machines = {col: (_distinct(a, col), _distinct(b, col)) for col in MACHINE}
    machines["CPU model"] = cpu_models
    a, b = _labelled(a), _labelled(b)
    a["match"], b["match"] = match_keys(a, columns), match_keys(b, columns)
    for side, name in ((a, "BASE"), (b, "NEW")):
        refuse_collisions(side, name, columns)
    common = sorted(set(a["match"]) & set(b["match"]))
    if not common:
        raise InputError(f"no cell in common with {new} ({len(a)} and {len(b)} cells"
                         + (f", ignoring {', '.join(ignored)}" if ignored else "")
                         + "): compare two runs of the same grid", file=str(base))
    a, b = a.set_index("match"), b.set_index("match")
    both = a.loc[common].join(b.loc[common], suffixes=("", "_new"))
    both["pair"] = [_pair(x, y) for x, y in zip(both["label"], both["label_new"], strict=True)]
    changed = both[both["status"] != both["status_new"]]
    changes = changed[["cell_id", "title", "pair", "seed", "status", "status_new"]].rename(
        columns={"title": "problem", "pair": "variant", "status": "status_base"}
    ).reset_index(drop=True)
    only_base, only_new = (side.drop(index=common).reset_index()[UNMATCHED].rename(
        columns={"title": "problem", "label": "variant"}) for side in (a, b))
    ok = both[(both["status"] == OK) & (both["status_new"] == OK)].reset_index()
    logs = np.log(ok["train_s_new"].astype(float)) - np.log(ok["train_s"].astype(float))
    per_seed = logs[np.isfinite(logs)].groupby(ok["seed"]).mean()
    found = {side: audit.summary(rows) for side, rows in (("BASE", a), ("NEW", b))}
    return RunComparison(base, new, len(common), _variants(ok, columns), changes, only_base,
                         only_new, machines, per_seed, ignored,
                         {side: text for side, text in found.items() if text})


def _labelled(cells: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with ``title`` (the problem, and its dataset where it has one) and
    ``label`` (the problem instance where the problem's parameters vary, then the
    strategy variant), labelled within their own run."""
    parts = [rows.assign(title=title, label=_instances(rows) + rows["label"])
             for title, _, rows in by_problem(with_labels(cells))]
    return pd.concat(parts) if parts else with_labels(cells).assign(title="")


def _pair(base_label: str, new_label: str) -> str:
    """One label where both runs name a variant alike, else ``BASE → NEW``."""
    return base_label if base_label == new_label else f"{base_label} → {new_label}"


def _distinct(df: pd.DataFrame, col: str) -> list[str]:
    return sorted({str(v) for v in df[col].dropna().unique()}) if col in df else []


def _cpu_models(out: Path) -> list[str]:
    """The CPU models the runs of ``out`` recorded in their manifests."""

    return sorted({str(info["cpu_model"]) for info in OutputFolder(out).manifests()
                   if info.get("cpu_model")})


def _variants(ok: pd.DataFrame, ignored: dict[str, str]) -> list[Variant]:
    quality = [m for m in deterministic_metric_columns()
               if m in ok and pd.api.types.is_numeric_dtype(ok[m]) and ok[m].notna().any()]
    variants = []
    per_iteration = role_columns(PER_ITERATION, ok.columns)  # where a family declares one
    groups = dict(list(ok.groupby(["title", "label", "label_new"], sort=False)))
    for title, label, label_new in sorted(groups, key=lambda k: (
            k[0], label_sort_key(k[1]), label_sort_key(k[2]))):
        g = groups[title, label, label_new]
        per_iter = next((m for m in per_iteration if g[m].notna().any()), None)
        v = Variant(title, _pair(label, label_new), len(g), _ratio(g, "train_s"),
                    _ratio(g, per_iter) if per_iter else None, per_iter,
                    ignored=_ignored_changes(g, ignored))
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


def _ignored_changes(g: pd.DataFrame, ignored: dict[str, str]) -> list[str]:
    """``r: 5 → 10`` for each ignored parameter (``{column: name shown}``) whose values
    differ between the runs in the matched cells ``g``."""
    def values(column: str, shown: str) -> str:
        found = {param_text(v[shown]) for v in (ignored_values(p, ignored) for p in g[column])
                 if shown in v}
        return ", ".join(sort_labels(found)) or "–"

    changes = [(shown, values("params", shown), values("params_new", shown))
               for shown in ignored.values()]
    return [f"{name}: {x} → {y}" for name, x, y in changes if x != y]


def _instances(rows: pd.DataFrame) -> pd.Series:
    """``n_features=16: `` for rows of a problem whose parameters vary, else ``""``: a
    variant is one problem instance and one strategy variant, never a pool of both."""
    varying = [c for c in rows if is_parameter(c, PROBLEM) and rows[c].astype(str).nunique() > 1]
    if not varying:
        return pd.Series("", index=rows.index)
    names = {c: shown_name(c, rows) for c in varying}  # p_lr where the strategy has an lr

    def text(v: Any) -> str:
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

    return rows[varying].apply(
        lambda r: ",".join(f"{names[c]}={text(r[c])}" for c in varying) + ": ", axis=1)


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
    written = list(OutputFolder(out).documents("compare"))
    for path, text in zip(written, (to_markdown(doc, out), to_html(doc)), strict=True):
        atomic.write_text(path, text)
    return [*written, *([figure.path] if figure else [])]


def verdict_lines(result: RunComparison, pct: float | None) -> list[str]:
    """What the command prints besides the files: the summary (cells matched and not,
    variants slower, faster and equal, quality), a warning per way the machines differ,
    the untestable variants, with ``pct`` every regression and newly failed cell, and why
    it exits as it does."""
    lines = _summary_lines(result)
    lines += [f"warning: BASE and NEW ran on different machines ({d}): a time ratio then "
              f"measures the machines as much as the code" for d in result.machine_differences()]
    lines += [f"warning: placement audit, {c}: their time ratios measure the contention "
              f"as much as the code" for c in result.contamination()]
    lines += [f"warning: {side}: {len(files)} unreadable file(s) set aside in "
              f"{files[0].parent}/: the cells they held are missing from this comparison"
              for side, files in result.set_aside.items()]
    untestable = result.untestable()
    if untestable:
        lines.append(f"untestable: {len(untestable)} variant(s) with fewer than two cells ok "
                     f"in both runs: " + _listed([f"{v.problem} {v.label}"
                                                  for v in untestable]))
    if pct is None:
        return [*lines, "exit 0: without --fail-on-regression PCT neither the times nor the "
                        "statuses decide the exit"]
    regressions, newly_failed = result.regressions(pct), result.newly_failed()
    for v in regressions:
        lines.append(f"regression: {v}: training time ×{_text(result.overall)}" if
                     isinstance(v, str) else
                     f"regression: {v.problem} {v.label}: training time ×{v.train.text()}")
    for row in newly_failed.itertuples():
        lines.append(f"failed: {row.cell_id} {row.problem} {row.variant} seed {row.seed}: "
                     f"{row.status_base} → {row.status_new}")
    decided = (f"slower than 1 + {pct:g}% by Holm's procedure at {FAMILY_ERROR:.0%} across "
               f"the testable variants and the whole run")
    if regressions or len(newly_failed):
        return [*lines, f"exit 1: {len(regressions)} regression(s) {decided}, "
                        f"{len(newly_failed)} cell(s) ok in BASE failed in NEW"]
    return [*lines, f"exit 0: nothing {decided}, no cell ok in BASE failed in NEW"]


def _summary_lines(result: RunComparison) -> list[str]:
    """The terminal's summary: the cells matched (and what an ignore paired) and not, the
    whole run's time ratio, the variants slower, faster and equal, the quality metrics."""
    lines = [f"{result.common} cells in common ({result.matching()}), "
             f"{len(result.only_base)} in BASE only, {len(result.only_new)} in NEW only, "
             f"{len(result.status_changes)} with another status"]
    lines += [f"paired: {v.problem} {v.label}: {'; '.join(v.ignored)}"
              for v in result.variants if v.ignored]
    for name, frame in (("BASE", result.only_base), ("NEW", result.only_new)):
        if len(frame):
            counts = frame.groupby(["problem", "variant"]).size()
            lines.append(f"only in {name}: " + _listed(
                [f"{problem} {variant} ({n})" for (problem, variant), n in counts.items()]))
    if len(result.only_base) and len(result.only_new) and not result.ignored:
        lines.append("hint: --match-ignore NAME pairs cells whose parameter NAME changed")
    lines.append(f"training time NEW ÷ BASE, the whole run: {_text(result.overall)}")
    for word, meaning in (("slower", "the whole 95% interval above 1"),
                          ("faster", "the whole 95% interval below 1"),
                          ("equal", "the 95% interval includes 1")):
        found = [v for v in result.variants if _direction(v.train) == word]
        lines.append(f"{word}: {len(found)} variant(s), {meaning}" + (": " + _listed(
            [f"{v.problem} {v.label} ×{v.train.text(accounting=False)}" for v in found])
            if found else ""))
    differ = sum(len(v.differences) for v in result.variants)
    lines.append(f"quality: {sum(len(v.equal) for v in result.variants)} (variant, metric) "
                 f"pairs exactly equal, {differ} differ" + (f" (see {_MD})" if differ
                                                              else ""))
    return lines


def _direction(est: Estimate | None) -> str | None:
    """``slower``, ``faster`` or ``equal`` by a ratio's 95% interval; None without one."""
    if est is None or not est.has_interval:
        return None
    return "slower" if est.low > 1 else "faster" if est.high < 1 else "equal"


def _listed(items: list[str]) -> str:
    """The first :data:`SHOWN` items joined by ``; ``, ``…`` for the rest."""
    return "; ".join(items[:SHOWN]) + (f"; … ({len(items) - SHOWN} more)"
                                       if len(items) > SHOWN else "")


def failed(result: RunComparison, pct: float) -> bool:
    """Whether ``--fail-on-regression pct`` fails: a regression or a cell ok in BASE that
    failed in NEW."""
    return bool(result.regressions(pct)) or len(result.newly_failed()) > 0


def _summary(result: RunComparison, fail_pct: float | None) -> list[Any]:
    blocks: list[Any] = [Heading("Timing: NEW ÷ BASE"), Paragraph(
        f"BASE `{result.base}`, NEW `{result.new}`: {result.common} cells in common "
        f"({result.matching()}), {len(result.only_base)} "
        f"in BASE only, {len(result.only_new)} in NEW only, {len(result.status_changes)} "
        f"with another status. Ratios are geometric means over the cells ok in both with a "
        f"95% t interval on the log-ratios; above 1 means NEW is slower. The whole run: "
        f"{_text(result.overall)} (one value per seed: the mean log ratio of its cells).")]
    for d in result.machine_differences():
        blocks.append(Paragraph(f"**Warning: the runs ran on different machines** ({d}): a "
                                f"time ratio then measures the machines as much as the code."))
    for c in result.contamination():
        blocks.append(Paragraph(f"**Warning: placement audit**, {c} (docs/slurm.md): their "
                                f"time ratios measure the contention as much as the code."))
    slower = set()
    if fail_pct is not None:
        found = result.regressions(fail_pct)
        slower = {id(v) for v in found}
        if "the whole run" in found:
            blocks.append(Paragraph(f"**The whole run is slower** than 1 + {fail_pct:g}%: "
                                    f"{_text(result.overall)}."))
    untestable = {id(v) for v in result.untestable()}
    ignored = ["; ".join(v.ignored) or "same" for v in result.variants]
    rows = [[v.problem, v.label, *([shown] if result.ignored else []), v.cells, _text(v.train),
             f"{v.per_iteration_metric}: {_text(v.per_iteration)}" if v.per_iteration else "–",
             "slower" if id(v) in slower else "untestable" if id(v) in untestable else ""]
            for v, shown in zip(result.variants, ignored, strict=True)]
    blocks.append(Table(["problem", "variant",
                         *(["ignored: BASE → NEW"] if result.ignored else []), "cells",
                         "training time NEW ÷ BASE", "per iteration NEW ÷ BASE", "regression"],
                        rows, caption="Per problem instance and strategy variant." + (
                            f" Regression: the time ratio above 1 + {fail_pct:g}% by a "
                            f"one-sided t test, Holm's procedure at {FAMILY_ERROR:.0%} across "
                            f"every testable variant and the whole run; untestable: fewer "
                            f"than two cells ok in both runs." if fail_pct is not None else "")))
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
        blocks.append(Table(["cell_id", "problem", "variant", "seed", "BASE", "NEW"],
                            s.values.tolist(), caption="Cells whose status changed."))
    for name, frame in (("BASE", result.only_base), ("NEW", result.only_new)):
        if len(frame):
            blocks.append(Table(["cell_id", "problem", "variant", "seed", "status"],
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
    figures = OutputFolder(out).figures_dir
    figures.mkdir(exist_ok=True)
    path = figures / "compare-ratios.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Figure(path, "Training time NEW ÷ BASE per variant with its 95% interval; red: "
                        "the whole interval above 1.")

