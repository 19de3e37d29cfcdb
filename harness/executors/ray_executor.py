"""``ray``: cells as Ray tasks on an embedded local Ray or an existing cluster.

Each cell is one task with ``num_cpus=cpus`` and ``num_gpus=gpus``, so Ray places it (and
sets ``CUDA_VISIBLE_DEVICES`` to the GPUs it reserved). Inside the task a
:class:`~harness.worker.CellWorker` owned by that Ray worker process runs the cell and
enforces its timeout. Results travel back to the driver, which alone writes them: no shared
file system is needed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .. import registry
from ..cell import Cell
from ..placement import skipped_too_large, too_large
from ..result import ERROR, OOM, CellResult
from ..worker import CellWorker
from .base import Event, Executor, Finished, Started

NODE_WAIT_S = 300.0
_WORKER: CellWorker | None = None  # one per Ray worker process, reused across its tasks


def _execute(cell: Cell) -> CellResult:
    """The body of the Ray task (runs in a Ray worker process)."""
    global _WORKER
    if _WORKER is None:
        import ray

        node = ray.get_runtime_context().get_node_id()[:8]
        _WORKER = CellWorker(f"ray-{node}-{os.getpid()}", backend="ray")
    return _WORKER.execute(cell)


def _quiet_ray_env() -> None:
    # Token auth is on by default in Ray 2.60 and usage stats phone home; neither is wanted
    # for an embedded cluster (see docs/executors.md).
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


class RayExecutor(Executor):
    """Embedded Ray sized to ``workers`` CPUs (default: all cores) unless ``address`` names
    an existing cluster to join."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 object_store_mb: int = 256):
        self.address, self.workers, self.object_store_mb = address, workers, object_store_mb
        self._started_ray = False
        self._pending: dict[Any, Cell] = {}
        self._capacity = 1

    def _connect(self) -> Any:
        _quiet_ray_env()
        import logging

        import ray

        # plug-ins named in the environment are imported by every Ray worker too (on a
        # cluster they must be importable there: installed, or on its PYTHONPATH)
        plugins = os.environ.get(registry.PLUGINS_ENV)
        runtime_env = {"env_vars": {registry.PLUGINS_ENV: plugins}} if plugins else None
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False,
                         logging_level=logging.WARNING, runtime_env=runtime_env)
            else:
                ray.init(address="local", num_cpus=self.workers or os.cpu_count(),
                         include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING,
                         object_store_memory=self.object_store_mb * 2**20,
                         runtime_env=runtime_env)
                self._started_ray = True
        nodes = self._wait_for_nodes(ray)
        self._node_cpus = max((n["Resources"].get("CPU", 0) for n in nodes), default=0)
        self._node_gpus = max((n["Resources"].get("GPU", 0) for n in nodes), default=0)
        self._capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return ray

    @staticmethod
    def _wait_for_nodes(ray: Any) -> list[dict]:
        """The alive nodes, once ``HARNESS_RAY_NODES`` of them have joined (the Slurm ray
        mode sets it: worker nodes start after the head) or ``NODE_WAIT_S`` has passed."""
        want = int(os.environ.get("HARNESS_RAY_NODES", "0") or 0)
        deadline = time.monotonic() + NODE_WAIT_S
        while True:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            if len(nodes) >= want or time.monotonic() > deadline:
                return nodes
            time.sleep(0.5)

    def run(self, cells: Sequence[Cell]) -> Iterator[Event]:
        ray = self._connect()
        task = ray.remote(max_retries=0)(_execute)
        queue = list(reversed(cells))
        while queue or self._pending:
            # A few more tasks than slots in flight, so that no slot idles while the
            # driver writes a result; Ray queues the extra ones.
            while queue and len(self._pending) < 2 * self._capacity + 2:
                cell = queue.pop()
                reason = too_large(cell.resources, self._node_cpus, self._node_gpus,
                                   "the largest Ray node")
                if reason:
                    yield Started(cell)
                    yield Finished(cell, skipped_too_large(cell, reason, self.name))
                    continue
                ref = task.options(num_cpus=cell.resources.cpus,
                                   num_gpus=cell.resources.gpus).remote(cell)
                self._pending[ref] = cell
                yield Started(cell)
            if not self._pending:
                continue
            pending = list(self._pending)
            done, rest = ray.wait(pending, num_returns=1)
            if rest:  # take every other result that is already there in the same pass
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                done += more
            for ref in done:
                cell = self._pending.pop(ref)
                yield Finished(cell, self._result(ray, ref, cell))

    def _result(self, ray: Any, ref: Any, cell: Cell) -> CellResult:
        try:
            return ray.get(ref)
        except Exception as err:  # the Ray worker died or Ray refused the task
            oom = type(err).__name__ in ("OutOfMemoryError", "ObjectStoreFullError")
            return CellResult(cell_id=cell.cell_id, status=OOM if oom else ERROR,
                              error=f"{type(err).__name__}: {str(err).splitlines()[0][:500]}",
                              host=socket.gethostname(), backend=self.name)

    def close(self) -> None:
        import sys

        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return
        for ref in list(self._pending):
            with contextlib.suppress(Exception):  # already finished or its worker is gone
                ray.cancel(ref, force=True)
        self._pending.clear()
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
