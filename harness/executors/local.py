"""``local``: a pool of supervised worker processes on this machine, placed by resources.

A cell runs only when the ``cpus`` cores and ``gpus`` GPUs it asks for are free on this
node (its CPU affinity and visible GPUs, :class:`~harness.placement.Node`); it gets them
to itself (cores pinned, ``CUDA_VISIBLE_DEVICES``) and its row records them. ``workers``
caps how many cells run at once; it does not promise that many. A cell larger than the
node is ``skipped`` with the reason. See docs/executors.md, "Placement".
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from .. import stopping
from ..cell import Cell
from ..placement import Allocator, Node, Placement, first_fitting, too_large
from ..result import CellResult
from ..worker import CellWorker
from .base import Event, Executor, Finished, Started, set_aside_too_large


class LocalExecutor(Executor):
    """At most ``workers`` supervised processes (default: one per usable core), each
    running one placed cell at a time."""

    name = "local"

    def __init__(self, workers: int | None = None, log_dir: Path | None = None,
                 node: Node | None = None):
        self.node = node or Node.here()
        self.workers = max(1, workers or len(self.node.cores))
        self.log_dir = log_dir
        self._pool: list[CellWorker] = []
        self._stop = threading.Event()

    def _make_workers(self, n: int) -> None:
        for i in range(n):
            log = self.log_dir / f"worker-local-{i}.log" if self.log_dir else None
            worker = CellWorker(f"local-{i}", backend=self.name, log_path=log,
                                env={"CUDA_VISIBLE_DEVICES": ""})
            worker.start()  # import torch now, in parallel with the other workers
            self._pool.append(worker)

    def run(self, cells: Sequence[Cell]) -> Iterator[Event]:
        cores, gpus = len(self.node.cores), len(self.node.gpus)
        todo, skipped = set_aside_too_large(cells, lambda r: too_large(r, cores, gpus),
                                            self.name)
        yield from skipped
        if not todo:
            return
        self._make_workers(min(self.workers, len(todo)))
        alloc = Allocator(self.node)
        done: queue.Queue[tuple[int, Cell, Placement, CellResult]] = queue.Queue()
        idle = list(range(len(self._pool)))
        last: dict[int, Placement] = {}  # each worker's previous placement, to reuse
        inbox: list[queue.Queue] = [queue.Queue() for _ in self._pool]

        def serve(i: int) -> None:
            # One long-lived thread per worker: a child process is killed when the thread
            # that started it ends (PR_SET_PDEATHSIG), and a crashed cell's worker restarts
            # its child from this thread.
            while (job := inbox[i].get()) is not None:
                done.put((i, *job, self._pool[i].execute(*job)))

        for i in range(len(self._pool)):
            threading.Thread(target=serve, args=(i,), daemon=True).start()
        running = 0
        while todo or running:
            while idle and todo:
                picked = first_fitting(todo, alloc, last.get(idle[-1]))
                if picked is None:
                    break
                i = idle.pop()
                cell, last[i] = picked
                inbox[i].put(picked)
                running += 1
                yield Started(cell)
            with stopping.interruptible():  # waiting: where a stop may land
                i, cell, where, result = done.get()
            running -= 1
            alloc.give(where)
            idle.append(i)
            if self._stop.is_set():
                return
            yield Finished(cell, result)
        for box in inbox:
            box.put(None)

    def close(self) -> None:
        self._stop.set()
        for worker in self._pool:
            worker.stop()
        self._pool.clear()
