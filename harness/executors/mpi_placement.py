"""Rank 0's view of its MPI worker ranks: which node each is on, what it may use, and what
is free on each node (placement under ``--backend mpi``; the rule: harness/placement.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

from ..cell import Cell, Resources
from ..placement import Allocator, Node, Placement, first_fitting, too_large


@dataclass(frozen=True)
class Hello:
    """What a worker rank reports when it starts: its node and what it may use there.
    ``gpus`` are the ids the rank itself uses (``CUDA_VISIBLE_DEVICES``), ``gpu_keys``
    the same GPUs' node-wide identities (UUIDs when ``nvidia-smi`` says, else the ids)."""

    node: str
    cores: tuple[int, ...]
    gpus: tuple[str, ...]
    gpu_keys: tuple[str, ...]
    pin: bool = True  # the cores are the rank's own (harness.placement.owned_cores)
    note: str | None = None  # why placement on its node is not enforced


class RankPlacer:
    """One :class:`~harness.placement.Allocator` per node, pooled over the ranks on it.

    Cores are pooled per node, GPUs too, by identity: ranks that see the same GPUs share
    them (one launcher on a GPU box), ranks bound to their own GPUs by Slurm (each may
    call its GPU "0") keep them apart; a rank only ever takes GPUs it can see."""

    def __init__(self, hellos: dict[int, Hello]):
        by_node: dict[str, list[int]] = defaultdict(list)
        for rank, hello in sorted(hellos.items()):
            by_node[hello.node].append(rank)
        self.node_of = {rank: hello.node for rank, hello in hellos.items()}
        self.allowed = {rank: hello.gpu_keys for rank, hello in hellos.items()}
        # rank → GPU key → the rank's own id for it
        self._local = {rank: dict(zip(h.gpu_keys, h.gpus, strict=True))
                       for rank, h in hellos.items()}
        self.alloc: dict[str, Allocator] = {}
        for node, ranks in by_node.items():
            cores = sorted(set().union(*(hellos[r].cores for r in ranks)))
            keys = list(dict.fromkeys(k for r in ranks for k in hellos[r].gpu_keys))
            notes = [hellos[r].note for r in ranks if hellos[r].note]
            self.alloc[node] = Allocator(Node(
                cores=tuple(cores), gpus=tuple(keys),
                pin=all(hellos[r].pin for r in ranks), note=notes[0] if notes else None))

    def too_large(self, res: Resources) -> str | None:
        """Why no rank of the job can ever hold ``res``, or None."""
        fits = [too_large(res, len(self.alloc[self.node_of[r]].node.cores),
                          len(self.allowed[r])) is None for r in self.node_of]
        if any(fits):
            return None
        cores = max(len(a.node.cores) for a in self.alloc.values())
        gpus = max(len(g) for g in self.allowed.values())
        return too_large(res, cores, gpus, "the largest node of this MPI job") or (
            f"asks for {res.cpus} CPUs and {res.gpus:g} GPUs; no node of this MPI job has "
            "both")

    def take(self, rank: int, todo: list[Cell],
             prefer: Placement | None) -> tuple[Cell, Placement] | None:
        """The first cell of ``todo`` that ``rank`` can run now, with its placement (GPU
        keys of this placer; :meth:`for_rank` turns them into the rank's own ids)."""
        return first_fitting(todo, self.alloc[self.node_of[rank]], prefer,
                             self.allowed[rank])

    def give(self, rank: int, placement: Placement) -> None:
        """Release what the cell ``rank`` ran held."""
        self.alloc[self.node_of[rank]].give(placement)

    def for_rank(self, rank: int, placement: Placement) -> Placement:
        """``placement`` with the GPU ids as ``rank`` itself sees them."""
        local = self._local[rank]
        return replace(placement, gpus=tuple(local[g] for g in placement.gpus))
