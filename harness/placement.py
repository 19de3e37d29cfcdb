"""Placement: which cores and GPUs of a node a cell gets, the same rule on every backend.

A cell asks for ``cpus`` cores and ``gpus`` GPUs (its resource keys, docs/grid.md). On ``local`` and
``mpi`` the executor keeps one :class:`Allocator` per node and runs a cell only when that
many cores and GPUs are free there; the cell gets disjoint cores (its process and all its
threads are pinned to them, :func:`pin_process`) and its own GPUs (``CUDA_VISIBLE_DEVICES``
of its worker; a cell with ``gpus: 0`` sees none). A whole number of GPUs is exclusive; a
fraction below one shares a GPU with other fractions up to a total of one, as under Ray.
A cell larger than the node is never run: it is ``skipped`` with :func:`too_large`'s
reason. Every row records what its process could use (``cores``, ``gpu_ids``), read back
from the process itself by :func:`observed`, on every backend.

Pinning is honest only to cores the process owns (:func:`owned_cores`): outside a batch
job, its CPU affinity (a ``taskset`` narrows it); under Slurm, the cores Slurm bound it to.
A Slurm job that was not bound (``TaskPlugin=task/none``: its affinity is the whole node
while it was given fewer CPUs) cannot know which cores are its own; pinning its cells to
the first ones would stack every such job of a node on core 0, so its cells are not
pinned, and their rows say ``placement = unenforced`` with the reason, as do Ray's (Ray
reserves CPUs by count and binds none) and those of a Slurm node that shares its host's
cores with another node. docs/slurm.md says what each task plugin means for timings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from .cell import Cell, Resources
from .location import node_name, nodes_sharing_cores, slurm_task_cpus, visible_gpus
from .result import SKIPPED, CellResult

_EPS = 1e-9
PINNED, UNENFORCED = "pinned", "unenforced"  # values of a row's ``placement``
RAY_NOTE = "Ray reserves CPUs by count and binds no core"


@dataclass(frozen=True)
class Placement:
    """The cores and GPUs one cell holds while it runs."""

    cores: tuple[int, ...]
    gpus: tuple[str, ...] = ()
    gpu_share: float = 0.0  # of each GPU in ``gpus``: 1 for whole GPUs, the fraction else
    pinned: bool = True  # the cell's process is pinned to ``cores`` (cores it owns)
    note: str | None = None  # why placement is not enforced, when it is not

    @property
    def cuda_visible_devices(self) -> str:
        """The value of ``CUDA_VISIBLE_DEVICES`` for the cell's process ("" hides all)."""
        return ",".join(self.gpus)

    def as_columns(self) -> dict[str, str]:
        """``cores`` and ``gpu_ids`` as a row records them (for a cell whose process
        could not report them itself: killed, timed out)."""
        return {"cores": cores_text(self.cores), "gpu_ids": self.cuda_visible_devices,
                **self.columns()}

    def columns(self) -> dict[str, str | None]:
        """``placement`` and ``placement_note`` as a row records them."""
        return placement_columns(self.pinned and self.note is None, self.note)


def placement_columns(enforced: bool, note: str | None) -> dict[str, str | None]:
    """A row's ``placement`` (``pinned`` or ``unenforced``) and ``placement_note`` (why not
    enforced)."""
    return {"placement": PINNED if enforced else UNENFORCED,
            "placement_note": None if enforced else note}


@dataclass(frozen=True)
class Node:
    """What one node offers to cells: core ids and GPU ids."""

    cores: tuple[int, ...]
    gpus: tuple[str, ...] = ()
    pin: bool = True  # the cores are this process's own: cells are pinned to them
    note: str | None = None  # why placement on this node is not enforced (None: it is)

    @classmethod
    def here(cls) -> Node:
        """This process's node as far as it may use it: the cores it owns
        (:func:`owned_cores`) and its visible GPUs."""
        cores, pin, note = owned_cores()
        return cls(cores=cores, gpus=tuple(visible_gpus()), pin=pin, note=note)


def usable_cores() -> set[int]:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def owned_cores() -> tuple[tuple[int, ...], bool, str | None]:
    """(the cores this process may count as its own, whether to pin cells to them, why
    placement is not enforced or None).

    Outside Slurm: its affinity. Under Slurm, a process bound to no more CPUs than its task
    was given owns its affinity (task/affinity or task/cgroup bound it), unless its node
    shares the host's cores with another Slurm node. A process whose affinity is larger
    (task/none) owns *some* of those cores, not known which: it counts the slice of its
    affinity its task index on the node would map to, and pins nothing."""
    mask = tuple(sorted(usable_cores()))
    given = slurm_task_cpus()
    if given is None:
        return mask, True, None
    count, local_index = given
    if len(mask) <= count:
        others = nodes_sharing_cores()
        nodes = ", ".join(sorted({node_name(), *others}))
        note = (f"Slurm nodes {nodes} share one host's cores: jobs on different nodes may "
                "be bound to the same core") if others else None
        return mask, True, note
    start = min(local_index * count, max(0, len(mask) - count))
    note = (f"Slurm gave this task {count} CPU(s) but did not bind it (its affinity is all "
            f"{len(mask)} cores of the node: TaskPlugin task/none?); which cores are its own "
            "is unknown, so cells were not pinned")
    return mask[start:start + count], False, note


