"""``harness run GRID --until-conclusive``: seeds bought where a verdict is still open.

The grid's own seeds run first. Then, round by round, the claims are judged exactly as the
report judges them (:func:`harness.report.folder_verdicts`), each at the level of the look
its seeds reach in a group-sequential design (:mod:`harness.sequential`); a claim that is
settled either way stops there, one at the most seeds stops there, and every claim still
open is a candidate for the next batch: the cells of its scope (the cells its check
selected) at the seeds of its next look. Candidates are bought in the order of the
chance that the next look settles them per predicted CPU-second (:mod:`harness.cost`),
while the budget allows; what the budget cannot buy stops at ``budget``.

Why this keeps each wrong verdict at most 2.5%: a claim's looks are fixed when it is first
judged (its seeds then, then every ``batch`` up to the most seeds), and the boundaries of
those looks spend 2.5% per side in all; the order of buying (which depends on every
claim's interim results) decides only when a claim's next look comes, never where its
looks are or what they may conclude. A look skipped (another claim bought more seeds for
the same cells) spends nothing, and a claim between two looks is judged at the earlier
one's level, which errs on the safe side.

Every bought cell is an ordinary cell with its own id; the plan (:mod:`harness.looks`) is
saved before a batch runs, so a killed run rerun with the same command runs the same
cells and reaches the same decisions: nothing is lost, nothing runs twice.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sp

from . import looks
from .cell import Cell, with_seed
from .errors import InputError
from .estimate import Budget, makespan
from .folder import OutputFolder
from .grid import Grid, run_order
from .looks import BUDGET, CONCLUSIVE, MAX_SEEDS, NOTHING_TO_BUY, SETTLED, ClaimState, LookPlan
from .sequential import Design
from .stats import _SCALES

NOT_COVERED = ("no data", "refused")  # the grid cannot judge these: they buy nothing
JUDGING_S = 10.0  # run time a round of judging costs, counted against a run-time budget


@dataclass(frozen=True)
class Candidate:
    """An open claim's next look: the cells it needs that do not exist yet and their
    chance per CPU-second of settling the claim."""

    key: str
    cells: tuple[Cell, ...]
    seeds: int
    chance: float
    cpu_s: float

    @property
    def priority(self) -> float:
        return self.chance / max(self.cpu_s, 1.0)


def _grid_with(grid: Grid, bought: Sequence[Cell]) -> Grid:
    """The grid and the cells bought so far, as one grid in the run order."""
    known = {c.cell_id for c in grid.cells}
    extra = [c for c in bought if c.cell_id not in known]
    return replace(grid, cells=run_order([*grid.cells, *extra], grid.order)) if extra else grid


def _open_plan(folder: OutputFolder, grid: Grid, *, spending: str, batch: int, most: int,
               budget: Budget | None) -> LookPlan:
    """The folder's saved plan (a resumed run), checked against these settings, or a new
    one. The looks are fixed when planned: a changed design is refused, not followed."""
    plan = looks.load(folder)
    if plan is None:
        return LookPlan(spending=spending, batch=batch, most=most,
                        budget=budget.text if budget else None,
                        grid_sha256=looks.grid_hash(grid.text))
    saved = {"--max-seeds": (plan.most, most), "--batch": (plan.batch, batch),
             "--spending": (plan.spending, spending)}
    for flag, (was, now) in saved.items():
        if was != now:
            raise InputError(f"{flag} {now} differs from the plan this folder was run "
                             f"with ({was}): the looks of a run until conclusive are fixed "
                             f"when it starts, so its error rates hold; rerun with {flag} "
                             f"{was}, or into a new folder", file=str(folder.looks_file))
    if plan.grid_sha256 != looks.grid_hash(grid.text):
        raise InputError("the grid differs from the one this folder was run until "
                         "conclusive with: its claims' looks were planned on that grid's "
                         "seeds; run the changed grid into a new folder",
                         file=str(folder.looks_file))
    plan.budget = budget.text if budget else None
    return plan


def _seed_sequence(grid: Grid) -> Callable[[int], int]:
    """The i-th seed a claim may use: the grid's seeds in order, then the next integers."""
    given = sorted({c.seed for c in grid.cells})
    return lambda i: given[i] if i < len(given) else given[-1] + 1 + i - len(given)


