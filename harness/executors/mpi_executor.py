"""``mpi``: cells handed out dynamically to MPI ranks (mpi4py).

``mpiexec -n N harness run GRID --out DIR --backend mpi`` (or ``srun --mpi=pmi2 …``)
starts N copies of the CLI. Rank 0 is the driver: it validates the grid, plans, sends one
cell to each idle rank, and writes every result as it arrives (it alone touches the
output folder, so no shared file system is needed). Ranks 1 … N−1 are workers: each
runs its cells through a :class:`~harness.worker.CellWorker` (a supervised child process),
so a cell that crashes, overruns its ``timeout_s`` or is OOM-killed becomes a row and the
rank goes on with the next cell. With N = 1 rank 0 runs the cells itself.

If a whole rank dies, the MPI runtime (MPICH's hydra, Slurm) ends the job; every
finished cell is already written, and the same command resumes with what is left.

GPU placement: a rank sees GPU (local rank mod G) of its node only
(``CUDA_VISIBLE_DEVICES``), from ``MPI_LOCALRANKID``, ``OMPI_COMM_WORLD_LOCAL_RANK`` or
``SLURM_LOCALID``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..cell import Cell
from ..errors import InputError
from ..worker import CellWorker
from .base import Event, Executor, Finished, Started
from .local import pinned_worker, visible_gpus

TAG_CELL, TAG_RESULT, TAG_STOP = 1, 2, 3
POLL_S = 0.005
LOCAL_RANK_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")


def comm() -> Any:
    """``MPI.COMM_WORLD``; an InputError naming the missing package if mpi4py is absent."""
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise InputError(f"--backend mpi needs mpi4py ({err}); `make install` installs it",
                         file="harness run") from None
    return MPI.COMM_WORLD


def local_rank() -> int:
    """This rank's index on its node (0 when no launcher says)."""
    for var in LOCAL_RANK_VARS:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _cell_worker(rank: int, log_dir: Path | None) -> CellWorker:
    log = log_dir / f"worker-mpi-{rank}.log" if log_dir else None
    return pinned_worker(f"mpi-{rank}@{socket.gethostname()}", "mpi", local_rank(),
                         visible_gpus(), log)


def serve(log_dir: Path | None = None) -> int:
    """The loop of a worker rank: run the cells rank 0 sends until it says stop."""
    from mpi4py import MPI

    world = comm()
    rank = world.Get_rank()
    worker = _cell_worker(rank, log_dir)
    worker.start()  # import torch while rank 0 validates the grid
    status = MPI.Status()
    try:
        while True:
            cell = world.recv(source=0, tag=MPI.ANY_TAG, status=status)
            if status.Get_tag() == TAG_STOP:
                return 0
            result = worker.execute(cell)
            result.rank = rank
            world.send(result, dest=0, tag=TAG_RESULT)
    finally:
        worker.stop()


def release_workers() -> None:
    """Tell every worker rank to stop (rank 0, on any exit; idempotent)."""
    if MPIExecutor.released:
        return
    MPIExecutor.released = True
    world = comm()
    for rank in range(1, world.Get_size()):
        world.send(None, dest=rank, tag=TAG_STOP)


class MPIExecutor(Executor):
    """Rank 0's side: dynamic hand-out of cells to ranks 1 … N−1."""

    name = "mpi"
    released = False  # class-wide: the STOP messages go out once per process

    def __init__(self, log_dir: Path | None = None):
        self.world = comm()
        if self.world.Get_rank() != 0:
            raise RuntimeError("MPIExecutor runs on rank 0; other ranks call serve()")
        self.log_dir = log_dir
        self._local: CellWorker | None = None

    def run(self, cells: Sequence[Cell]) -> Iterator[Event]:
        if self.world.Get_size() == 1:
            yield from self._run_here(cells)
            return
        from mpi4py import MPI

        todo = list(reversed(cells))
        busy: dict[int, Cell] = {}

        def hand_out(rank: int) -> Iterator[Event]:
            """Send the next cell, if any, to the idle ``rank``."""
            if todo:
                busy[rank] = todo.pop()
                self.world.send(busy[rank], dest=rank, tag=TAG_CELL)
                yield Started(busy[rank])

        for rank in range(1, self.world.Get_size()):
            yield from hand_out(rank)
        status = MPI.Status()
        while busy:
            # Poll rather than block in MPI: a blocked receive would hold back Ctrl-C and
            # SIGTERM until the next result arrives.
            while not self.world.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_RESULT):
                time.sleep(POLL_S)
            result = self.world.recv(source=MPI.ANY_SOURCE, tag=TAG_RESULT, status=status)
            rank = status.Get_source()
            yield Finished(busy.pop(rank), result)
            yield from hand_out(rank)

    def _run_here(self, cells: Sequence[Cell]) -> Iterator[Event]:
        self._local = _cell_worker(0, self.log_dir)
        for cell in cells:
            yield Started(cell)
            result = self._local.execute(cell)
            result.rank = 0
            yield Finished(cell, result)

    def close(self) -> None:
        if self._local is not None:
            self._local.stop()
        release_workers()
