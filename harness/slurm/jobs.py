"""The record of a grid's Slurm jobs (``OutputFolder.jobs_file``), one entry per submission.

``harness status`` and ``harness cancel`` read it; each entry says which job ids belong to
the folder, the mode, and (array) how many shards, so that every cell maps to one task.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import atomic
from ..errors import DataError
from ..folder import OutputFolder


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


def load_jobs(out: Path) -> list[Job]:
    """Every submission recorded for ``out``, oldest first ([] if none)."""
    path = OutputFolder(out).jobs_file
    if not path.exists():
        return []
    try:
        return [Job(**entry) for entry in json.loads(path.read_text())]
    except ValueError as err:  # written atomically: edited by hand or damaged
        why = f"not JSON: {err}"
    except TypeError:
        why = f"each entry needs exactly {', '.join(Job.__dataclass_fields__)}"
    raise DataError(f"not a record of Slurm jobs ({why}); restore it, or move it away to "
                    "forget the folder's jobs", file=str(path))


def record_job(out: Path, job: Job) -> None:
    """Append ``job`` to the record (atomically)."""
    path = OutputFolder(out).jobs_file
    entries = [asdict(j) for j in load_jobs(out)] + [asdict(job)]
    atomic.write_text(path, json.dumps(entries, indent=2))
