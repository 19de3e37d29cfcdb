"""The harness's checks that need a GPU, on whatever GPUs this machine has (run by
bench/gpu_check.sh; prints every figure, exits 1 if a check fails).

1. Placement under ``--backend local``: cells of ``gpus: 1`` never share a GPU (from the
   rows' times and ``gpu_ids``); cells of ``gpus: 0.5`` share one two at a time; cells of
   ``gpus: 0`` see no GPU; every CUDA row records its device, GPU name and peak memory.
2. Synchronised timing: the training clock of a cell and ``device_clock`` cover queued
   CUDA work (checked against CUDA events; an unsynchronised clock reads far less).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.location import visible_gpus
from harness.store import load_cells
from harness.vocabulary import STRATEGY, column

STEPS = column(STRATEGY, "steps")  # the probe's steps tell the three kinds of cell apart

GRID = """name: gpu-check
seeds: [0, 1, 2, 3]
defaults: {{timeout_s: 300, device: auto}}
experiments:
  - problem: probe
    params: {{size: 4000000}}
    gpus: 1
    strategies:
      - probe: {{steps: 200, sleep_s: {sleep}}}
  - problem: probe
    params: {{size: 4000000}}
    gpus: 0.5
    strategies:
      - probe: {{steps: 201, sleep_s: {sleep}}}
  - problem: probe
    params: {{size: 1000}}
    strategies:
      - probe: {{steps: 202}}
"""


def overlaps(rows) -> list[tuple]:
    iv = list(rows.itertuples())
    return [(a, b) for i, a in enumerate(iv) for b in iv[i + 1:]
            if a.started_at < b.finished_at and b.started_at < a.finished_at]


def check(name: str, ok: bool, detail: str) -> bool:
    print(f"[{'pass' if ok else 'FAIL'}] {name}: {detail}")
    return ok


def placement(out: Path, gpus: int) -> bool:
    grid = parse_grid(GRID.format(sleep=1.0), "gpu-check.yaml")
    summary = run_grid(grid, out, backend="local", workers=8, progress=False)
    df = load_cells(out)
    cols = [STEPS, "status", "device", "gpu_ids", "cores", "gpu_peak_mb", "train_s"]
    print(df.sort_values("started_at")[[*cols, "started_at"]].to_string())
    good = check("all cells ok", summary.all_ok, str(dict(summary.counts)))
    whole, half, cpu = (df[df[STEPS] == s] for s in (200, 201, 202))
    shared = [(a.gpu_ids, b.gpu_ids) for a, b in overlaps(whole) if a.gpu_ids == b.gpu_ids]
    good &= check("gpus: 1 cells never share a GPU", not shared and
                  whole["gpu_ids"].str.split(",").str.len().eq(1).all(),
                  f"{len(overlaps(whole))} overlapping pairs on {gpus} GPU(s), sharing: {shared}")
    at_once = max((len([b for b in half.itertuples() if b.started_at < a.finished_at
                        and a.started_at < b.finished_at]) for a in half.itertuples()),
                  default=0)
    good &= check("gpus: 0.5 cells share a GPU two at a time", 2 <= at_once <= 2 * gpus,
                  f"at most {at_once} running together")
    good &= check("gpus: 0 cells see no GPU", (cpu["gpu_ids"] == "").all() and
                  (cpu["device"] == "cpu").all(), f"{cpu['device'].unique().tolist()}")
    cuda = df[df[STEPS] < 202]
    good &= check("CUDA rows record device, GPU and peak memory",
                  cuda["device"].str.startswith("cuda").all() and cuda["gpu_peak_mb"].gt(0).all()
                  and cuda["gpu_name"].notna().all(),
                  f"peak MiB {cuda['gpu_peak_mb'].min():.0f}–{cuda['gpu_peak_mb'].max():.0f}, "
                  f"{cuda['gpu_name'].iloc[0]}")
    return good


def synchronised_timing() -> bool:
    """The clocks a cell's timings come from (``RunContext``'s training clock and
    ``device_clock``) against CUDA events, on queued matrix products; an unsynchronised
    ``perf_counter`` beside them for scale."""
    import time

    from harness.solvers.recording import device_clock

    from harness.plugin import RunContext

    device = torch.device("cuda")
    a = torch.randn(8192, 8192, device=device)
    for _ in range(3):
        a @ a  # warm-up
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    run, clock = RunContext(device=device, seed=0, cpus=1), device_clock(device)
    run.start_training()
    t0, c0 = time.perf_counter(), clock()
    start.record()
    for _ in range(50):
        a @ a
    end.record()
    unsynced = time.perf_counter() - t0
    c1 = clock()
    run.stop_training()
    events = start.elapsed_time(end) / 1e3
    good = check("training clock covers the queued CUDA work",
                 0.9 * events <= run.train_s <= 1.5 * events + 0.01,
                 f"train_s {run.train_s:.4f} s, CUDA events {events:.4f} s, "
                 f"unsynchronised perf_counter {unsynced:.4f} s")
    good &= check("device_clock covers the queued CUDA work",
                  0.9 * events <= c1 - c0 <= 1.5 * events + 0.01,
                  f"{c1 - c0:.4f} s vs CUDA events {events:.4f} s")
    return good


def main() -> int:
    gpus = len(visible_gpus())
    print(f"GPUs visible: {gpus}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"available: {torch.cuda.is_available()}")
    if not gpus or not torch.cuda.is_available():
        print("no GPU: nothing to check")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        good = placement(Path(tmp) / "out", gpus)
    good &= synchronised_timing()
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
