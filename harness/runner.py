"""Run one cell in the current process and turn whatever happens into a CellResult.

This is what a worker process executes (see ``harness.worker``); it never raises. It seeds
Python, NumPy and torch from the cell's seed (the same seed gives the same data and the same
random features for every strategy: a paired design), picks the device, times set-up,
training and evaluation separately (synchronized on CUDA), records peak memory, and maps
failures to statuses: exception → ``error``, NaN/inf metric → ``diverged``, out of memory
→ ``oom``, missing CUDA → ``skipped``.
"""

from __future__ import annotations

import math
import os
import platform
import random
import socket
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from . import location, placement, registry
from .cell import Cell
from .plugin import Diverged, RunContext
from .result import DIVERGED, ERROR, OK, OOM, SKIPPED, CellResult
from .timing import CpuClock, peak_gpu_mb, peak_rss_mb, reset_peak_gpu, reset_peak_rss, synchronize

TRACEBACK_LINES = 25


class DeviceUnavailable(Exception):
    """The cell asked for a device this worker does not have: the cell is ``skipped``."""


def resolve_device(spec: str) -> Any:
    """``auto`` → the first visible CUDA device if any, else CPU; ``cuda`` → ``cuda:0``."""
    import torch

    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            hidden = os.environ.get("CUDA_VISIBLE_DEVICES") == ""
            raise DeviceUnavailable(
                f"device {spec!r} requested but CUDA is not available on "
                f"{socket.gethostname()}" + (" to this cell: a cell sees only the GPUs it "
                                             "reserves; ask for gpus: 1 (or a fraction)"
                                             if hidden else ""))
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"device {spec!r} requested but only "
                                    f"{torch.cuda.device_count()} CUDA device(s) are visible")
        return torch.device("cuda", index)
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from the cell's seed."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _limit_threads(n: int) -> None:
    """Use exactly the cell's CPUs: torch's pool and the BLAS/OpenMP pools under NumPy and
    SciPy. Without the latter, two cells on two cores start four spinning BLAS threads and
    run several times slower."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _finite(value: Any) -> bool:
    return value is None or not isinstance(value, float) or math.isfinite(value)


def _collect_metrics(raw: dict[str, Any], declared: dict[str, Any], owner: str) -> dict:
    out = {}
    for key, value in raw.items():
        if key not in declared:
            raise KeyError(f"{owner} returned metric {key!r} that it does not declare; declared: "
                           f"{', '.join(sorted(declared)) or '(none)'}")
        if value is None:
            out[key] = None
        elif declared[key].kind is int:
            out[key] = int(value)
        elif declared[key].kind is str:
            out[key] = str(value)
        else:
            out[key] = float(value)
    return out


def _placement(where: placement.Placement | None, backend: str) -> dict[str, str | None]:
    """The row's ``placement`` columns: the harness's own placement, else Ray's or none."""
    if where is not None:
        return where.columns()
    return placement.placement_columns(False, placement.RAY_NOTE if backend == "ray" else
                                       "run in the calling process, not placed by the harness")


def run_cell(cell: Cell, *, backend: str = "inline", worker: str | None = None,
             where: placement.Placement | None = None) -> CellResult:
    """Run ``cell`` here and return its result; never raises (failures become statuses).
    ``where``: the placement its executor gave it (None: Ray's own, or none)."""
    import torch

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    clock = CpuClock()
    res = CellResult(
        cell_id=cell.cell_id, status=ERROR, started_at=started, **location.here(),
        **placement.observed(), **_placement(where, backend),
        worker=worker or f"{socket.gethostname()}:{os.getpid()}", backend=backend,
        python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
    )
    device = None
    run: RunContext | None = None
    try:
        device = resolve_device(cell.resources.device)
        res.device = str(device)
        if device.type == "cuda":
            res.n_gpus = 1
            res.gpu_name = torch.cuda.get_device_name(device)
            torch.cuda.set_device(device)
        _limit_threads(max(1, int(cell.resources.cpus)))
        seed_everything(cell.seed)
        reset_peak_rss()
        reset_peak_gpu(device)
        pcls = registry.get("problem", cell.problem)
        scls = registry.get("strategy", cell.strategy)
        problem, strategy = pcls(**cell.problem_params), scls(**cell.strategy_params)
        run = RunContext(device=device, seed=cell.seed, cpus=cell.resources.cpus)

        t_setup = time.perf_counter()
        task = problem.build(cell.seed, run)
        synchronize(device)
        res.setup_s = time.perf_counter() - t_setup

        run.start_training()
        fit = strategy.fit(task, run)
        run.stop_training()
        res.train_s = run.train_s

        t_eval = time.perf_counter()
        metrics = problem.evaluate(task, fit.solution, run)
        synchronize(device)
        res.eval_s = time.perf_counter() - t_eval + run.eval_in_training_s

        res.metrics = {
            **_collect_metrics(metrics, pcls.metrics, f"problem {pcls.name}"),
            **_collect_metrics(fit.metrics, scls.metrics, f"strategy {scls.name}"),
        }
        bad = sorted(k for k, v in res.metrics.items() if not _finite(v))
        if bad:
            res.status = DIVERGED
            res.error = f"non-finite metric(s): {', '.join(bad)}"
        else:
            res.status = OK
    except Exception as err:  # a cell's failure is data, never a crash of the worker
        if isinstance(err, Diverged):
            res.status = DIVERGED
        elif isinstance(err, DeviceUnavailable):
            res.status = SKIPPED
        elif _is_oom(err):
            res.status = OOM
        else:
            res.status = ERROR
        res.error = f"{type(err).__name__}: {err}"
        res.traceback = "".join(traceback.format_exc().splitlines(True)[-TRACEBACK_LINES:])
    finally:
        if run is not None:
            res.history = run.history
        res.peak_rss_mb = peak_rss_mb()
        if device is not None:
            res.gpu_peak_mb = peak_gpu_mb(device)
        res.finished_at = datetime.now(UTC)
        res.wall_s = time.perf_counter() - t0
        res.cpu_s, res.cpu_wait_s = clock.read()
    return res
