"""The executor protocol: give it cells, get events back as cells start and finish.

Every backend (``local``, ``ray``, …) implements :meth:`Executor.run` and passes the same
behavioural test suite (tests/test_executors.py): same statuses and metrics for the same
grid, timeouts and failures captured, interruption safe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..cell import Cell, Resources
from ..placement import skipped_too_large
from ..result import CellResult


@dataclass(frozen=True)
class Started:
    """A cell began running (as far as the backend can tell)."""

    cell: Cell


@dataclass(frozen=True)
class Finished:
    """A cell ended; ``result`` says how."""

    cell: Cell
    result: CellResult


Event = Started | Finished


def set_aside_too_large(cells: Sequence[Cell], reason: Callable[[Resources], str | None],
                        backend: str) -> tuple[list[Cell], list[Event]]:
    """``cells`` split into those a node can hold (in order) and the events that record each
    of the others ``skipped`` with ``reason``'s text (``placement.too_large`` for the
    backend's nodes)."""
    fit: list[Cell] = []
    events: list[Event] = []
    for cell in cells:
        why = reason(cell.resources)
        if why:
            events += [Started(cell), Finished(cell, skipped_too_large(cell, why, backend))]
        else:
            fit.append(cell)
    return fit, events


class Executor(ABC):
    """Runs cells somewhere and reports back. Use as a context manager so that workers are
    released (and in-flight cells killed) on any exit, including Ctrl-C."""

    name: str = "executor"

    @abstractmethod
    def run(self, cells: Sequence[Cell]) -> Iterator[Event]:
        """Yield a :class:`Started` and then a :class:`Finished` event for every cell, in
        completion order. Never raises because of a cell."""

    @abstractmethod
    def close(self) -> None:
        """Stop every worker; in-flight cells are abandoned (they leave no row)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
