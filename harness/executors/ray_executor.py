"""``ray``: cells on warm Ray actors, on an embedded local Ray or an existing cluster.

Cells run on actors that live for the whole run, one per slot: an actor reserves one
cell's ``num_cpus=cpus`` and ``num_gpus=gpus`` (so Ray places it and sets
``CUDA_VISIBLE_DEVICES`` to the GPUs it reserved) and runs the cells of that resource
shape one after another through its :class:`~harness.worker.CellWorker`, which enforces
each cell's timeout and survives its crashes. A method call on a live actor costs a
fraction of a task's scheduling (bench/overhead.py). Actors of a shape are created while
cells of that shape wait (up to what the cluster holds) and released when none is left,
so a grid of mixed shapes goes on with the next shape. Results travel back to the driver,
which alone writes them: no shared file system is needed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from typing import Any

from .. import registry, stopping
from ..cell import Cell
from ..errors import Preempted
from ..placement import too_large
from ..result import ERROR, OOM, CellResult
from ..worker import CellWorker
from .base import Event, Executor, Finished, Started, set_aside_too_large

NODE_WAIT_S = 300.0
STOP_POLL_S = 0.2  # the longest a stop signal waits to be noticed while cells run
Shape = tuple[int, float]  # (cpus, gpus) of a cell, and of the actors that run it
_ACTOR_GONE = ("ActorDiedError", "RayActorError", "ActorUnavailableError")


class CellActor:
    """The body of a Ray actor: one CellWorker, reused for every cell sent to it."""

    def __init__(self, sees_gpus: bool) -> None:
        import ray

        node = ray.get_runtime_context().get_node_id()[:8]
        # an actor without GPUs hides them all from its cells, as local and mpi do (Ray
        # itself leaves CUDA_VISIBLE_DEVICES unset there)
        env = {} if sees_gpus else {"CUDA_VISIBLE_DEVICES": ""}
        self.worker = CellWorker(f"ray-{node}-{os.getpid()}", backend="ray", env=env)
        self.worker.start()  # import torch while the driver sends the first cell

    def execute(self, cell: Cell) -> CellResult:
        return self.worker.execute(cell)

    def niceness(self) -> int:
        """The scheduling priority of this actor and so of its cells (as the driver's)."""
        return os.nice(0)


def ray_environment() -> None:
    """The environment an embedded Ray (and its workers) starts with, unless set already:
    token auth off and no usage stats (Ray 2.60 turns the first on and the second phones
    home), and the workers at the driver's priority: Ray runs them at niceness 15 by
    default, so that any other process on the node, a busy loop included, takes nearly all
    of the CPU from the cells, whose timings then measure the neighbours (docs/executors.md).
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")


def _init_ray(ray: Any, **kwargs: Any) -> None:
    """``ray.init(**kwargs)``, keeping the harness's stop signals: ``ray.init`` installs
    SIGTERM handlers of its own (one calls ``sys.exit(15)``, one in its C++ core logs
    and exits), which would end the driver without recording the cells in flight."""
    try:
        ray.init(**kwargs)
    except SystemExit as leaving:  # Ray's handler, for a SIGTERM during the start
        if leaving.code != signal.SIGTERM:
            raise
        raise Preempted("SIGTERM") from None
    finally:
        stopping.reclaim()


class RayExecutor(Executor):
    """Embedded Ray sized to ``workers`` CPUs (default: all cores) unless ``address`` names
    an existing cluster to join."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 object_store_mb: int = 256):
        self.address, self.workers, self.object_store_mb = address, workers, object_store_mb
        self._started_ray = False
        self._pending: dict[Any, tuple[Cell, Any]] = {}  # result ref → (cell, actor)
        self._actors: set[Any] = set()

    def _connect(self) -> Any:
        ray_environment()
        import logging

        import ray

        # plug-ins named in the environment are imported by every Ray worker too (on a
        # cluster they must be importable there: installed, or on its PYTHONPATH)
        plugins = os.environ.get(registry.PLUGINS_ENV)
        runtime_env = {"env_vars": {registry.PLUGINS_ENV: plugins}} if plugins else None
        if not ray.is_initialized():
            if self.address:
                kwargs: dict[str, Any] = {"address": self.address}
            else:
                kwargs = {"address": "local", "num_cpus": self.workers or os.cpu_count(),
                          "include_dashboard": False,
                          "object_store_memory": self.object_store_mb * 2**20}
            _init_ray(ray, log_to_driver=False, logging_level=logging.WARNING,
                      runtime_env=runtime_env, **kwargs)
            self._started_ray = not self.address
        nodes = self._wait_for_nodes(ray)
        self._node_cpus = max((n["Resources"].get("CPU", 0) for n in nodes), default=0)
        self._node_gpus = max((n["Resources"].get("GPU", 0) for n in nodes), default=0)
        total = ray.cluster_resources()
        self._total_cpus, self._total_gpus = total.get("CPU", 1), total.get("GPU", 0)
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
            stopping.checkpoint()
            time.sleep(0.5)

    def run(self, cells: Sequence[Cell]) -> Iterator[Event]:
        ray = self._connect()
        actor_cls = ray.remote(max_restarts=0)(CellActor)
        todo, skipped = set_aside_too_large(
            cells, lambda r: too_large(r, self._node_cpus, self._node_gpus,
                                       "the largest Ray node"), self.name)
        yield from skipped
        waiting: dict[Shape, deque[Cell]] = defaultdict(deque)
        for cell in todo:
            waiting[(cell.resources.cpus, cell.resources.gpus)].append(cell)
        load: dict[Any, int] = {}  # actor → calls in flight on it
        shape_of: dict[Any, Shape] = {}
        while waiting or self._pending:
            for shape in list(waiting):
                yield from self._feed(actor_cls, shape, waiting, load, shape_of)
            for ref in self._arrived(ray):
                cell, actor = self._pending.pop(ref)
                result = self._result(ray, ref, cell)
                if actor in load:  # not yet dropped (its other call failed first)
                    load[actor] -= 1
                if (result.error or "").split(":")[0] in _ACTOR_GONE:
                    self._drop(actor, load, shape_of)
                yield Finished(cell, result)
            for actor in [a for a, n in load.items() if not n and shape_of[a] not in waiting]:
                self._drop(actor, load, shape_of)  # its shape is done: free its resources

    def _arrived(self, ray: Any) -> list[Any]:
        """The refs of every result that has arrived, once one has. A stop signal is
        raised between waits, never inside one (an exception raised inside ``ray.wait``
        becomes a SystemError), so the wait is cut into ``STOP_POLL_S`` slices."""
        pending = list(self._pending)
        done: list[Any] = []
        while not done:
            done, rest = ray.wait(pending, num_returns=1, timeout=STOP_POLL_S)
            stopping.checkpoint()
        if rest:  # take every other result that is already there in the same pass
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            done += more
        return done

    def _feed(self, actor_cls: Any, shape: Shape, waiting: dict[Shape, deque[Cell]],
              load: dict[Any, int], shape_of: dict[Any, Shape]) -> Iterator[Event]:
        """Send waiting cells of ``shape`` to its actors, two in flight per actor (the
        next cell is there when the current one ends), creating actors up to what the
        cluster holds (all at once: they import torch in parallel)."""
        queue = waiting[shape]
        actors = [a for a in load if shape_of[a] == shape]
        cpus, gpus = shape
        most = int(self._total_cpus // max(cpus, 1))
        if gpus:
            most = min(most, int(self._total_gpus // gpus))
        busy = sum(load[a] for a in actors)
        while queue and len(actors) < min(max(1, most), len(queue) + busy):
            actor = actor_cls.options(num_cpus=cpus, num_gpus=gpus).remote(gpus > 0)
            self._actors.add(actor)
            actors.append(actor)
            load[actor], shape_of[actor] = 0, shape
        for depth in (1, 2):
            for actor in actors:
                if queue and load[actor] < depth:
                    cell = queue.popleft()
                    self._pending[actor.execute.remote(cell)] = (cell, actor)
                    load[actor] += 1
                    yield Started(cell)
        if not queue:
            del waiting[shape]

    def _drop(self, actor: Any, load: dict[Any, int], shape_of: dict[Any, Shape]) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.kill(actor)
        self._actors.discard(actor)
        load.pop(actor, None)
        shape_of.pop(actor, None)

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
        for actor in list(self._actors):  # its CellWorker's child dies with it
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor)
        self._actors.clear()
        self._pending.clear()
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
