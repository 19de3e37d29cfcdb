"""Shards: a deterministic split of a grid's cells into N disjoint parts.

Block b of the grid (the cells of one problem instance and seed, which run side by side;
``harness.grid.run_order``) belongs to shard ``b mod N``: a pair a claim compares is never
split between two tasks, each shard gets a slice of every experiment (cheap and expensive
cells mix), and the split depends only on the grid. Slurm array task k runs shard k/N
(``harness run --shard k/N``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from .errors import InputError

T = TypeVar("T")
_SHARD = re.compile(r"^(\d+)/(\d+)$")


def shard_of(block: int, count: int) -> int:
    """The shard (of ``count``) that the cells of ``block`` belong to."""
    return block % count


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 ≤ index < count)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str, *, source: str = "--shard") -> Shard:
        """``"I/N"`` → Shard(I, N); an InputError naming the flag and value otherwise."""
        m = _SHARD.match(text.strip())
        if not m or int(m[2]) < 1 or int(m[1]) >= int(m[2]):
            raise InputError(f"{source} {text!r} is not allowed; allowed: I/N with integers "
                             f"0 ≤ I < N, e.g. 0/4", file="harness run")
        return cls(int(m[1]), int(m[2]))

    def select(self, cells: Sequence[T]) -> list[T]:
        """The cells of this shard (whole blocks), in their order."""
        return [c for c in cells if shard_of(c.block, self.count) == self.index]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
