"""Clocks and memory gauges that are correct on CUDA: synchronize before reading a clock,
and reset/read the peak memory counters per cell."""

from __future__ import annotations

import os
import resource
import sys
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
