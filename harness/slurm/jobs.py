"""The record of a grid's Slurm jobs: ``DIR/slurm/jobs.json``, one entry per submission.

``harness status`` and ``harness cancel`` read it; each entry says which job ids belong to
the folder, the mode, and (array) how many shards, so that every cell maps to one task.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import atomic


@dataclass(frozen=True)
class Job:
    """One submission."""

    job_id: str
    mode: str
    shards: int  # array tasks (1 for ray and mpi)
    script: str  # path of the rendered script, relative to DIR
    submitted_at: str

    def task_id(self, shard: int) -> str:
        """The queue key of the task that runs ``shard`` (``JOBID_K`` for arrays)."""
        return f"{self.job_id}_{shard}" if self.mode == "array" else self.job_id


def jobs_file(out: Path) -> Path:
    return out / "slurm" / "jobs.json"


def load_jobs(out: Path) -> list[Job]:
    """Every submission recorded for ``out``, oldest first ([] if none)."""
    path = jobs_file(out)
    if not path.exists():
        return []
    return [Job(**entry) for entry in json.loads(path.read_text())]


def record_job(out: Path, job: Job) -> None:
    """Append ``job`` to the record (atomically)."""
    path = jobs_file(out)
    entries = [asdict(j) for j in load_jobs(out)] + [asdict(job)]
    atomic.write_text(path, json.dumps(entries, indent=2))
