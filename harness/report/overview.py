"""The family-independent parts of a report: status and cost overview, failures, and the
provenance of every run that wrote into the folder."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from ..audit import audit_lines
from ..folder import OutputFolder
from ..progress import fmt_duration
from .document import Heading, Paragraph, Table
from .labels import with_labels

if TYPE_CHECKING:
    from . import ReportContext


def _until_conclusive(plan: Any) -> str:
    """How a folder run until conclusive was judged, and what it bought."""
    stops = Counter(c.stopped or "still open" for c in plan.claims.values())
    told = ", ".join(f"{n} {s}" for s, n in sorted(stops.items()))
    return (f"This folder was run until conclusive ({plan.describe()}). After the grid's own "
            f"seeds, every claim still inconclusive got seeds for the cells it is judged on, "
            f"a batch at a time; {len(plan.bought)} cells were bought in {plan.rounds} "
            f"look(s), {fmt_duration(plan.spent_s)} of run time in all. Where each claim "
            f"stopped: {told}. Each verdict is read at the level of the look its seeds "
            f"reached (its interval is the repeated 95% confidence interval, which covers "
            f"the truth at every look at once), so looking again and stopping when a "
            f"verdict is reached keeps each wrong verdict at most 2.5% (docs/verdicts.md). A "
            f"claim that stopped is judged on the seeds it stopped at.")


def overview_blocks(ctx: ReportContext) -> list[Any]:
    df = ctx.cells
    blocks: list[Any] = [Heading("Overview")]
    damaged = OutputFolder(ctx.out).damaged()
    if damaged:  # set aside by a reader; their rows are not in this report
        blocks.append(Paragraph(
            f"{len(damaged)} file(s) of this folder could not be read and were set aside in "
            f"`{damaged[0].parent.name}/` ({', '.join(p.name for p in damaged)}): what they "
            "held is not in this report — cells (which read not run, and `harness run` "
            "reruns) or their per-step history. Put an intact copy back to restore it."))
    if df.empty:
        return [*blocks, Paragraph("No cells recorded yet.")]
    if ctx.looks is not None:
        blocks.append(Paragraph(_until_conclusive(ctx.looks)))
    counts = df["status"].value_counts()
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    span = (df["finished_at"].max() - df["started_at"].min()).total_seconds()
    blocks.append(Paragraph(
        f"{len(df)} cells ({status}); {df['cpu_hours'].sum():.3f} CPU-hours and "
        f"{df['gpu_hours'].sum():.3f} GPU-hours of cell time; first start to last finish "
        f"{span / 60:.1f} min. Times are medians over the cells of each row; training time "
        f"excludes evaluation."))
    for line in audit_lines(df):  # what the placement audit found (docs/slurm.md)
        blocks.append(Paragraph(line + (" Their timings are left out of timing verdicts."
                                        if line.startswith("The timings") else "")))
    rows = []
    for (fam, prob, strat), g in df.groupby(["family", "problem", "strategy"], sort=True):
        ok = g[g["status"] == "ok"]
        rows.append([fam, prob, strat, len(g), len(ok), len(g) - len(ok),
                     ok["train_s"].median(), ok["eval_s"].median(),
                     g["peak_rss_mb"].median(), g["cpu_hours"].sum()])
    blocks.append(Table(
        ["family", "problem", "strategy", "cells", "ok", "not ok", "train s", "eval s",
         "peak RSS MiB", "CPU-hours"], rows, caption="Cells, status and cost per strategy.",
        name="cost"))
    bad = with_labels(df[df["status"] != "ok"])
    if len(bad):
        blocks.append(Heading("Cells that did not finish ok", 3))
        blocks.append(Table(
            ["cell_id", "problem", "variant", "seed", "status", "error"],
            [[r.cell_id, r.problem, r.label, r.seed, r.status, (r.error or "")[:160]]
             for r in bad.itertuples()],
            caption="Rerun them with `harness run GRID --out DIR --retry-failed`."))
    return blocks


def _job_text(run: dict[str, Any]) -> str:
    """The scheduler job of a run as its manifest records it: "slurm 123_4", or "–"."""
    job = run.get("slurm_job_id")
    return f"{run.get('scheduler') or 'slurm'} {job}" if job else "–"


def provenance_blocks(ctx: ReportContext) -> list[Any]:
    blocks: list[Any] = [Heading("Provenance")]
    folder = OutputFolder(ctx.out)
    runs = folder.manifests()
    unreadable = len(folder.run_ids()) - len(runs)
    if unreadable:  # cut short by a crash or a copy: say so rather than drop a run quietly
        blocks.append(Paragraph(f"{unreadable} run manifest(s) in `{folder.runs_dir.name}/` "
                                "could not be read and are left out of this table."))
    if runs:
        rows = [[r.get("run_id"), r.get("started_at", "")[:19], r.get("backend"),
                 _job_text(r), r.get("cells_finished", "–"), r.get("host"),
                 (r.get("git_sha") or "–")[:10] + (" (dirty)" if r.get("git_dirty") else ""),
                 r.get("harness_version")] for r in runs]
        blocks.append(Table(["run", "started (UTC)", "backend", "job", "cells run",
                             "driver host",
                             "git", "harness"], rows, caption="Runs that wrote this folder."))
        packages = runs[-1].get("packages") or {}
        if packages:
            blocks.append(Paragraph("Driver packages (latest run): " + ", ".join(
                f"{k} {v}" for k, v in packages.items() if v) + "."))
    df = ctx.cells
    if not df.empty:
        def distinct(col: str) -> str:
            vals = sorted({str(v) for v in df[col].dropna().unique()})
            return ", ".join(vals) if vals else "–"

        blocks.append(Paragraph(
            f"Workers: hosts {distinct('host')}; devices {distinct('device')}; GPUs "
            f"{distinct('gpu_name')}; Python {distinct('python')}; torch {distinct('torch')}; "
            f"CUDA {distinct('cuda')}; backends {distinct('backend')}."))
    return blocks

