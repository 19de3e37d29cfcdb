"""``harness submit``: render a grid's sbatch script into ``DIR/slurm/``, submit it, return.

Submission never waits for the job (``sbatch --parsable`` returns as soon as the controller
has queued it): the caller gets the job id and follows the grid with ``harness status``.
Before anything is written the grid and every flag are validated (bad input → exit 2);
a grid with nothing left to run is not submitted.
"""

from __future__ import annotations

import math
import shutil
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from .. import atomic
from ..cell import Cell
from ..cost import CostModel, history_folders
from ..errors import InputError
from ..estimate import Budget, Estimate
from ..grid import load_grid
from ..progress import fmt_duration
from ..shard import Shard
from ..store import Store
from .directives import Request
from .jobs import Job, load_jobs, record_job
from .scheduler import sbatch
from .scripts import ScriptInputs, render

STARTUP_S = 120  # a sized time limit's room for the job's start: imports, Ray, the merge


@dataclass
class Submission:
    """What ``submit_grid`` did."""

    script: Path
    cells: int
    to_run: int
    job_id: str | None  # None for a dry run or when nothing was left to run
    cost: Estimate | None = None  # the predicted cost of the cells to run, when asked
    timing: str | None = None  # how --time was sized from it, or why it was not


def executable(name: str) -> str:
    """``name`` from this interpreter's bin folder (the venv's), else ``name`` on PATH."""
    candidate = Path(sys.executable).absolute().with_name(name)
    return str(candidate) if candidate.exists() else name


def sized_for(req: Request, cells: list[Cell], cost: Estimate | None = None
              ) -> tuple[Request, str | None]:
    """``req`` with what the user left out (None) sized, and a line saying how its time
    was sized (None when it was not). ``--cpus-per-task`` and ``--gpus-per-node`` are
    taken from the largest of ``cells``: an array task, a Ray node or an MPI rank then
    holds any one cell (placement runs as many at once as fit). ``--time`` is taken from
    ``cost``, the estimate of the cells to run, when it predicts every one of them from
    history (:func:`time_limit`)."""
    cpus = req.cpus_per_task or max((c.resources.cpus for c in cells), default=1)
    gpus = req.gpus_per_node
    if gpus is None:
        gpus = max((math.ceil(c.resources.gpus) for c in cells), default=0)
    req = replace(req, cpus_per_task=cpus, gpus_per_node=gpus)
    if req.time is not None or cost is None or not cost.cells:
        return req, None
    if cost.unseen:
        return req, (f"--time not sized: {len(cost.unseen)} cell(s) have no history (give "
                     f"--history or --time); the partition's default limit applies")
    job_s = job_wall_s(req, cost)
    limit_s = job_s * cost.safety + STARTUP_S + req.warn_s
    minutes = math.ceil(limit_s / 60)
    req = replace(req, time=f"{minutes // 60}:{minutes % 60:02d}:00")
    per = "array task" if req.mode == "array" else "job"
    return req, (f"--time {req.time}: the predicted {fmt_duration(job_s)} of the longest "
                 f"{per} × {cost.safety:.2f} (the model's error squared, at least 1.5) + "
                 f"{STARTUP_S} s start-up + --warn {req.warn_s} s")


def job_wall_s(req: Request, cost: Estimate) -> float:
    """The predicted seconds of the longest job ``req`` runs the estimated cells in: an
    array task runs its shard on its cores, a Ray cluster every cell on all its cores, the
    MPI ranks but rank 0 one cell at a time each."""
    if req.mode == "array":
        return max(cost.wall_s(req.cpus_per_task, Shard(k, req.shards).select(cost.cells))
                   for k in range(req.shards))
    if req.mode == "ray":
        return cost.wall_s(req.nodes * req.cpus_per_task)
    return cost.wall_s(max(1, req.nodes * req.ranks_per_node - 1), one_per_slot=True)


