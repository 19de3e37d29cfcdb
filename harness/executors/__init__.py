"""Executors: where cells run. ``make_executor`` builds one by backend name."""

from __future__ import annotations

from pathlib import Path

from .base import Event, Executor, Finished, Started

BACKENDS = ("ray", "local", "mpi")
DEFAULT_BACKEND = "ray"


def make_executor(backend: str, *, workers: int | None = None, address: str | None = None,
                  log_dir: Path | None = None) -> Executor:
    """The executor for ``backend`` ('ray', 'local' or 'mpi'; for mpi, on rank 0)."""
    if backend == "local":
        from .local import LocalExecutor

        return LocalExecutor(workers=workers, log_dir=log_dir)
    if backend == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(address=address, workers=workers)
    if backend == "mpi":
        from .mpi_executor import MPIExecutor

        return MPIExecutor(log_dir=log_dir)
    raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Event", "Executor", "Finished", "Started",
           "make_executor"]
