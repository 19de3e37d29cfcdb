"""A supervised worker process that runs cells one at a time, killable per cell.

Every executor (local pool, Ray actor, MPI rank) runs cells through a :class:`CellWorker`:
a child Python process (``python -m harness.worker``) that has already imported torch and
the plug-ins, fed cells over a pipe. The supervisor enforces each cell's ``timeout_s`` by
killing the child's whole process group, turns a crash of the child into a result, and
starts a fresh child for the next cell. The child dies with its supervisor (Linux
``PR_SET_PDEATHSIG``), so a ``kill -9`` of the driver leaves no orphan computing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

from . import location
from .cell import Cell
from .placement import Placement
from .result import ERROR, OOM, PREEMPTED, TIMEOUT, CellResult

STARTUP_TIMEOUT_S = 300.0
_ENV_KEYS_PINNED = ("CUDA_VISIBLE_DEVICES",)  # a change forces a fresh child


class CellWorker:
    """Runs cells in a child process; ``execute`` returns a result whatever happens."""

    def __init__(self, label: str, *, backend: str, log_path: Path | None = None,
                 env: dict[str, str] | None = None):
        self.label, self.backend, self.log_path = label, backend, log_path
        self.extra_env = dict(env or {})
        self._proc: subprocess.Popen | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None
        self._ready = False
        self._child_env: dict[str, str | None] = {}
        self._where: Placement | None = None  # of the cell being run
        self._stopping = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the child (it imports torch in the background of the caller's work); a
        running child is kept unless the environment it needs changed (its GPUs)."""
        if self._proc is not None and self._proc.poll() is None:
            if self._child_env == self._wanted_env():
                return
            self.stop()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # GPU ids in PCI bus order, as nvidia-smi numbers them (location.gpu_keys)
        env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", **os.environ, **self.extra_env,
               "HARNESS_WORKER": self.label}
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "harness.worker", str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), env=env, stdin=subprocess.DEVNULL,
                stdout=out or sys.stderr, stderr=subprocess.STDOUT if out else None,
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
        finally:
            if out:
                out.close()
            os.close(to_child_r)
            os.close(from_child_w)
        self._send = Connection(to_child_w, readable=False)
        self._recv = Connection(from_child_r, writable=False)
        self._ready = False
        self._child_env = self._wanted_env()

    def _wanted_env(self) -> dict[str, str | None]:
        # CUDA cannot change its devices once initialised: a change needs a fresh child
        return {**{k: os.environ.get(k) for k in _ENV_KEYS_PINNED}, **self.extra_env}

    def stop(self) -> None:
        """Kill the child (and anything it started) and release the pipes. Thread-safe:
        the executor stops workers from the main thread while their own thread may be
        stopping them after a failed cell."""
        with self._stopping:
            proc, conns = self._proc, (self._send, self._recv)
            self._proc = self._send = self._recv = None
            self._ready = False
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    proc.kill()
            proc.wait()
        for conn in conns:
            if conn is not None:
                conn.close()

    def _exit_code(self, wait_s: float = 2.0) -> int | None:
        """The child's exit code; it may take a moment to exit after closing its pipe."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None

    def _wait_ready(self) -> str | None:
        """Wait for the child's greeting; the reason it failed, or None."""
        if self._ready:
            return None
        assert self._recv is not None
        if self._recv.poll(STARTUP_TIMEOUT_S):
            try:
                if self._recv.recv() == "ready":
                    self._ready = True
                    return None
            except EOFError:
                pass
        return f"the worker process did not start (exit code {self._exit_code()})"

    # -- running cells -----------------------------------------------------------------
    def execute(self, cell: Cell, where: Placement | None = None) -> CellResult:
        """Run ``cell`` in the child under its timeout; never raises for the cell's sake.
        ``where``: the cores and GPUs it holds (the child is pinned to them); None leaves
        the child where its parent put it (Ray's own placement)."""
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        self._where = where
        if where is not None:
            self.extra_env["CUDA_VISIBLE_DEVICES"] = where.cuda_visible_devices
        try:
            return self._execute(cell, where)
        except Exception as err:  # e.g. the worker was stopped from another thread
            self.stop()
            return self._failed(cell, ERROR, f"WorkerError: {type(err).__name__}: {err}",
                                started, t0)

    def _execute(self, cell: Cell, where: Placement | None) -> CellResult:
        self.start()
        problem = self._wait_ready()
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        if problem is None:
            try:
                self._send.send((cell, self.backend, self.label, where))
            except (BrokenPipeError, OSError) as err:
                problem = f"could not hand the cell to the worker ({err})"
        if problem is not None:
            code = self._exit_code()
            self.stop()
            if code == -signal.SIGTERM:
                return self._preempted(cell, started, t0)
            return self._failed(cell, ERROR, f"WorkerError: {problem}", started, t0)
        if self._recv.poll(cell.resources.timeout_s):
            try:
                return self._recv.recv()
            except (EOFError, OSError):
                return self._crashed(cell, started, t0)
        self.stop()
        return self._failed(
            cell, TIMEOUT, f"TimeoutError: the cell ran longer than timeout_s="
                           f"{cell.resources.timeout_s:g} s and was killed", started, t0)

    def _crashed(self, cell: Cell, started: datetime, t0: float) -> CellResult:
        code = self._proc.wait() if self._proc else None
        self.stop()
        if code == -signal.SIGKILL:
            return self._failed(cell, OOM, "WorkerKilled: the worker process was killed by "
                                "SIGKILL (most likely the kernel's out-of-memory killer)",
                                started, t0)
        if code == -signal.SIGTERM:
            return self._preempted(cell, started, t0)
        how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
        return self._failed(cell, ERROR, f"WorkerCrashed: the worker process died ({how})",
                            started, t0)

    def _preempted(self, cell: Cell, started: datetime, t0: float) -> CellResult:
        # Slurm signals every process of a job it preempts, this worker's child included:
        # the cell did not fail, it is rerun by default.
        return self._failed(cell, PREEMPTED, "Preempted: the worker process was stopped by "
                            "SIGTERM (preemption, time limit or scancel)", started, t0)

    def _failed(self, cell: Cell, status: str, error: str, started: datetime,
                t0: float) -> CellResult:
        return CellResult(
            cell_id=cell.cell_id, status=status, error=error, started_at=started,
            finished_at=datetime.now(UTC), wall_s=time.perf_counter() - t0,
            **location.here(), worker=self.label, backend=self.backend,
            **(self._where.as_columns() if self._where else {}),
        )


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return


def _child_main(in_fd: int, out_fd: int) -> None:
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    recv, send = Connection(in_fd, writable=False), Connection(out_fd, readable=False)
    from . import registry
    from .placement import pin_process
    from .runner import run_cell

    registry.load_plugins()  # imports torch and every plug-in once, before the first cell
    send.send("ready")
    while True:
        try:
            cell, backend, label, where = recv.recv()
        except (EOFError, OSError):
            break
        if where is not None and where.pinned:
            pin_process(where.cores)
        send.send(run_cell(cell, backend=backend, worker=label, where=where))


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), int(sys.argv[2]))
