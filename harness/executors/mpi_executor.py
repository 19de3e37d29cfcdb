"""``mpi``: cells handed out dynamically to MPI ranks (mpi4py).

``mpiexec -n N harness run GRID --out DIR --backend mpi`` (or ``srun --mpi=pmi2 …``)
starts N copies of the CLI. Rank 0 is the driver: it validates the grid, plans, sends one
cell to each idle rank, and writes every result as it arrives (it alone touches the
output folder, so no shared file system is needed). Ranks 1 … N−1 are workers: each
runs its cells through a :class:`~harness.worker.CellWorker` (a supervised child process),
so a cell that crashes, overruns its ``timeout_s`` or is OOM-killed becomes a row and the
rank goes on with the next cell. With N = 1 rank 0 runs the cells itself. Each process's
part is an :class:`MPIJob` (the CLI calls its :meth:`~MPIJob.run` on every rank); rank 0
hands out the cells through an :class:`MPIExecutor`.

If a whole rank dies under a runtime that lets the job go on (``srun
--kill-on-bad-exit=0``), rank 0 notices the missing heartbeats, records that rank's cell
as failed and carries on with the other ranks (see :class:`MPIExecutor`); MPICH's
``mpiexec`` ends the job instead, and the same command resumes with what is left.

Placement (docs/executors.md): each worker rank tells rank 0 its node, its cores (CPU
affinity) and its GPUs when it starts. Rank 0 keeps one
:class:`~harness.placement.Allocator` per node and hands a cell to an idle rank only when
the cell's ``cpus`` and ``gpus`` are free on that rank's node; the rank pins the cell's
process to the cores it was given and shows it only its GPUs. Ranks that see the same
GPU list share it (``mpiexec`` on one box); ranks that see different lists (Slurm's
per-task GPU binding) each use their own.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import stopping
from ..cell import Cell
from ..errors import InputError, Preempted
from ..location import gpu_keys, node_name, visible_gpus
from ..placement import Allocator, Node, Placement, owned_cores, too_large
from ..result import ERROR, SKIPPED, CellResult
from ..worker import CellWorker
from .base import Event, Executor, Finished, Started, set_aside_too_large
from .mpi_placement import Hello, RankPlacer

TAG_CELL, TAG_RESULT, TAG_STOP, TAG_HEARTBEAT, TAG_HELLO, TAG_BYE = 1, 2, 3, 4, 5, 6
POLL_MIN_S, POLL_MAX_S = 2e-5, 0.005
LAST_WORD_S = 10.0  # how long rank 0 waits for a released worker rank's TAG_BYE


class Backoff:
    """Sleeps between polls, in proportion to the time since the last message: 1/20 of
    it, between ``POLL_MIN_S`` and ``POLL_MAX_S``. A reply due soon (the next cell after a
    result, the result of a short cell) is caught within about 5% of the wait plus a few
    microseconds; an idle rank polls 200 times a second at most. Polling rather than a
    blocking receive keeps Ctrl-C, SIGTERM and lost ranks noticed, and MPICH's blocking
    receive would spin a core."""

    def __init__(self) -> None:
        self.since = time.monotonic()

    def reset(self) -> None:
        self.since = time.monotonic()

    def wait(self) -> None:
        with stopping.interruptible():  # between messages: where a stop may land
            time.sleep(min(POLL_MAX_S, max(POLL_MIN_S, (time.monotonic() - self.since) / 20)))


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
    return CellWorker(f"mpi-{rank}@{socket.gethostname()}", backend="mpi", log_path=log,
                      env={"CUDA_VISIBLE_DEVICES": ""})


def _hello() -> Hello:
    gpus = visible_gpus()
    cores, pin, note = owned_cores()
    return Hello(node=node_name(), cores=cores, gpus=tuple(gpus),
                 gpu_keys=tuple(gpu_keys(gpus)), pin=pin, note=note)


def _heartbeat_s() -> float:
    return float(os.environ.get("HARNESS_MPI_HEARTBEAT_S", "5"))


def lost_after_s() -> float:
    """Silence after which a rank counts as lost (``HARNESS_MPI_LOST_S``, default 60 s);
    infinite when the MPI library cannot send from a second thread (no heartbeats)."""
    from mpi4py import MPI

    if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
        return math.inf
    return float(os.environ.get("HARNESS_MPI_LOST_S", "60"))


@functools.cache
def this_job() -> MPIJob:
    """This process's part in the MPI job (one per process, as ``MPI_COMM_WORLD`` is: the
    CLI's :meth:`MPIJob.run` and rank 0's :class:`MPIExecutor` share it)."""
    return MPIJob(comm())


class MPIJob:
    """One process's part in the MPI job: the world communicator, rank 0's view of which
    worker ranks are lost or released, and the protocol each rank follows (:meth:`run`).

    Why a job apart from the executor: rank 0 is heard by the worker ranks, and releases
    them, from its first line to its last, also when it never gets as far as building an
    executor (bad input); the executor hands out cells in between."""

    def __init__(self, world: Any):
        self.world = world
        self.rank: int = world.Get_rank()
        self.lost: set[int] = set()  # worker ranks that stopped answering
        self.released = False  # the STOP messages went out (once per job)
        # Held while a heartbeat round or the STOP messages go out: no heartbeat follows a
        # STOP.
        self._sending = threading.Lock()

    def run(self, lead: Callable[[], int], *, log_dir: Path | None,
            preempted_exit: int) -> int:
        """This rank's whole part; its exit code. Rank 0 runs ``lead`` (the driver, whose
        cells an :class:`MPIExecutor` hands out), heard by the worker ranks throughout,
        then releases them on any exit (bad input included) and ends the job
        (:meth:`_end`). A worker rank serves cells until rank 0 says stop, logging to
        ``log_dir``; a stop signal ends it with ``preempted_exit``, silently, as rank 0
        records the cell it had and says so."""
        if self.rank != 0:
            try:
                return self._serve(log_dir)
            except Preempted:
                return preempted_exit
        try:
            with self._heartbeats(self.live_workers):  # heard from start-up to the end
                code = lead()
        finally:
            self.release_workers()
        return self._end(code)

    def live_workers(self) -> list[int]:
        """The worker ranks not lost and not yet released (rank 0's side)."""
        if self.released:
            return []
        return [r for r in range(1, self.world.Get_size()) if r not in self.lost]

    @contextlib.contextmanager
    def _heartbeats(self, to: Callable[[], Iterable[int]]) -> Iterator[None]:
        """While the block runs, a thread of this rank's own sends a heartbeat every
        ``HARNESS_MPI_HEARTBEAT_S`` seconds to each rank ``to()`` names: a worker rank to
        rank 0, rank 0 to the live worker ranks. From a thread, so that a rank busy with a
        cell, or rank 0 still starting (importing torch, validating the grid) or merging
        results, is still heard. No thread when the MPI library cannot send from a second
        one (then nobody counts as lost: ``lost_after_s`` is infinite)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(_heartbeat_s()):
                with self._sending:
                    for rank in to():
                        try:
                            self.world.send(None, dest=rank, tag=TAG_HEARTBEAT)
                        except Exception:  # that rank is gone; the receiver notices
                            continue

        thread = threading.Thread(target=beat, daemon=True, name="mpi-heartbeat")
        if lost_after_s() < math.inf:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread.is_alive():  # no send in flight when MPI is finalized at exit
                thread.join(timeout=10)

    # -- a worker rank -----------------------------------------------------------------
    def _serve(self, log_dir: Path | None) -> int:
        """The loop of a worker rank: run the cells rank 0 sends until it says stop, then
        say goodbye (``TAG_BYE``, this rank's last message: see :meth:`release_workers`).
        Exits with 1 when rank 0 has been silent for ``lost_after_s()`` (it died, and with
        it the run)."""
        hello = _hello()  # before the worker's environment hides the GPUs from its child
        worker = _cell_worker(self.rank, log_dir)
        worker.start()  # import torch while rank 0 validates the grid
        self.world.send(hello, dest=0, tag=TAG_HELLO)
        try:
            with self._heartbeats(lambda: (0,)):
                code = self._serve_cells(worker)
            if code == 0:  # told to stop: nothing follows this message (heartbeats ended)
                self.world.send(None, dest=0, tag=TAG_BYE)
            return code
        finally:
            worker.stop()

    def _serve_cells(self, worker: CellWorker) -> int:
        """Run cells until rank 0's STOP (0) or its silence (1)."""
        from mpi4py import MPI

        world, status, idle = self.world, MPI.Status(), Backoff()
        silence, heard = lost_after_s(), time.monotonic()
        while True:
            if not world.Iprobe(source=0, tag=MPI.ANY_TAG, status=status):
                if time.monotonic() - heard > silence:
                    print(f"mpi rank {self.rank}: no word from rank 0 for {silence:g} s; "
                          "stopping", file=sys.stderr, flush=True)
                    return 1
                idle.wait()
                continue
            message = world.recv(source=0, tag=status.Get_tag())
            heard = time.monotonic()
            if status.Get_tag() == TAG_STOP:
                return 0
            if status.Get_tag() == TAG_HEARTBEAT:
                continue
            cell, where = message
            result = replace(worker.execute(cell, where), rank=self.rank)
            world.send(result, dest=0, tag=TAG_RESULT)
            heard = time.monotonic()  # messages that came while busy are drained next
            idle.reset()

    # -- rank 0 at the end -------------------------------------------------------------
    def release_workers(self) -> None:
        """Tell every live worker rank to stop, and take in everything it sent up to its
        goodbye (rank 0, on any exit; idempotent). Why both: MPICH's ``MPI_Finalize``
        fails on a message that was sent to a rank and never received ("unmatched
        message(s)"), the rank then exits without telling the process manager, and the
        process manager kills the whole job (exit 9, after every result was written). So
        no heartbeat goes to a worker rank after its STOP (``_sending``), and rank 0
        receives each rank's heartbeats, hello and late result up to its ``TAG_BYE``. A
        rank with no goodbye within ``LAST_WORD_S`` (busy with a cell after a stop signal,
        or dead) counts as lost: :meth:`_end` then ends the job with ``MPI_Abort``, as
        finalizing could not succeed."""
        if self.released:
            return
        with stopping.deferred():  # a stop signal meanwhile is noted, and raised at the end
            with self._sending:
                waiting = set(self.live_workers())
                self.released = True
                for rank in waiting:
                    self.world.send(None, dest=rank, tag=TAG_STOP)
            self._last_words(waiting)

    def _last_words(self, waiting: set[int]) -> None:
        """Receive every message from the ``waiting`` ranks until each has said goodbye."""
        from mpi4py import MPI

        status, deadline = MPI.Status(), time.monotonic() + LAST_WORD_S
        while waiting and time.monotonic() < deadline:
            if not self.world.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
                time.sleep(POLL_MAX_S)  # not Backoff.wait: a stop signal must not cut this
                continue
            source, tag = status.Get_source(), status.Get_tag()
            self.world.recv(source=source, tag=tag)
            if tag == TAG_BYE:
                waiting.discard(source)
        self.lost |= waiting

    def _end(self, code: int) -> int:
        """Rank 0's last word: ``code``, unless a rank was lost, in which case the whole
        MPI job ends here (``MPI_Abort``), since finalizing would wait for the dead rank
        forever. Every result is written by then."""
        if self.lost:
            print(f"mpi: rank(s) {sorted(self.lost)} were lost; ending the MPI job",
                  file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            self.world.Abort(code)
        return code


class MPIExecutor(Executor):
    """Rank 0's side: dynamic, placed hand-out of cells to ranks 1 … N−1.

    Every rank sends heartbeats from a thread of its own (:meth:`MPIJob._heartbeats`) every
    ``HARNESS_MPI_HEARTBEAT_S`` seconds (default 5): worker ranks to rank 0, and rank 0,
    from its start-up to its end, to every live worker rank (:meth:`MPIJob.run` starts them
    before the driver reads the grid: a worker rank that hears nothing for
    ``lost_after_s()`` stops, and rank 0's start-up can take longer than that on a busy
    node). A busy rank silent for ``lost_after_s()`` is lost (its node died, it was
    killed): its cell is recorded ``error`` (``RankLost``, rerun by ``--retry-failed``),
    it gets no more cells, and the others go on; when no rank is left, every cell not yet
    handed out is recorded ``skipped`` (``NoWorkers``, run by the next run). This needs the
    job to survive a dead rank (``srun --kill-on-bad-exit=0``, the Slurm mpi mode);
    MPICH's ``mpiexec`` ends the whole job instead."""

    name = "mpi"

    def __init__(self, log_dir: Path | None = None):
        self.job = this_job()
        if self.job.rank != 0:
            raise RuntimeError("MPIExecutor runs on rank 0; MPIJob.run serves the others")
        self.world = self.job.world
        self.log_dir = log_dir
        self._local: CellWorker | None = None
        self._heard: dict[int, float] = {}
        self._hellos: dict[int, Hello] = {}

    def run(self, cells: Sequence[Cell]) -> Iterator[Event]:
        if self.world.Get_size() == 1:
            yield from self._run_here(cells)
            return
        from mpi4py import MPI

        ranks = range(1, self.world.Get_size())
        self._heard = dict.fromkeys(ranks, time.monotonic())
        status, wait = MPI.Status(), Backoff()
        self._greet(ranks, status, wait)
        live = {r: h for r, h in self._hellos.items() if r not in self.job.lost}
        if not live:
            yield from self._unplaced(list(cells))
            return
        placer = RankPlacer(live)
        todo, skipped = set_aside_too_large(cells, placer.too_large, self.name)
        yield from skipped
        busy: dict[int, tuple[Cell, Placement]] = {}
        last: dict[int, Placement] = {}
        silence = lost_after_s()

        def hand_out() -> Iterator[Event]:
            """Send each idle live rank the first cell that fits on its node now."""
            for rank in ranks:
                if rank in busy or rank in self.job.lost or not todo:
                    continue
                picked = placer.take(rank, todo, last.get(rank))
                if picked is not None:
                    busy[rank] = picked
                    last[rank] = picked[1]
                    self.world.send((picked[0], placer.for_rank(rank, picked[1])), dest=rank,
                                    tag=TAG_CELL)
                    wait.reset()
                    yield Started(picked[0])

        yield from hand_out()
        while busy or todo:
            if not busy:  # nothing runs, so nothing left fits a live rank's node now
                yield from self._unplaced(todo)
                return
            # Poll rather than block in MPI: a blocked receive would hold back Ctrl-C and
            # SIGTERM until the next message arrives, and could not notice a lost rank.
            if self.world.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
                rank, tag = status.Get_source(), status.Get_tag()
                message = self.world.recv(source=rank, tag=tag)
                self._heard[rank] = time.monotonic()
                if tag == TAG_RESULT and rank in busy:
                    cell, where = busy.pop(rank)
                    placer.give(rank, where)
                    yield Finished(cell, message)
                    yield from hand_out()
                wait.reset()
                continue
            now = time.monotonic()
            for rank in [r for r in busy if now - self._heard[r] > silence]:
                self.job.lost.add(rank)
                cell, where = busy.pop(rank)
                placer.give(rank, where)
                yield Finished(cell, self._lost(cell, rank, now - self._heard[rank]))
                yield from hand_out()
            wait.wait()

    def _greet(self, ranks: range, status: Any, wait: Backoff) -> None:
        """Wait for every worker rank's :class:`Hello` (a rank silent for
        ``lost_after_s()`` meanwhile is lost)."""
        from mpi4py import MPI

        silence = lost_after_s()
        while len(self._hellos) + len(self.job.lost) < len(ranks):
            if self.world.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_HELLO, status=status):
                rank = status.Get_source()
                self._hellos[rank] = self.world.recv(source=rank, tag=TAG_HELLO)
                self._heard[rank] = time.monotonic()
                continue
            now = time.monotonic()
            self.job.lost.update(r for r in ranks if r not in self._hellos
                                 and now - self._heard[r] > silence)
            wait.wait()

    def _unplaced(self, todo: list[Cell]) -> Iterator[Event]:
        """The cells no live rank can take, once nothing runs any more (ranks were lost):
        each ends as ``skipped`` with the reason, and the next run runs it."""
        now = datetime.now(UTC)
        lost = ", ".join(map(str, sorted(self.job.lost)))
        alive = self.world.Get_size() - 1 - len(self.job.lost)
        why = (f"NoWorkers: every MPI worker rank ({lost}) was lost before this cell was "
               "handed out" if not alive else f"NoWorkers: no live MPI rank's node can hold "
               f"this cell since rank(s) {lost} were lost")
        for cell in todo:
            yield Started(cell)
            yield Finished(cell, CellResult(cell_id=cell.cell_id, status=SKIPPED,
                                            backend=self.name, finished_at=now,
                                            error=f"{why}; the next run runs it"))
        todo.clear()

    def _lost(self, cell: Cell, rank: int, silent_s: float) -> CellResult:
        now = datetime.now(UTC)
        return CellResult(cell_id=cell.cell_id, status=ERROR, rank=rank, backend=self.name,
                          finished_at=now, error=f"RankLost: MPI rank {rank} stopped "
                          f"answering ({silent_s:.0f} s without a heartbeat) while running "
                          "this cell; rerun with --retry-failed")

    def _run_here(self, cells: Sequence[Cell]) -> Iterator[Event]:
        """One rank: run the cells one after another on this node, placed as anywhere."""
        self._local = _cell_worker(0, self.log_dir)
        node = Node.here()
        todo, skipped = set_aside_too_large(
            cells, lambda r: too_large(r, len(node.cores), len(node.gpus)), self.name)
        yield from skipped
        for cell in todo:
            yield Started(cell)
            with stopping.interruptible():  # the cell is noted in flight by now
                result = self._local.execute(cell, Allocator(node).take(cell.resources))
            yield Finished(cell, replace(result, rank=0))

    def close(self) -> None:
        if self._local is not None:
            self._local.stop()
        self.job.release_workers()

