"""How the cells of an output folder stand: the Parquet results merged with the runs in
progress and, for submitted grids, the Slurm queue.

Each grid cell gets one state: its latest recorded status (``ok``, ``error``, …,
``preempted``) or, while not finished, ``running`` (listed in a live run's in-flight
file), ``pending`` (its Slurm job or array task is queued or running but
has not reached it), or ``not run``. The scheduler is asked once per call, about every job
of the folder together (see :mod:`harness.slurm.scheduler`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .cell import Cell, cells_from_json
from .errors import InputError
from .folder import OutputFolder, read_json
from .location import JOB_COLUMN
from .looks import LookPlan
from .result import OK, PREEMPTED, SKIPPED
from .shard import Shard, shard_of
from .slurm import scheduler
from .slurm.jobs import Job, load_jobs
from .store import Store

RUNNING, PENDING, NOT_RUN = "running", "pending", "not run"


@dataclass(frozen=True)
class CellState:
    """One grid cell's state; ``job``: the Slurm job or array task running it or queued to
    (None when recorded: the row's ``slurm_job_id`` says which job ran it)."""

    cell: Cell
    state: str
    job: str | None = None


@dataclass
class FolderStatus:
    """The state of every cell, and of every Slurm job, of one output folder."""

    cells: list[CellState]  # grid order
    recorded: int  # cells with a row
    jobs: list[tuple[Job, str]] = field(default_factory=list)  # (job, summary of its state)
    note: str | None = None  # why the scheduler's view is missing, if it is
    interrupted: list[tuple[str, int]] = field(default_factory=list)  # (run, cells in flight)

    @property
    def counts(self) -> Counter:
        return Counter(c.state for c in self.cells)


def _grid_cells(folder: OutputFolder) -> list[Cell] | None:
    """The folder's grid as cells: its expansion when it is current, else the grid
    expanded here (which imports the plug-ins: seconds)."""
    grid_file = folder.grid_file
    try:
        grid_text = grid_file.read_text()
    except OSError:
        return None
    try:
        cells = cells_from_json(folder.cells_file.read_text(), grid_text)
    except OSError:
        cells = None
    if cells is not None:
        return cells
    from .grid import parse_grid

    try:
        return parse_grid(grid_text, str(grid_file), check_inputs=False).cells
    except InputError:
        return None


def _live_runs(folder: OutputFolder, queue: dict[str, str]
               ) -> tuple[dict[str, str | None], list[tuple[str, int]]]:
    """Cells listed as in flight by runs that are still alive (→ their Slurm job, if any),
    and the runs that were interrupted (run id, cells they had in flight):
    under Slurm, the latest run of each job and shard whose job is running (a requeued
    task's killed run left its list behind); otherwise, runs with no end time whose driver
    still holds the folder's (or its shard's) lock — a run killed with ``kill -9`` holds
    none, so its cells read as not run."""
    latest: dict[tuple[str, str | None], str] = {}  # (job, shard) → its newest run
    manifests = {}
    for run_id in folder.run_ids():
        info = read_json(folder.manifest(run_id))
        if isinstance(info, dict):
            manifests[run_id] = info
            if info.get(JOB_COLUMN):
                latest[(info[JOB_COLUMN], info.get("shard"))] = run_id
    cells: dict[str, str | None] = {}
    interrupted: list[tuple[str, int]] = []
    for run_id, info in manifests.items():
        listed = folder.inflight_cells(run_id)
        if listed is None:
            continue  # the run ended (or ended while we looked)
        job = info.get(JOB_COLUMN)
        alive = (scheduler.ACTIVE.get(queue.get(job, "")) == RUNNING
                 and latest[(job, info.get("shard"))] == run_id if job
                 else "finished_at" not in info and _holds_lock(folder, info))
        if alive:
            cells.update(dict.fromkeys(listed, job))
        elif "finished_at" not in info:  # killed: the next run of the folder tidies it
            interrupted.append((run_id, len(listed)))
    return cells, interrupted


def _holds_lock(folder: OutputFolder, info: dict) -> bool:
    """Whether the run of manifest ``info`` still holds its lock (older manifests, which
    do not name their driver: whether anyone does)."""
    try:
        shard = Shard.parse(info["shard"]) if info.get("shard") else None
    except InputError:
        return False  # not a manifest this version wrote: its run is long gone
    holder = Store(folder.root).lock_holder(shard)
    return holder is not None and holder == info.get("driver", holder)


def _queued_task(block: int, jobs: list[Job], queue: dict[str, str]) -> str | None:
    """The newest job or array task owning the cells of ``block`` that is still queued
    (or running but not at that cell yet)."""
    for job in reversed(jobs):
        task = job.task_id(shard_of(block, job.shards))
        if task in queue:
            return task
    return None


TASK_DONE, TASK_ENDED = "done", "ended"


def task_states(job: Job, cells: list[Cell], done: set[str], queue: dict[str, str],
                finals: dict[str, str]) -> dict[str, str]:
    """Each task of ``job`` (its queue key) → ``pending``, ``running``, ``done`` (every cell
    it owns has a final row: a task still in the queue is then only exiting) or ``ended``
    (it left the queue with cells it owns unrecorded; its final Slurm state when known).
    Judged from the same rows and queue as the cells' states, so the two always agree."""
    owned: dict[str, list[str]] = {}
    for cell in cells:
        owned.setdefault(job.task_id(shard_of(cell.block, job.shards)), []).append(cell.cell_id)
    states = {}
    for task, ids in owned.items():
        if all(i in done for i in ids):
            states[task] = TASK_DONE
        elif task in queue:
            states[task] = scheduler.ACTIVE.get(queue[task], queue[task].lower())
        else:
            final = finals.get(task)
            states[task] = f"{TASK_ENDED} ({final})" if final else TASK_ENDED
    return states


def _task_summary(job: Job, cells: list[Cell], done: set[str], queue: dict[str, str],
                  finals: dict[str, str]) -> str:
    counts = Counter(task_states(job, cells, done, queue, finals).values())
    states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no cells"
    return f"{sum(counts.values())} task(s) with cells: {states}"


def folder_status(out: Path) -> FolderStatus:
    """Merge the results, the runs in progress and the Slurm queue of ``out``."""
    folder = OutputFolder(out)
    latest = Store(out).latest_status()
    cells = _grid_cells(folder)
    if cells is None:  # no grid copy: only what is recorded
        rows = Store(out).cells()
        return FolderStatus(cells=[], recorded=len(rows))
    jobs = load_jobs(out)
    queue: dict[str, str] = {}
    finals: dict[str, str] = {}
    note = None
    if jobs:
        ids = [j.job_id for j in jobs]
        try:
            queue = scheduler.queue_states(ids, cache=folder.queue_cache)
        except InputError as err:  # e.g. the folder was copied off the cluster
            note = f"the Slurm queue could not be read ({err}); showing the results only"
        queued_jobs = {k.split("_")[0] for k in queue}
        finals = scheduler.final_states([i for i in ids if i not in queued_jobs])
    inflight, interrupted = _live_runs(folder, queue)
    states = []
    for cell in cells:
        recorded = latest.get(cell.cell_id, (None, 0))[0]
        if recorded != OK and cell.cell_id in inflight:
            states.append(CellState(cell, RUNNING, inflight[cell.cell_id]))
        elif recorded in (None, PREEMPTED, SKIPPED) and (
                task := _queued_task(cell.block, jobs, queue)):
            states.append(CellState(cell, PENDING, task))
        else:
            states.append(CellState(cell, recorded or NOT_RUN))
    done = {c.cell.cell_id for c in states if c.state not in (RUNNING, PENDING, NOT_RUN,
                                                              PREEMPTED, SKIPPED)}
    summaries = [(job, _task_summary(job, cells, done, queue, finals)) for job in jobs]
    return FolderStatus(cells=states, recorded=sum(1 for c in cells if c.cell_id in latest),
                        jobs=summaries, note=note, interrupted=interrupted)


def claim_lines(plan: LookPlan) -> list[str]:
    """Where the claims of a run until conclusive stand: one line for the plan, then one
    per claim (still open first), with its seeds, verdict, why it stopped and its cost."""
    from .progress import fmt_duration

    claims = sorted(plan.claims.values(), key=lambda c: (bool(c.stopped), c.label))
    stops = Counter(c.stopped or "open" for c in claims)
    told = ", ".join(f"{n} {s}" for s, n in sorted(stops.items()))
    lines = [f"until conclusive: {len(claims)} claims ({told}); {len(plan.bought)} cells "
             f"bought beyond the grid's seeds in {plan.rounds} look(s); "
             f"{fmt_duration(plan.spent_s)} of run time. {plan.describe()}"]
    for c in claims:
        lines.append(f"  {c.stopped or 'open':<10} {c.outcome or '-':<17} {len(c.seeds):>3} "
                     f"seeds {c.cpu_hours:8.4f} CPU-h  {c.label}")
    return lines