def too_large(res: Resources, cores: float, gpus: float, where: str = "this node") -> str | None:
    """Why ``res`` can never be placed on a node of ``cores`` cores and ``gpus`` GPUs (the
    text of a ``skipped`` row), or None when it fits an idle one."""
    if res.cpus > cores:
        return f"asks for {res.cpus} CPUs; {where} has {cores:g}"
    if res.gpus > gpus + _EPS:
        return f"asks for {res.gpus:g} GPUs; {where} has {gpus:g}"
    if res.gpus > 1 and abs(res.gpus - round(res.gpus)) > _EPS:
        return f"asks for {res.gpus:g} GPUs; more than one GPU must be a whole number"
    return None


def skipped_too_large(cell: Cell, reason: str, backend: str) -> CellResult:
    """The ``skipped`` row of a cell that no node can hold (``reason``: :func:`too_large`)."""
    return CellResult(cell_id=cell.cell_id, status=SKIPPED, error=f"Infeasible: {reason}",
                      backend=backend)


@dataclass
class Allocator:
    """The free cores and GPU capacity of one node; ``take`` and ``give`` back."""

    node: Node
    free_cores: set[int] = field(init=False)
    gpu_free: dict[str, float] = field(init=False)  # GPU id → capacity left (0…1)

    def __post_init__(self) -> None:
        self.free_cores = set(self.node.cores)
        self.gpu_free = dict.fromkeys(self.node.gpus, 1.0)

    def take(self, res: Resources, prefer: Placement | None = None,
             allowed: Iterable[str] | None = None) -> Placement | None:
        """Reserve what ``res`` asks for, or None when it is not free now. ``prefer``: a
        placement whose cores and GPUs to reuse when free (a worker keeps its CUDA
        context); ``allowed``: the only GPUs the taker can see (default: all)."""
        if res.cpus > len(self.free_cores):
            return None
        gpus = self._gpus(res.gpus, prefer.gpus if prefer else (),
                          set(self.node.gpus if allowed is None else allowed))
        if gpus is None:
            return None
        cores = self._cores(res.cpus, prefer.cores if prefer else ())
        share = 0.0 if not gpus else (1.0 if res.gpus >= 1 else res.gpus)
        for g in gpus:
            self.gpu_free[g] -= share
        self.free_cores -= set(cores)
        return Placement(cores=cores, gpus=gpus, gpu_share=share, pinned=self.node.pin,
                         note=self.node.note)

    def give(self, placement: Placement) -> None:
        """Release what ``placement`` held."""
        self.free_cores |= set(placement.cores)
        for g in placement.gpus:
            self.gpu_free[g] = min(1.0, self.gpu_free[g] + placement.gpu_share)

    @property
    def idle(self) -> bool:
        """Nothing is held."""
        return len(self.free_cores) == len(self.node.cores) and all(
            v >= 1.0 - _EPS for v in self.gpu_free.values())

    def _cores(self, n: int, prefer: tuple[int, ...]) -> tuple[int, ...]:
        # the worker's previous cores first (warm caches), then the lowest free ids, so
        # that a cell's cores are as contiguous as the free set allows
        mine = [c for c in prefer if c in self.free_cores][:n]
        rest = sorted(self.free_cores - set(mine))
        return tuple(sorted(mine + rest[: n - len(mine)]))

    def _gpus(self, want: float, prefer: tuple[str, ...],
              allowed: set[str]) -> tuple[str, ...] | None:
        if want <= _EPS:
            return ()
        order = sorted((g for g in self.gpu_free if g in allowed),
                       key=lambda g: (g not in prefer, self.node.gpus.index(g)))
        if want < 1:  # a fraction: the preferred, else the fullest GPU it still fits on
            fits = [g for g in order if self.gpu_free[g] >= want - _EPS]
            if not fits:
                return None
            best = min(fits, key=lambda g: (g not in prefer, self.gpu_free[g]))
            return (best,)
        whole = [g for g in order if self.gpu_free[g] >= 1.0 - _EPS][: math.ceil(want - _EPS)]
        return tuple(whole) if len(whole) >= round(want) else None


def first_fitting(todo: list[Cell], alloc: Allocator, prefer: Placement | None,
                  allowed: Iterable[str] | None = None) -> tuple[Cell, Placement] | None:
    """Take the first cell of ``todo`` (grid order) whose resources are free now, with its
    placement; None when none fits until something finishes. ``prefer`` and ``allowed``:
    as :meth:`Allocator.take`."""
    for i, cell in enumerate(todo):
        where = alloc.take(cell.resources, prefer, allowed)
        if where is not None:
            del todo[i]
            return cell, where
    return None


def pin_process(cores: tuple[int, ...]) -> None:
    """Pin this process, every thread it has now and every one it starts later, to
    ``cores`` (Linux; a no-op elsewhere). ``sched_setaffinity(0)`` alone would move only
    the calling thread, not the intra-op threads torch started for an earlier cell."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        return
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cores)
        except (ProcessLookupError, PermissionError):  # a thread that just ended
            continue


def observed() -> dict[str, str | None]:
    """What this process can use, as a row records it: ``cores`` (e.g. "0,1") and
    ``gpu_ids`` (``CUDA_VISIBLE_DEVICES``; "" when it hides every GPU, null when unset)."""
    return {"cores": cores_text(usable_cores()),
            "gpu_ids": os.environ.get("CUDA_VISIBLE_DEVICES")}


def cores_text(cores: Iterable[int]) -> str:
    """Core ids as the ``cores`` column writes them: ascending, comma-separated."""
    return ",".join(str(c) for c in sorted(cores))