def _chance(est, threshold: float | None, n_next: int, bound: float) -> float:
    """The chance that the look at ``n_next`` seeds settles a claim whose per-seed sample
    is ``est.sample``: the normal approximation of P(|t| > bound) with the sample's mean
    and spread (0.5 when the claim has no single threshold or no spread to go on)."""
    if est is None or threshold is None or est.kind not in _SCALES or len(est.sample) < 2:
        return 0.5
    x = np.asarray(est.sample, dtype=float)
    spread = float(np.std(x, ddof=1))
    try:
        t0 = _SCALES[est.kind][0](float(threshold))
    except ValueError:
        return 0.5
    if spread <= 0 or not math.isfinite(t0):
        return 0.5
    z = abs(float(np.mean(x)) - t0) / (spread / math.sqrt(n_next))
    return float(sp.norm.cdf(z - bound))


class _Round:
    """What one round of judging found, and what it could buy."""

    def __init__(self, plan: LookPlan, grid: Grid, cells: pd.DataFrame):
        self.plan, self.grid = plan, grid
        self.by_id = {c.cell_id: c for c in grid.cells}
        self.cpu_h = dict(zip(cells["cell_id"], cells["cpu_hours"], strict=True)) if len(
            cells) else {}
        self.seed_at = _seed_sequence(grid)

    def update(self, verdicts: list) -> list:
        """Record every covered claim's state; return the verdicts of those still open."""
        open_ = []
        for v in verdicts:
            j = v.judged
            if j is None or v.outcome in NOT_COVERED:
                continue
            state = self.plan.claims.get(j.key)
            if state is None:
                state = self.plan.claims[j.key] = ClaimState(label=v.label or v.claim,
                                                             first=len(j.seeds))
            if state.stopped:
                continue
            state.seeds, state.outcome = list(j.seeds), v.outcome
            state.cpu_hours = float(sum(self.cpu_h.get(c, 0.0) or 0.0 for c in j.cells))
            if v.outcome in SETTLED:
                state.stopped = CONCLUSIVE
            elif len(j.seeds) >= self.plan.most:
                state.stopped = MAX_SEEDS
            else:
                open_.append(v)
            if state.stopped:
                state.bought_at = len(self.plan.bought)
        return open_

    def candidate(self, v, predict: Callable[[Cell], float]) -> Candidate | None:
        """The cells the open claim of verdict ``v`` needs for its next look."""
        j, state = v.judged, self.plan.claims[v.judged.key]
        n_next = self.plan.next_look(state.first, len(j.seeds))
        if n_next is None:
            return None
        seeds, i = list(j.seeds), 0
        while len(seeds) < n_next:
            s = self.seed_at(i)
            if s not in seeds:
                seeds.append(s)
            i += 1
        templates = {}
        for cell_id in j.cells:
            cell = self.by_id.get(cell_id)
            if cell is not None:
                templates.setdefault((cell.problem, cell.params_json, cell.strategy), cell)
        wanted = [with_seed(t, s) for t in templates.values() for s in seeds]
        new = tuple(c for c in wanted if c.cell_id not in self.by_id)
        if not new:
            return None
        looks_ = self.plan.looks(state.first)
        bound = Design.at(looks_, self.plan.spending).bounds[looks_.index(n_next)]
        chance = _chance(j.estimate, j.threshold, n_next, bound)
        return Candidate(j.key, new, n_next, chance,
                         sum(predict(c) * c.resources.cpus for c in new))


def choose(candidates: list[Candidate], fits: Callable[[list[Cell]], bool]
           ) -> list[Candidate]:
    """The candidates bought this round: by priority (chance per CPU-second), each while
    ``fits`` says the cells chosen so far and its own are within the budget."""
    chosen: list[Candidate] = []
    cells: dict[str, Cell] = {}
    for cand in sorted(candidates, key=lambda c: (-c.priority, c.key)):
        more = {c.cell_id: c for c in cand.cells if c.cell_id not in cells}
        if fits([*cells.values(), *more.values()]):
            chosen.append(cand)
            cells.update(more)
    return chosen