def until_conclusive_flags(req: Request, budget: Budget | None, max_seeds: int, batch: int
                           ) -> tuple[Request, tuple[str, ...]]:
    """The driver's flags of a run until conclusive, one job that loops: the claims are
    judged on every cell, so it needs one driver (``--mode ray`` or ``mpi``, not an array
    of shards), and a time limit that holds the whole loop (``--time``, or sized from a
    run-time ``--budget``)."""
    if req.mode == "array":
        raise InputError("--until-conclusive needs one driver that judges every claim "
                         "between batches: use --mode ray (or mpi), not array shards",
                         file="harness submit")
    if req.time is None:
        if budget is None or budget.unit != "wall":
            raise InputError("--until-conclusive needs --time, or a run-time --budget (30m, "
                             "2h) to size it from: the job loops until its claims are "
                             "settled", file="harness submit")
        minutes = math.ceil((budget.amount + STARTUP_S + req.warn_s) / 60)
        req = replace(req, time=f"{minutes // 60}:{minutes % 60:02d}:00")
    flags = ["--until-conclusive", "--max-seeds", str(max_seeds), "--batch", str(batch)]
    if budget is not None:
        flags += ["--budget", budget.text]
    return req, tuple(flags)


def submit_grid(grid_file: str, out: str, req: Request, *, setup: tuple[str, ...] = (),
                dry_run: bool = False, max_cost: Budget | None = None,
                history: tuple[str, ...] = (), run_flags: tuple[str, ...] = ()
                ) -> Submission:
    """Validate, render ``DIR/slurm/<mode>-<n>.sbatch`` and (unless ``dry_run``) sbatch it.
    The cost of the cells to run is predicted from ``out`` and the ``history`` folders
    when ``max_cost`` is given (a submission above it is refused) or ``req`` has no time
    (it is sized from the prediction). ``run_flags``: more flags of the driver's ``harness
    run`` (a run until conclusive, :func:`until_conclusive_flags`)."""
    from ..driver import plan_run, write_grid_copy

    grid = load_grid(grid_file)
    out_dir = Path(out).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a folder", file=str(out_dir))
    for line in setup:
        if "\n" in line:
            raise InputError(f"--setup {line!r} is not allowed; allowed: one shell command "
                             "per --setup (give the flag again for more)",
                             file="harness submit")
    if not dry_run and shutil.which("sbatch") is None:
        raise InputError("sbatch is not on PATH: no Slurm client here (--dry-run writes the "
                         "script without submitting)", file="harness submit")
    folders = history_folders(history)
    store = Store(out_dir)
    plan = plan_run(grid.cells, store)
    cost = None
    if max_cost is not None or req.time is None:
        cost = Estimate.of(plan.to_run, CostModel.from_folders([out_dir, *folders]))
    if max_cost is not None:
        max_cost.check(cost)
    shards = min(req.shards, len(grid.cells)) if req.mode == "array" else 1
    req, timing = sized_for(replace(req, shards=shards), plan.to_run or grid.cells, cost)
    number = len(load_jobs(out_dir)) + 1
    # the job runs a snapshot of the grid, so editing the grid file after submitting
    # changes neither what a requeued task runs nor which shard owns which cell
    snapshot = store.folder.grid_snapshot(number)
    inputs = ScriptInputs(grid_name=grid.name, grid_file=snapshot, out=out_dir,
                          cells=len(grid.cells), harness=executable("harness"),
                          ray=executable("ray"), setup=setup, run_flags=run_flags)
    text = render(req, inputs)
    store.create()
    store.folder.job_logs_dir.mkdir(parents=True, exist_ok=True)
    write_grid_copy(store.folder, grid)
    atomic.write_text(snapshot, grid.text)
    script = store.folder.job_script(req.mode, number)
    script.write_text(text)
    script.chmod(0o755)
    if dry_run or (not plan.to_run and not run_flags):  # a loop may still buy seeds
        return Submission(script, len(grid.cells), len(plan.to_run), None, cost, timing)
    job_id = sbatch(script)
    record_job(out_dir, Job(job_id=job_id, mode=req.mode, shards=shards,
                            script=str(script.relative_to(out_dir)),
                            submitted_at=datetime.now(UTC).isoformat()))
    return Submission(script, len(grid.cells), len(plan.to_run), job_id, cost, timing)
