"""Every call the harness makes to a Slurm command: sbatch, squeue, sacct, scancel.

Scheduler load is the complaint users of submitit and dask-jobqueue have (one ``sacct`` per
task can stall a cluster), so: one ``squeue`` call covers every job of an output folder, its
answer is cached in the folder for ``HARNESS_SQUEUE_INTERVAL`` seconds (default 10) so that
``watch harness status`` does not hammer the controller, and ``sacct`` is asked only about
jobs that have left the queue.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from .. import atomic
from ..errors import InputError

TIMEOUT_S = 30
ACTIVE = {"PENDING": "pending", "CONFIGURING": "running", "RUNNING": "running",
          "COMPLETING": "running", "SUSPENDED": "pending", "REQUEUED": "pending",
          "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending", "RESIZING": "running",
          "SIGNALING": "running", "STAGE_OUT": "running"}


def available() -> bool:
    """Whether a Slurm controller answers here (``sinfo`` succeeds)."""
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True,
                              timeout=TIMEOUT_S).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _call(argv: list[str], what: str) -> str:
    if shutil.which(argv[0]) is None:
        raise InputError(f"{argv[0]} is not on PATH: no Slurm client here ({what})",
                         file=f"harness {what}")
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise InputError(f"{argv[0]} did not answer within {TIMEOUT_S} s",
                         file=f"harness {what}") from None
    if out.returncode != 0:
        msg = (out.stderr or out.stdout).strip().splitlines()
        raise InputError(f"{argv[0]} failed: {msg[-1] if msg else out.returncode}",
                         file=f"harness {what}")
    return out.stdout


def sbatch(script: Path) -> str:
    """Submit ``script``; return the job id (``sbatch --parsable``, which does not wait for
    the job). The job starts in the current folder, as with a plain ``sbatch``."""
    out = _call(["sbatch", "--parsable", str(script)], "submit")
    # --parsable prints "jobid" or "jobid;cluster"
    return out.strip().split(";")[0]


def cancel(job_ids: list[str]) -> None:
    """``scancel`` every job in one call."""
    if job_ids:
        _call(["scancel", *job_ids], "cancel")


def queue_states(job_ids: list[str], cache: Path | None = None) -> dict[str, str]:
    """Slurm state of every queued job or array task of ``job_ids``, keyed ``JOBID`` or
    ``ARRAYJOB_TASK`` (pending array tasks are expanded); one ``squeue`` call for this
    user's jobs, cached in ``cache`` for ``HARNESS_SQUEUE_INTERVAL`` seconds."""
    if not job_ids:
        return {}
    interval = float(os.environ.get("HARNESS_SQUEUE_INTERVAL", "10"))
    key = ",".join(sorted(job_ids))
    if cache is not None and cache.exists():
        try:
            saved = json.loads(cache.read_text())
            if saved["key"] == key and time.time() - saved["at"] < interval:
                return saved["states"]
        except (ValueError, KeyError):
            pass
    # This user's jobs, filtered here: `--jobs` fails outright once one of the ids has
    # left the controller's memory.
    out = _call(["squeue", "--noheader", "--array", "--me", "--format=%i|%T"], "status")
    wanted = set(job_ids)
    states = {}
    for line in out.splitlines():
        if "|" in line:
            jid, state = line.strip().split("|", 1)
            if jid.split("_")[0] in wanted:
                states[jid] = state
    if cache is not None:
        atomic.write_text(cache, json.dumps({"key": key, "at": time.time(),
                                             "states": states}))
    return states


def final_states(job_ids: list[str]) -> dict[str, str]:
    """Final state (COMPLETED, FAILED, TIMEOUT, CANCELLED, …) of jobs that left the queue,
    from ``sacct`` (accounting database, else the job-completion log); {} when neither is
    configured. One call."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    base = ["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State",
            f"--jobs={','.join(job_ids)}"]
    for argv in (base, [*base, "--completion"]):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        if out.returncode == 0 and "disabled" not in out.stderr:
            states = {}
            for line in out.stdout.splitlines():
                if "|" in line:
                    jid, state = line.split("|", 1)
                    states[jid] = state.split()[0]  # "CANCELLED by 0" → CANCELLED
            return states
    return {}

