"""The outcome of one cell attempt, as it travels from a worker back to the driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

OK = "ok"
ERROR = "error"
TIMEOUT = "timeout"
DIVERGED = "diverged"
OOM = "oom"
PREEMPTED = "preempted"
SKIPPED = "skipped"

STATUSES = {
    OK: "finished; metrics are valid",
    ERROR: "raised an exception (type and message in `error`, traceback tail in `traceback`)",
    TIMEOUT: "ran past its timeout_s and was killed",
    DIVERGED: "finished, but a metric is NaN or infinite (or the strategy reported divergence)",
    OOM: "ran out of memory (MemoryError, CUDA OOM, or killed by the kernel's OOM killer)",
    PREEMPTED: "stopped from outside before finishing (Ctrl-C, SIGTERM: preemption, time limit, "
               "scancel); rerun by default",
    SKIPPED: "not run: a requirement (e.g. CUDA) is missing where it was placed; rerun by default",
}
FAILED = frozenset({ERROR, TIMEOUT, DIVERGED, OOM})  # rerun only with --retry-failed


@dataclass
class CellResult:
    """Everything a worker measured for one cell attempt (see docs/results.md)."""

    cell_id: str
    status: str
    error: str | None = None
    traceback: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    wall_s: float | None = None
    setup_s: float | None = None
    train_s: float | None = None
    eval_s: float | None = None
    peak_rss_mb: float | None = None
    gpu_peak_mb: float | None = None
    device: str | None = None
    n_gpus: int = 0
    gpu_name: str | None = None
    host: str | None = None
    node: str | None = None  # Slurm node name under Slurm, else the host name
    scheduler: str | None = None  # "slurm" under Slurm
    slurm_job_id: str | None = None
    slurm_array_task: int | None = None
    worker: str | None = None
    backend: str | None = None
    rank: int | None = None  # MPI rank that ran the cell
    cores: str | None = None  # the cores its process could run on, e.g. "0,1"
    gpu_ids: str | None = None  # the GPUs it could see (CUDA_VISIBLE_DEVICES)
    placement: str | None = None  # "pinned" to cores it owns, or "unenforced"
    placement_note: str | None = None  # why placement was not enforced
    cpu_s: float | None = None  # CPU time its process got while it ran
    cpu_wait_s: float | None = None  # time its threads waited for a CPU (run-queue delay)
    python: str | None = None
    torch: str | None = None
    cuda: str | None = None
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    # long-format history: (step, epoch, wall_s, split, metric, value)
    history: list[tuple[int, int | None, float, str, str, float]] = field(default_factory=list)