@dataclass
class Outcome:
    """How a run until conclusive ended: the last run's summary, the plan, the rounds."""

    summary: object
    plan: LookPlan
    bought_now: int  # cells bought by this invocation
    ran: int  # cells run by this invocation, over all its rounds


def run_until_conclusive(grid: Grid, out: str | Path, *, budget: Budget | None, most: int,
                         batch: int, spending: str = "pocock", backend: str, workers: int | None,
                         address: str | None, retry_failed: bool, force: bool,
                         progress: bool | None, claim_dirs: tuple[str, ...] = (),
                         say: Callable[[str], None] = print) -> Outcome:
    """Run ``grid`` into ``out``, then buy seeds for open claims until each is settled,
    at ``most`` seeds, or out of ``budget`` (see the module's docstring)."""
    from .cost import CostModel
    from .driver import run_grid
    from .executors import make_executor
    from .report import folder_verdicts
    from .store import Store

    folder = OutputFolder(out)
    plan = _open_plan(folder, grid, spending=spending, batch=batch, most=most, budget=budget)
    slots = workers or os.cpu_count() or 1
    bought_now, ran, first_round = 0, 0, True
    with make_executor(backend, workers=workers, address=address,
                       log_dir=folder.logs_dir) as executor:
        while True:
            started = time.monotonic()
            full = _grid_with(grid, plan.bought_cells())
            # --force and --retry-failed are for the grid's own round of a new plan: a
            # resumed run must not rerun what its claims were judged on
            fresh = first_round and not plan.bought
            summary = run_grid(full, out, backend=backend, workers=workers, address=address,
                               retry_failed=retry_failed and fresh, force=force and fresh,
                               progress=progress, executor=executor)
            first_round, ran = False, ran + summary.ran
            looks.save(folder, plan)  # the judging below reads it from the folder
            verdicts = folder_verdicts(out, claim_dirs)
            cells = Store(out).cells(core_only=True)
            now = _Round(plan, full, cells)
            open_ = now.update(verdicts)
            plan.spent_s += time.monotonic() - started
            if not open_:
                looks.save(folder, plan)
                break
            predict = _predictor(CostModel.from_folders([out]))
            cands = [c for c in (now.candidate(v, predict) for v in open_) if c]
            spent = {unit: float(cells[f"{unit[:3]}_hours"].fillna(0).sum()) if len(cells)
                     else 0.0 for unit in ("cpu-h", "gpu-h")}
            chosen = choose(cands, _fits(budget, plan, spent, slots, predict))
            if not chosen:
                for v in open_:
                    state = plan.claims[v.judged.key]
                    state.stopped = BUDGET if cands else NOTHING_TO_BUY
                    state.bought_at = len(plan.bought)
                looks.save(folder, plan)
                break
            new = {c.cell_id: c for cand in chosen for c in cand.cells}
            plan.bought += [asdict(c) for c in new.values()]
            plan.rounds += 1
            bought_now += len(new)
            looks.save(folder, plan)  # before the batch runs: a rerun resumes this plan
            settled = sum(1 for s in plan.claims.values() if s.stopped)
            say(f"look {plan.rounds}: {settled} of {len(plan.claims)} claims stopped; "
                f"{len(chosen)} open claim(s) buy {len(new)} cells (seeds up to "
                f"{max(c.seeds for c in chosen)})")
    return Outcome(summary, plan, bought_now, ran)


def _predictor(model) -> Callable[[Cell], float]:
    """A cell's predicted wall seconds (harness.cost)."""
    return lambda cell: model.predict(cell).wall_s


def _fits(budget: Budget | None, plan: LookPlan, spent: dict[str, float], slots: int,
          predict: Callable[[Cell], float]) -> Callable[[list[Cell]], bool]:
    """Whether buying ``cells`` keeps the run within ``budget`` (always, without one)."""
    def fits(cells: list[Cell]) -> bool:
        if budget is None:
            return True
        if budget.unit == "wall":
            run_s = makespan([predict(c) for c in cells], [c.resources.cpus for c in cells],
                             slots)
            return plan.spent_s + run_s + JUDGING_S <= budget.amount
        hours = sum(predict(c) * (c.resources.cpus if budget.unit == "cpu-h"
                                  else c.resources.gpus) for c in cells) / 3600
        return spent[budget.unit] + hours <= budget.amount
    return fits
