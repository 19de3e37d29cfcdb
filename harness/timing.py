"""Clocks and memory gauges that are correct on CUDA: synchronize before reading a clock,
and reset/read the peak memory counters per cell."""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Any


def _torch():
    return sys.modules.get("torch")  # only if the cell already imported it


def synchronize(device: Any) -> None:
    """Wait for queued CUDA work on ``device`` so a wall clock read after it is honest."""
    torch = _torch()
    if torch is not None and getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False if not possible.

    A worker process runs many cells; without the reset, the peak of an earlier, larger
    cell would be charged to every later one."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (since the last reset, on Linux)."""
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def reset_peak_gpu(device: Any) -> None:
    """Reset torch's peak-allocated counter on a CUDA device."""
    torch = _torch()
    if torch is not None and getattr(device, "type", "") == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gpu_mb(device: Any) -> float | None:
    """Peak memory allocated by torch on a CUDA device in MiB; None off CUDA."""
    torch = _torch()
    if torch is not None and getattr(device, "type", "") == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def _run_queue_ns() -> dict[str, int] | None:
    """Per thread of this process: nanoseconds spent ready to run but waiting for a CPU
    (the second field of Linux's ``/proc/self/task/*/schedstat``); None where the kernel
    does not say."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    waits: dict[str, int] = {}
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                waits[tid] = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return waits or None


class CpuClock:
    """The CPU time this process gets while a cell runs, and the time its threads were
    ready to run but waited for a CPU (run-queue delay): the placement audit's evidence
    (harness/audit.py). Read per process, so it sees contention the rows of one folder
    cannot: another folder's run, or any other program, on the same cores."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._waits = _run_queue_ns()

    def read(self) -> tuple[float, float | None]:
        """(CPU seconds, run-queue seconds or None) since the clock started. Threads that
        ended meanwhile take their wait with them: the wait is a lower bound."""
        cpu = time.process_time() - self._cpu
        now = _run_queue_ns()
        if self._waits is None or now is None:
            return cpu, None
        wait = sum(ns - self._waits.get(tid, 0) for tid, ns in now.items())
        return cpu, max(0, wait) / 1e9
