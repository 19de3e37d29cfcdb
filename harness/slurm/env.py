"""Where this process runs, as the rows record it: host, Slurm node and Slurm job."""

from __future__ import annotations

import os
import socket


def slurm_job_id() -> str | None:
    """``ARRAYJOB_TASK`` for an array task, else ``SLURM_JOB_ID``; None outside Slurm."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


def placement() -> dict[str, str | None]:
    """``host``, ``node`` (the Slurm node name under Slurm, where several nodes may share a
    host name, else the host name) and ``slurm_job_id`` of this process."""
    host = socket.gethostname()
    return {"host": host, "node": os.environ.get("SLURMD_NODENAME") or host,
            "slurm_job_id": slurm_job_id()}
