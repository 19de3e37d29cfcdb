"""Where a cell runs: host, node, the GPUs it may see (and their identities), and the ids a
batch scheduler gives its job — the one place that reads them from the environment.

The runner and the worker stamp every row with :func:`here`; the placement
(harness/placement.py) reads a node's GPUs with :func:`visible_gpus` and
:func:`gpu_keys`; ``harness status`` matches in-flight cells to scheduler jobs by
:data:`JOB_COLUMN`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

# Column and manifest key of the scheduler job that ran a cell (the results schema's name).
JOB_COLUMN = "slurm_job_id"


def job_id() -> str | None:
    """The scheduler job of this process: ``ARRAYJOB_TASK`` for an array task, else the
    job id; None outside a batch job."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


def job_fields() -> dict[str, str | None]:
    """``{JOB_COLUMN: job_id()}``, for a row or a manifest."""
    return {JOB_COLUMN: job_id()}


def node_name() -> str:
    """The scheduler's name of this node (several nodes may share a host name), else the
    host name."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def here() -> dict[str, str | None]:
    """``host``, ``node`` and the scheduler job of this process, as every row records
    them."""
    return {"host": socket.gethostname(), "node": node_name(), **job_fields()}


def gpu_keys(ids: list[str]) -> list[str]:
    """Node-wide identities of the GPUs this process calls ``ids``: their UUIDs, read from
    ``nvidia-smi`` (PCI bus order, the order workers use: ``CUDA_DEVICE_ORDER``), when the
    ids are indices it can resolve; the ids themselves otherwise. Two processes that
    Slurm bound to different GPUs may both call theirs "0"; their keys differ."""
    uuids = _nvidia_smi(["--query-gpu=uuid", "--format=csv,noheader"])
    return [uuids[int(g)] if g.isdigit() and int(g) < len(uuids) else g for g in ids]


def _nvidia_smi(args: list[str]) -> list[str]:
    """The output lines of ``nvidia-smi ARGS``; none when it is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi``."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    lines = _nvidia_smi(["-L"])
    return [str(i) for i, line in enumerate(line for line in lines if line.startswith("GPU"))]
