"""``mpi``: cells handed out dynamically to MPI ranks (mpi4py).

``mpiexec -n N harness run GRID --out DIR --backend mpi`` (or ``srun --mpi=pmi2 …``)
starts N copies of the CLI. Rank 0 is the driver: it validates the grid, plans, sends one
cell to each idle rank, and writes every result as it arrives (it alone touches the
output folder, so no shared file system is needed). Ranks 1 … N−1 are workers: each
runs its cells through a :class:`~harness.worker.CellWorker` (a supervised child process),
so a cell that crashes, overruns its ``timeout_s`` or is OOM-killed becomes a row and the
rank goes on with the next cell. With N = 1 rank 0 runs the cells itself.

If a whole rank dies under a runtime that lets the job go on (``srun
--kill-on-bad-exit=0``), rank 0 notices the missing heartbeats, records that rank's cell
as failed and carries on with the other ranks (see :class:`MPIExecutor`); MPICH's
``mpiexec`` ends the job instead, and the same command resumes with what is left.

GPU placement: a rank sees GPU (local rank mod G) of its node only
(``CUDA_VISIBLE_DEVICES``), from ``MPI_LOCALRANKID``, ``OMPI_COMM_WORLD_LOCAL_RANK`` or
``SLURM_LOCALID``.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from ..cell import Cell
from ..errors import InputError
from ..location import local_rank, visible_gpus
from ..result import ERROR, CellResult
from ..worker import CellWorker
from .base import Event, Executor, Finished, Started
from .local import pinned_worker

TAG_CELL, TAG_RESULT, TAG_STOP, TAG_HEARTBEAT = 1, 2, 3, 4
POLL_S = 0.005


def comm() -> Any:
    """``MPI.COMM_WORLD``; an InputError naming the missing package if mpi4py is absent."""
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise InputError(f"--backend mpi needs mpi4py ({err}); `make install` installs it",
                         file="harness run") from None
    return MPI.COMM_WORLD


def _cell_worker(rank: int, log_dir: Path | None) -> CellWorker:
    log = log_dir / f"worker-mpi-{rank}.log" if log_dir else None
    return pinned_worker(f"mpi-{rank}@{socket.gethostname()}", "mpi", local_rank(),
                         visible_gpus(), log)


def _heartbeat_s() -> float:
    return float(os.environ.get("HARNESS_MPI_HEARTBEAT_S", "5"))


def lost_after_s() -> float:
    """Silence after which a rank counts as lost (``HARNESS_MPI_LOST_S``, default 60 s);
    infinite when the MPI library cannot send from a second thread (no heartbeats)."""
    from mpi4py import MPI

    if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
        return math.inf
    return float(os.environ.get("HARNESS_MPI_LOST_S", "60"))


def _beat(world: Any, stop: threading.Event) -> None:
    """A worker rank's heartbeat to rank 0, from its own thread, while the rank lives."""
    while not stop.wait(_heartbeat_s()):
        try:
            world.send(None, dest=0, tag=TAG_HEARTBEAT)
        except Exception:  # rank 0 is gone; the main loop notices the silence
            return


def serve(log_dir: Path | None = None) -> int:
    """The loop of a worker rank: run the cells rank 0 sends until it says stop. Exits with
    1 when rank 0 has been silent for ``lost_after_s()`` (it died, and with it the run)."""
    from mpi4py import MPI

    world = comm()
    rank = world.Get_rank()
    worker = _cell_worker(rank, log_dir)
    worker.start()  # import torch while rank 0 validates the grid
    status = MPI.Status()
    stop = threading.Event()
    silence = lost_after_s()
    beat = threading.Thread(target=_beat, args=(world, stop), daemon=True)
    if silence < math.inf:
        beat.start()
    heard = time.monotonic()
    try:
        while True:
            if not world.Iprobe(source=0, tag=MPI.ANY_TAG, status=status):
                if time.monotonic() - heard > silence:
                    print(f"mpi rank {rank}: no word from rank 0 for {silence:g} s; stopping",
                          file=sys.stderr, flush=True)
                    return 1
                time.sleep(POLL_S)
                continue
            message = world.recv(source=0, tag=status.Get_tag())
            heard = time.monotonic()
            if status.Get_tag() == TAG_STOP:
                return 0
            if status.Get_tag() == TAG_HEARTBEAT:
                continue
            result = worker.execute(message)
            result.rank = rank
            world.send(result, dest=0, tag=TAG_RESULT)
            heard = time.monotonic()  # messages that came while busy are drained next
    finally:
        stop.set()
        if beat.is_alive():  # no send in flight when MPI is finalized at exit
            beat.join(timeout=10)
        worker.stop()


