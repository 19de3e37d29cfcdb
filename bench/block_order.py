"""Blocks longest first against the seed-by-seed order: makespan, idle workers, drift.

    .venv/bin/python bench/block_order.py [FOLDER] [--grid grids/demo.yaml] [--reversed]
        [--workers 2 4 8] [--repeats 100] [--no-real]

(a) Simulation. The cells of ``--grid`` get their seconds from the cost model of
``FOLDER`` (default /tmp/demo_old, a real demo run): *predicted* durations, and again
*observed* ones (the folder's own wall time of each cell it ran, the prediction for the
others) with the order still taken from the predictions, so the model's error is in the
figure. Three orders on 2, 4 and 8 workers: *grid* (today's: blocks seed by seed, each
seed in file order), *seed-lpt* (each seed's blocks longest first: what a run with
predictions now does, :func:`harness.grid.longest_first`) and *global-lpt* (every block
longest first, seeds mixed: the alternative). The list schedule hands each cell in order
to the first free worker, as the executors do with one-core cells; its makespan is checked
against :func:`harness.estimate.makespan`. ``--reversed`` takes the grid's experiments in
the reverse order (the demo lists its longest cells first by hand; the same cells listed
the other way round show what the order does for a grid that does not). Printed: makespan,
its lower bound (the work over the workers, or the longest cell), idle worker-seconds at
the end (each worker's wait from its last cell's end to the run's end) and ratios to
*grid*. Then what the order costs in drift: the *spread* (per strategy variant with
several seeds, the time between its first and last cell's start over the makespan,
averaged), and the share of ``harness compare`` A/A comparisons (the same code twice,
``--fail-on-regression 10``) that cry wolf when the machine drifts along wall-clock time
(an Ornstein–Uhlenbeck log factor, sd 10%, correlation time 120 s, independent in the two
runs; 2% noise per cell).

(b) A real run: a small ``probe`` grid of sleeping cells whose blocks differ in length,
the longest last in the file, on the local backend with 2 workers: once into a fresh
folder (no predictions: the grid's order), then into another with the first as
``history`` (longest first). Printed per run: wall time of the call, busy span (first
start to last end), idle worker-seconds at the end, and the ratios.
"""

from __future__ import annotations

import argparse
import heapq
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from harness.cell import Cell, canonical_json
from harness.compare import compare_cells, failed
from harness.cost import DEFAULT, CostModel
from harness.driver import run_grid
from harness.estimate import makespan
from harness.folder import OutputFolder
from harness.grid import load_grid, longest_first, parse_grid
from harness.result import CellResult
from harness.rows import cell_row
from harness.store import load_cells

ROOT = Path(__file__).resolve().parent.parent
PROVENANCE = {"harness_version": "bench", "git_sha": None, "git_dirty": None}
DRIFT_SD, DRIFT_TAU_S, NOISE = 0.10, 120.0, 0.02

# (b): per block (one size, both seeds) the sleeps of its two cells; the grid's order
# ends each seed with its longest block, as a sweep of growing sizes does.
REAL_BLOCKS = [(0.5, 0.5), (1.0, 0.5), (2.0, 1.0), (8.0, 1.0)]


def globally_longest_first(cells: Sequence[Cell], seconds: dict[str, float]) -> list[Cell]:
    """Every block longest first whatever its seed: :func:`longest_first` with the seeds
    made one (each cell then gets its own seed back)."""
    seed = {c.cell_id: c.seed for c in cells}
    merged = longest_first([replace(c, seed=0) for c in cells], seconds)
    return [replace(c, seed=seed[c.cell_id]) for c in merged]


def schedule(cells: Sequence[Cell], seconds: dict[str, float], workers: int
             ) -> tuple[dict[str, float], list[float]]:
    """Each cell's start when every cell goes, in order, to the first free worker, and
    each worker's last end."""
    free = [(0.0, w) for w in range(workers)]
    starts, ends = {}, [0.0] * workers
    for c in cells:
        now, w = heapq.heappop(free)
        starts[c.cell_id], ends[w] = now, now + seconds[c.cell_id]
        heapq.heappush(free, (ends[w], w))
    return starts, ends


