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
from ..errors import InputError
from ..grid import load_grid
from ..store import Store
from .directives import Request
from .jobs import Job, load_jobs, record_job
from .scheduler import sbatch
from .scripts import ScriptInputs, render


@dataclass
class Submission:
    """What ``submit_grid`` did."""

    script: Path
    cells: int
    to_run: int
    job_id: str | None  # None for a dry run or when nothing was left to run


def executable(name: str) -> str:
    """``name`` from this interpreter's bin folder (the venv's), else ``name`` on PATH."""
    candidate = Path(sys.executable).absolute().with_name(name)
    return str(candidate) if candidate.exists() else name


def sized_for(req: Request, cells: list[Cell]) -> Request:
    """``req`` with the ``--cpus-per-task`` and ``--gpus-per-node`` the user left out
    (None) taken from the largest of ``cells``: an array task, a Ray node or an MPI rank
    then holds any one cell (placement runs as many at once as fit)."""
    cpus = req.cpus_per_task or max((c.resources.cpus for c in cells), default=1)
    gpus = req.gpus_per_node
    if gpus is None:
        gpus = max((math.ceil(c.resources.gpus) for c in cells), default=0)
    return replace(req, cpus_per_task=cpus, gpus_per_node=gpus)


def submit_grid(grid_file: str, out: str, req: Request, *, setup: tuple[str, ...] = (),
                dry_run: bool = False) -> Submission:
    """Validate, render ``DIR/slurm/<mode>-<n>.sbatch`` and (unless ``dry_run``) sbatch it."""
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
    store = Store(out_dir)
    plan = plan_run(grid.cells, store)
    shards = min(req.shards, len(grid.cells)) if req.mode == "array" else 1
    req = sized_for(replace(req, shards=shards), plan.to_run or grid.cells)
    number = len(load_jobs(out_dir)) + 1
    # the job runs a snapshot of the grid, so editing the grid file after submitting
    # changes neither what a requeued task runs nor which shard owns which cell
    snapshot = store.folder.grid_snapshot(number)
    inputs = ScriptInputs(grid_name=grid.name, grid_file=snapshot, out=out_dir,
                          cells=len(grid.cells), harness=executable("harness"),
                          ray=executable("ray"), setup=setup)
    text = render(req, inputs)
    store.create()
    store.folder.job_logs_dir.mkdir(parents=True, exist_ok=True)
    write_grid_copy(store.folder, grid)
    atomic.write_text(snapshot, grid.text)
    script = store.folder.job_script(req.mode, number)
    script.write_text(text)
    script.chmod(0o755)
    if dry_run or not plan.to_run:
        return Submission(script, len(grid.cells), len(plan.to_run), None)
    job_id = sbatch(script)
    record_job(out_dir, Job(job_id=job_id, mode=req.mode, shards=shards,
                            script=str(script.relative_to(out_dir)),
                            submitted_at=datetime.now(UTC).isoformat()))
    return Submission(script, len(grid.cells), len(plan.to_run), job_id)
