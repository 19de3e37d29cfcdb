"""slimTrain vs Adam: time per epoch by memory depth, and time to a validation loss.

    .venv/bin/python bench/slimtrain_cost.py [--problem cdr] [--epochs 20] [--lr 1e-2]

Runs, in this process and one thread, ``adam`` and ``slimtrain`` with r ∈ {0, 1, 5, 10}
on the same problem, seed and batches (batch 5), and prints for each: the median time
per epoch (evaluation excluded) and its ratio to Adam's; then the training time each
needs to reach Adam's final validation loss (``target``, or ``--target``), read from the
per-epoch history (validation after each epoch; training time excludes evaluation).
"""

from __future__ import annotations

import argparse

from harness.cell import Cell, Resources, make_cell
from harness.runner import run_cell


def cell(problem: str, strategy: str, sparams: dict, seed: int) -> Cell:
    return make_cell(problem, strategy, {}, sparams, seed, grid="bench",
                     resources=Resources(device="cpu", cpus=1))


def time_to(history: list, target: float) -> tuple[float | None, int | None]:
    """(training time, epoch) at which the validation loss first reached ``target``."""
    for step, _epoch, wall, split, metric, value in history:
        if metric == "loss" and split == "val" and value <= target:
            return wall, step + 1
    return None, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="cdr")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=None)
    args = ap.parse_args()
    common = {"lr": args.lr, "epochs": args.epochs, "batch_size": args.batch}
    runs = {"adam": run_cell(cell(args.problem, "adam", common, args.seed))}
    for r in (0, 1, 5, 10):
        runs[f"slimtrain r={r}"] = run_cell(cell(args.problem, "slimtrain", {**common, "r": r},
                                                 args.seed))
    for name, res in runs.items():
        if res.status != "ok":
            raise SystemExit(f"{name}: {res.status}: {res.error}")
    adam = runs["adam"].metrics
    target = args.target if args.target is not None else adam["val_loss"]
    print(f"{args.problem}, lr {args.lr:g}, batch {args.batch}, {args.epochs} epochs, seed "
          f"{args.seed}, 1 thread; target validation loss {target:.4g}")
    print(f"{'':16}{'s/epoch':>10}{'ratio':>8}{'val loss':>11}{'t→target s':>12}"
          f"{'epoch':>7}")
    for name, res in runs.items():
        m = res.metrics
        t, e = time_to(res.history, target)
        print(f"{name:16}{m['epoch_s']:>10.4f}{m['epoch_s'] / adam['epoch_s']:>8.2f}"
              f"{m['val_loss']:>11.4g}{'–' if t is None else f'{t:.2f}':>12}"
              f"{'–' if e is None else e:>7}")


if __name__ == "__main__":
    main()