def release_workers() -> None:
    """Tell every live worker rank to stop (rank 0, on any exit; idempotent)."""
    if MPIExecutor.released:
        return
    MPIExecutor.released = True
    world = comm()
    for rank in range(1, world.Get_size()):
        if rank not in MPIExecutor.lost:
            world.send(None, dest=rank, tag=TAG_STOP)


def end_job(code: int) -> int:
    """Rank 0's last word: ``code``, unless a rank was lost, in which case the whole MPI job
    ends here (``MPI_Abort``), since finalizing would wait for the dead rank forever.
    Every result is written by then."""
    if MPIExecutor.lost:
        print(f"mpi: rank(s) {sorted(MPIExecutor.lost)} were lost; ending the MPI job",
              file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        comm().Abort(code)
    return code


class MPIExecutor(Executor):
    """Rank 0's side: dynamic hand-out of cells to ranks 1 … N−1.

    Worker ranks send a heartbeat every ``HARNESS_MPI_HEARTBEAT_S`` seconds (default 5)
    and rank 0 sends one to idle ranks. A busy rank silent for ``lost_after_s()`` is lost
    (its node died, it was killed): its cell is recorded ``error`` (``RankLost``, rerun by
    ``--retry-failed``), it gets no more cells, and the others go on. This needs the job to
    survive a dead rank (``srun --kill-on-bad-exit=0``, the Slurm mpi mode); MPICH's
    ``mpiexec`` ends the whole job instead."""

    name = "mpi"
    released = False  # class-wide: the STOP messages go out once per process
    lost: ClassVar[set[int]] = set()  # ranks that stopped answering

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
        ranks = range(1, self.world.Get_size())
        heard = dict.fromkeys(ranks, time.monotonic())
        silence, beat_s, last_beat = lost_after_s(), _heartbeat_s(), time.monotonic()

        def hand_out(rank: int) -> Iterator[Event]:
            """Send the next cell, if any, to the idle ``rank``."""
            if todo:
                busy[rank] = todo.pop()
                self.world.send(busy[rank], dest=rank, tag=TAG_CELL)
                yield Started(busy[rank])

        for rank in ranks:
            yield from hand_out(rank)
        status = MPI.Status()
        while busy:
            # Poll rather than block in MPI: a blocked receive would hold back Ctrl-C and
            # SIGTERM until the next message arrives, and could not notice a lost rank.
            if self.world.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
                rank, tag = status.Get_source(), status.Get_tag()
                message = self.world.recv(source=rank, tag=tag)
                heard[rank] = time.monotonic()
                if tag == TAG_RESULT and rank in busy:
                    yield Finished(busy.pop(rank), message)
                    yield from hand_out(rank)
                continue
            now = time.monotonic()
            for rank in [r for r in busy if now - heard[r] > silence]:
                self.lost.add(rank)
                yield Finished(busy[rank], self._lost(busy.pop(rank), rank, now - heard[rank]))
            if now - last_beat > beat_s:
                for rank in ranks:
                    if rank not in busy and rank not in self.lost:
                        self.world.send(None, dest=rank, tag=TAG_HEARTBEAT)
                last_beat = now
            time.sleep(POLL_S)

    def _lost(self, cell: Cell, rank: int, silent_s: float) -> CellResult:
        now = datetime.now(UTC)
        return CellResult(cell_id=cell.cell_id, status=ERROR, rank=rank, backend=self.name,
                          finished_at=now, error=f"RankLost: MPI rank {rank} stopped "
                          f"answering ({silent_s:.0f} s without a heartbeat) while running "
                          "this cell; rerun with --retry-failed")

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