def spread(cells: Sequence[Cell], starts: dict[str, float], span: float) -> float:
    """Per variant run at several seeds, the time from its first start to its last over
    the span, averaged: how much of the run's drift a variant's seeds meet."""
    variants: dict[str, list[float]] = {}
    for c in cells:
        key = canonical_json([c.problem, c.problem_params, c.strategy, c.strategy_params])
        variants.setdefault(key, []).append(starts[c.cell_id])
    gaps = [max(s) - min(s) for s in variants.values() if len(s) > 1]
    return float(np.mean(gaps)) / span


def drift(rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    """An Ornstein–Uhlenbeck log factor of the machine at ``times`` (seconds)."""
    out, x, last = np.empty(len(times)), rng.normal(0, DRIFT_SD), 0.0
    for i in np.argsort(times):
        phi = np.exp(-(times[i] - last) / DRIFT_TAU_S)
        x = phi * x + rng.normal(0, DRIFT_SD * np.sqrt(1 - phi**2))
        out[i], last = x, times[i]
    return out


def false_alarms(cells: Sequence[Cell], starts: dict[str, float], seconds: dict[str, float],
                 repeats: int) -> float:
    """Share of A/A comparisons ``harness compare --fail-on-regression 10`` fails when
    both runs drift (each its own path) at the cells' mid-times."""
    rows = pd.DataFrame([cell_row(c, CellResult(c.cell_id, "ok"), attempt=1, run_id="sim",
                                  provenance=PROVENANCE) for c in cells])
    mid = np.array([starts[c.cell_id] + seconds[c.cell_id] / 2 for c in cells])
    rng = np.random.default_rng(0)

    def run() -> pd.DataFrame:
        noise = rng.lognormal(0, NOISE, len(cells))
        return rows.assign(train_s=np.exp(drift(rng, mid)) * noise)

    alarms = sum(bool(failed(compare_cells(run(), run(), Path("a"), Path("b")), 10))
                 for _ in range(repeats))
    return alarms / repeats


def simulate(args: argparse.Namespace) -> None:
    grid = load_grid(args.grid, check_inputs=False)
    if args.reversed:  # the same cells (ids are identities), the experiments the other way
        spec = yaml.safe_load(grid.text)
        spec["experiments"].reverse()
        grid = parse_grid(yaml.safe_dump(spec), f"{args.grid} reversed", check_inputs=False)
    model = CostModel.from_folders([args.folder])
    found = {c.cell_id: model.predict(c) for c in grid.cells}
    if any(p.basis == DEFAULT for p in found.values()):
        raise SystemExit(f"{args.folder} does not predict every cell of {args.grid}")
    predicted = {k: p.wall_s for k, p in found.items()}
    rows = load_cells(args.folder)
    walls = dict(zip(rows["cell_id"], rows["wall_s"], strict=True))
    observed = {k: float(walls.get(k, v)) for k, v in predicted.items()}
    orders: dict[str, Callable[[], list[Cell]]] = {
        "grid": lambda: grid.cells,
        "seed-lpt": lambda: longest_first(grid.cells, predicted),
        "global-lpt": lambda: globally_longest_first(grid.cells, predicted),
    }
    ran = sum(k in walls for k in predicted)
    print(f"(a) {grid.path}: {len(grid.cells)} cells, "
          f"{len({c.block for c in grid.cells})} blocks; seconds from {args.folder} "
          f"({model.rows} rows; {ran} cells ran there); predicted work "
          f"{sum(predicted.values()):.0f} s, observed {sum(observed.values()):.0f} s")
    print(f"{'durations':<10}{'workers':>8}{'order':>12}{'makespan':>10}{'bound':>8}"
          f"{'idle end':>10}{'ratio':>8}{'spread':>8}{'A/A alarms':>12}")
    for label, seconds in (("predicted", predicted), ("observed", observed)):
        for workers in args.workers:
            bound = max(sum(seconds.values()) / workers, max(seconds.values()))
            base = None
            for name, order in orders.items():
                cells = order()
                starts, ends = schedule(cells, seconds, workers)
                span = max(ends)
                assert abs(span - makespan([seconds[c.cell_id] for c in cells],
                                           [1] * len(cells), workers)) < 1e-6
                base = base or span
                alarms = (f"{false_alarms(cells, starts, seconds, args.repeats):>11.0%}"
                          if label == "predicted" and args.repeats else f"{'':>11}")
                print(f"{label:<10}{workers:>8}{name:>12}{span:>10.0f}{bound:>8.0f}"
                      f"{sum(span - e for e in ends):>10.0f}{span / base:>8.3f}"
                      f"{spread(cells, starts, span):>8.2f} {alarms}")


def real_grid() -> str:
    experiments = "".join(
        f"  - problem: probe\n    params: {{size: {i + 1}}}\n    strategies:\n"
        f"      - probe: {{sleep_s: {a}}}\n      - probe: {{sleep_s: {b}, steps: 4}}\n"
        for i, (a, b) in enumerate(REAL_BLOCKS))
    return f"name: block-order\nseeds: [0, 1]\nexperiments:\n{experiments}"


def measured(out: Path, wall: float) -> dict[str, float]:
    """Wall time of the call, busy span, idle worker-seconds at the end (from the rows)."""
    df = load_cells(out)
    end = df["finished_at"].max()
    last = df.groupby("worker")["finished_at"].max()
    return {"wall": wall, "span": (end - df["started_at"].min()).total_seconds(),
            "idle": sum((end - t).total_seconds() for t in last),
            "order": " ".join(df.sort_values("started_at")["p_size"].astype(str))}


def real(workers: int = 2) -> None:
    text = real_grid()
    print(f"\n(b) a real run: {len(REAL_BLOCKS)} blocks × 2 seeds of sleeping probe cells "
          f"(block sleeps {REAL_BLOCKS}), local backend, {workers} workers")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, out, history in (("grid", Path(tmp) / "first", ()),
                                   ("seed-lpt", Path(tmp) / "second", (Path(tmp) / "first",))):
            t0 = time.perf_counter()
            summary = run_grid(parse_grid(text, "block-order.yaml"), out, backend="local",
                               workers=workers, progress=False, history=history)
            wall = time.perf_counter() - t0
            assert summary.all_ok
            folder = OutputFolder(out)
            info = json.loads(folder.manifest(summary.run_id).read_text())
            results[name] = measured(out, wall)
            print(f"{name:<9} order {info['order']!r}: sizes as started "
                  f"{results[name]['order']}")
        print(f"{'':<9}{'wall s':>8}{'span s':>8}{'idle end s':>12}")
        for name, r in results.items():
            print(f"{name:<9}{r['wall']:>8.2f}{r['span']:>8.2f}{r['idle']:>12.2f}")
        a, b = results["grid"], results["seed-lpt"]
        print(f"{'ratio':<9}{b['wall'] / a['wall']:>8.3f}{b['span'] / a['span']:>8.3f}"
              f"{b['idle'] / a['idle']:>12.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default="/tmp/demo_old",
                    help="output folder of a real run of --grid (default /tmp/demo_old)")
    ap.add_argument("--grid", default=str(ROOT / "grids" / "demo.yaml"))
    ap.add_argument("--reversed", action="store_true",
                    help="the grid's experiments in the reverse order")
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--repeats", type=int, default=100,
                    help="A/A comparisons per order and worker count (0: none)")
    ap.add_argument("--no-real", action="store_true", help="the simulation only")
    args = ap.parse_args()
    simulate(args)
    if not args.no_real:
        real()


if __name__ == "__main__":
    main()
