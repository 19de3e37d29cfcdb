"""``local``: a pool of supervised worker processes on this machine."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..cell import Cell
from ..location import visible_gpus
from ..worker import CellWorker
from .base import Event, Executor, Finished, Started


def pinned_worker(label: str, backend: str, slot: int, gpus: list[str],
                  log_path: Path | None) -> CellWorker:
    """A CellWorker that sees only GPU ``slot mod len(gpus)`` (all devices if none)."""
    env = {"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]} if gpus else {}
    return CellWorker(label, backend=backend, log_path=log_path, env=env)


class LocalExecutor(Executor):
    """``workers`` supervised processes, each taking the next cell when it is free.

    On a machine with GPUs, worker i sees only GPU i mod G (``CUDA_VISIBLE_DEVICES``), so
    cells on different workers never share a device."""

    name = "local"

    def __init__(self, workers: int | None = None, log_dir: Path | None = None):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.log_dir = log_dir
        self._pool: list[CellWorker] = []
        self._stop = threading.Event()

    def _make_workers(self, n: int) -> None:
        gpus = visible_gpus()
        for i in range(n):
            log = self.log_dir / f"worker-local-{i}.log" if self.log_dir else None
            worker = pinned_worker(f"local-{i}", self.name, i, gpus, log)
            worker.start()  # import torch now, in parallel with the other workers
            self._pool.append(worker)

    def run(self, cells: Sequence[Cell]) -> Iterator[Event]:
        todo: queue.Queue[Cell] = queue.Queue()
        for c in cells:
            todo.put(c)
        events: queue.Queue[Event] = queue.Queue()
        self._make_workers(min(self.workers, len(cells)))

        def serve(worker: CellWorker) -> None:
            while not self._stop.is_set():
                try:
                    cell = todo.get_nowait()
                except queue.Empty:
                    return
                events.put(Started(cell))
                result = worker.execute(cell)
                if not self._stop.is_set():
                    events.put(Finished(cell, result))

        threads = [threading.Thread(target=serve, args=(w,), daemon=True) for w in self._pool]
        for t in threads:
            t.start()
        remaining = len(cells)
        while remaining:
            event = events.get()
            if isinstance(event, Finished):
                remaining -= 1
            yield event

    def close(self) -> None:
        self._stop.set()
        for worker in self._pool:
            worker.stop()
        self._pool.clear()
