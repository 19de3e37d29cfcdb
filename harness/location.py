"""Where a cell runs: host, node, the GPUs it may see (and their identities), and the ids a
batch scheduler gives its job — the one place that reads them from the environment.

The runner and the worker stamp every row with :func:`here`; the placement
(harness/placement.py) reads a node's GPUs with :func:`visible_gpus` and
:func:`gpu_keys`; ``harness status`` matches in-flight cells to scheduler jobs by
:data:`JOB_COLUMN`.
"""

from __future__ import annotations

import functools
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


def job_fields() -> dict[str, str | int | None]:
    """The scheduler, job id (:data:`JOB_COLUMN`) and array task of this process, for a row
    or a manifest (all None outside a batch job)."""
    task = os.environ.get("SLURM_ARRAY_TASK_ID", "")
    job = job_id()
    return {"scheduler": "slurm" if job else None, JOB_COLUMN: job,
            "slurm_array_task": int(task) if job and task.isdigit() else None}


def slurm_task_cpus() -> tuple[int, int] | None:
    """(CPUs Slurm gave this process's task on its node, the task's index on the node);
    None outside a Slurm job."""
    env = os.environ
    if not env.get("SLURM_JOB_ID"):
        return None
    per_task = env.get("SLURM_CPUS_PER_TASK") or env.get("SLURM_CPUS_ON_NODE") or ""
    count = int(per_task) if per_task.isdigit() else 1
    local = env.get("SLURM_LOCALID", "0")
    return max(1, count), int(local) if local.isdigit() else 0


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


def _cpu_ids(text: str) -> set[int]:
    """Slurm's CPU list syntax ("0-3,6") as a set of ids."""
    ids: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (hi or lo).isdigit():
            ids.update(range(int(lo), int(hi or lo) + 1))
    return ids


@functools.lru_cache(maxsize=1)
def nodes_sharing_cores(node: str | None = None) -> tuple[str, ...]:
    """The other Slurm nodes on this node's host whose usable CPUs (all but their
    ``CPUSpecList``) overlap this node's: their jobs can be bound to the cores this node's
    jobs are bound to (several ``slurmd`` on one host, as in slurm/local-cluster.sh).
    Empty when Slurm cannot say (no ``scontrol``) — one node per host is the rule."""
    node = node or os.environ.get("SLURMD_NODENAME")
    if not node or shutil.which("scontrol") is None:
        return ()
    try:
        out = subprocess.run(["scontrol", "show", "node", "-o"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    nodes = {}
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "NodeName" in fields and fields.get("CPUTot", "").isdigit():
            usable = set(range(int(fields["CPUTot"]))) - _cpu_ids(fields.get("CPUSpecList", ""))
            nodes[fields["NodeName"]] = (fields.get("NodeHostName"), usable)
    if node not in nodes:
        return ()
    host, mine = nodes[node]
    return tuple(sorted(n for n, (h, cpus) in nodes.items()
                        if n != node and h == host and cpus & mine))
