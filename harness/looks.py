"""The plan of a run until conclusive (``harness run --until-conclusive``), saved in the
output folder as ``conclusive.json``: the group-sequential design (spending function, batch,
most seeds), the budget, every cell bought beyond the grid's seeds, and each claim's state —
the seeds of its first look, the seeds it was last judged on, its verdict, why it stopped.

The plan is plain JSON so that ``harness status`` reads it without importing a plug-in. The
report reads it too: a folder run until conclusive is judged look by look (each claim at the
level of the look its seeds reach, :mod:`harness.sequential`), and a claim that stopped is
judged on the seeds it stopped at, whatever other claims bought later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from . import atomic
from .cell import Cell, Resources
from .errors import DataError
from .folder import OutputFolder, read_json

CONCLUSIVE, MAX_SEEDS, BUDGET = "conclusive", "max seeds", "budget"
NOTHING_TO_BUY = "nothing to buy"  # its next look's cells exist already (they failed)
STOPS = (CONCLUSIVE, MAX_SEEDS, BUDGET, NOTHING_TO_BUY)
SETTLED = ("reproduced", "not reproduced", "partly reproduced")  # a verdict either way


@dataclass
class ClaimState:
    """Where one claim (one verdict of the report) stands: ``first`` the seeds of its first
    look; ``seeds`` those it was last judged on; its ``outcome`` then; ``stopped`` one of
    :data:`STOPS`, or "" while it may still buy seeds; ``cpu_hours`` of its cells."""

    label: str
    first: int
    seeds: list[int] = field(default_factory=list)
    outcome: str = ""
    stopped: str = ""
    cpu_hours: float = 0.0
    bought_at: int = 0  # cells bought (the plan's count) when it stopped: those it saw


@dataclass
class LookPlan:
    """A run until conclusive: its design, budget, what it bought, and its claims."""

    spending: str
    batch: int
    most: int
    budget: str | None
    grid_sha256: str
    claims: dict[str, ClaimState] = field(default_factory=dict)
    bought: list[dict[str, Any]] = field(default_factory=list)  # cells, as asdict(Cell)
    spent_s: float = 0.0  # wall seconds of this run so far, summed over resumes
    rounds: int = 0
    bounds: dict[str, list[float]] = field(default_factory=dict)  # sequential.KNOWN

    def __post_init__(self) -> None:
        from .sequential import SPENDING  # numpy and scipy: not for harness status

        if self.spending not in SPENDING:
            raise ValueError(f"spending {self.spending!r}; one of {', '.join(SPENDING)}")

    def describe(self) -> str:
        """The design in words, as the report and status print it."""
        spent = f"; budget {self.budget}" if self.budget else "; no budget"
        return (f"group-sequential design, Lan-DeMets alpha spending ({self.spending} type), "
                f"2.5% per side; looks every {self.batch} seed(s) from each claim's first up "
                f"to {self.most}{spent}")

    def looks(self, first: int) -> tuple[int, ...]:
        """The look sizes of a claim whose first look had ``first`` seeds (at least 2,
        the fewest a t interval needs; at most the most seeds)."""
        from .sequential import schedule

        start = min(max(2, first), self.most)
        return schedule(start, self.batch, self.most)

    def next_look(self, first: int, n: int) -> int | None:
        """The seeds of the next look after ``n`` seeds, or None at the last."""
        later = [size for size in self.looks(first) if size > n]
        return later[0] if later else None

    def bought_after(self, state: ClaimState) -> set[str]:
        """The cells bought after the claim of ``state`` stopped: its verdict is the one
        it stopped with, so a report leaves them (and what they change, such as the worst
        value a failed cell is counted as) out of it."""
        return {c["cell_id"] for c in self.bought[state.bought_at:]}

    def bought_cells(self) -> list[Cell]:
        return [Cell(**{**c, "resources": Resources(**c["resources"])}) for c in self.bought]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LookPlan:
        claims = {k: ClaimState(**v) for k, v in data.get("claims", {}).items()}
        return cls(**{**data, "claims": claims})


def grid_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load(folder: OutputFolder) -> LookPlan | None:
    """The folder's plan, or None when it was not run until conclusive. A plan that cannot
    be read is a :class:`DataError` (its looks decide the verdicts: they are never guessed)."""
    path = folder.looks_file
    if not path.exists():
        return None
    data = read_json(path)
    try:
        plan = LookPlan.from_json(data)
        from .sequential import KNOWN

        KNOWN.update({k: tuple(map(float, v)) for k, v in plan.bounds.items()})
        return plan
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise DataError(f"{path}: not a run-until-conclusive plan ({err}); it records the "
                        f"design and each claim's looks, and the verdicts depend on it: "
                        f"restore it, or rerun into a new folder") from None


def save(folder: OutputFolder, plan: LookPlan) -> None:
    """Write the plan atomically (a crash leaves the old plan or the new, never half), with
    the boundaries of every design its claims were judged with."""
    from .sequential import KNOWN

    plan.bounds.update({k: list(v) for k, v in KNOWN.items() if k.startswith(
        f"{plan.spending}|")})
    atomic.write_text(folder.looks_file, json.dumps(plan.to_json(), indent=1))
