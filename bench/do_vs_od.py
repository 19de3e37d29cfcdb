"""Disc-Opt vs Opt-Disc on one CNF problem and seed, in this process, and the harness's own
overhead on a Disc-Opt training step.

    .venv/bin/python bench/do_vs_od.py [--iterations 1000] [--batch 512] [--threads 1]
                                       [--device cpu|cuda]

Part 1 runs the ``cnf_toy`` cells (8gaussians, 64-64-64 tanh, batch 512) through
``run_cell``: ``disc_opt`` (RK4 3/8 rule, step 0.25) and ``opt_disc`` (dopri5 with the
adjoint, rtol = atol = 1e-5), and prints training time, time per iteration, NFE forward and
backward, test NLL (trained integrator and dopri5 at 1e-8), the Opt-Disc / Disc-Opt
wall-time and NFE ratios and the NLL difference.

Part 2 times our ``disc_opt`` training step (``train_node`` with ``FixedStepRK4``) against a
bare loop calling torchdiffeq's ``odeint(method="rk4", options={"step_size": h})`` on the
same model and batches, in interleaved rounds, and prints the ratio of median step times.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from harness.problems.datasets.toy2d import sample_toy
from harness.solvers.node import FixedStepRK4, train_node
from harness.solvers.node.problem import build_model

from harness import registry
from harness.cell import Cell, Resources, make_cell
from harness.runner import run_cell

STEP = 0.25


def cnf_cell(strategy: str, sparams: dict, iterations: int, batch: int, seed: int,
             threads: int, device: str = "cpu") -> Cell:
    return make_cell("cnf_toy", strategy, {"dataset": "8gaussians", "hidden": 64, "depth": 3,
                                           "batch_size": batch, "iterations": iterations,
                                           "val_every": 0}, sparams, seed, grid="bench",
                     resources=Resources(device=device, cpus=threads))


def compare_strategies(args: argparse.Namespace) -> None:
    rows = {}
    for strategy, sp in (("disc_opt", {"rule": "3/8", "step_size": STEP}),
                         ("opt_disc", {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5})):
        res = run_cell(cnf_cell(strategy, sp, args.iterations, args.batch, args.seed,
                                args.threads, args.device))
        if res.status != "ok":
            raise SystemExit(f"{strategy}: {res.status}: {res.error}")
        rows[strategy] = {"train_s": res.train_s, **res.metrics}
    print(f"8gaussians, batch {args.batch}, {args.iterations} iterations, seed {args.seed}, "
          f"{args.threads} thread(s), device {res.device} {res.gpu_name or ''}, peak CUDA "
          f"memory {res.gpu_peak_mb or 0:.0f} MiB")
    keys = ("train_s", "iter_s", "nfe_fwd", "nfe_bwd", "test_nll", "test_nll_dopri",
            "inv_err_dopri", "end_time")
    print(f"{'':10}" + "".join(f"{k:>15}" for k in keys))
    for name, row in rows.items():
        print(f"{name:10}" + "".join(f"{row[k]:>15.4g}" for k in keys))
    do, od = rows["disc_opt"], rows["opt_disc"]
    print(f"Opt-Disc / Disc-Opt wall time: {od['train_s'] / do['train_s']:.2f}x "
          f"(time reduction {100 * (1 - do['train_s'] / od['train_s']):.0f}%)")
    print(f"Opt-Disc / Disc-Opt NFE (fwd+bwd): "
          f"{(od['nfe_fwd'] + od['nfe_bwd']) / (do['nfe_fwd'] + do['nfe_bwd']):.2f}x")
    print(f"test NLL difference (DO - OD): {do['test_nll'] - od['test_nll']:+.4f} nats "
          f"(dopri5 1e-8 re-evaluation: {do['test_nll_dopri'] - od['test_nll_dopri']:+.4f})")


class BareTask:
    """The same loss as ``CNFTask`` for the overhead comparison."""

    def __init__(self, model, batches, iterations):
        self.model, self.batches, self.iterations, self.val_every = model, batches, iterations, 0

    def make_optimizer(self):
        return torch.optim.Adam(self.model.parameters(), lr=1e-3, weight_decay=1e-5)

    def batch(self, step):
        return self.batches[step % len(self.batches)]

    def loss(self, solve, batch):
        return self.model.nll(solve, batch)


def bare_loop(model, batches, iterations) -> list[float]:
    """Disc-Opt written directly against torchdiffeq: odeint(method="rk4") per block."""
    from harness.solvers.node.cnf import standard_normal_logpdf
    from torchdiffeq import odeint

    from harness.timing import synchronize

    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    times = []
    for step in range(iterations):
        x = batches[step % len(batches)]
        synchronize(x.device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        z, delta = x, torch.zeros(len(x), device=x.device)
        for block in model.blocks:
            s0 = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)
            sT = odeint(block.dynamics, s0, block.times(), method="rk4",
                        options={"step_size": STEP})[-1]
            z, delta = sT[:, :-1], delta + sT[:, -1]
        loss = (-standard_normal_logpdf(z) + delta).mean()
        loss.backward()
        opt.step()
        synchronize(x.device)
        times.append(time.perf_counter() - t0)
    return times


def compare_overhead(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    params = registry.get("problem", "cnf_toy").validate({"hidden": 64, "depth": 3})
    rng = np.random.default_rng(args.seed)
    device = torch.device(args.device)
    batches = [torch.as_tensor(sample_toy("8gaussians", args.batch, rng), dtype=torch.float32,
                               device=device) for _ in range(10)]
    ours, bare = [], []
    for _ in range(args.rounds):
        for side in ("ours", "bare"):
            torch.manual_seed(args.seed)
            model = build_model(params, 2, device)
            if side == "ours":
                task = BareTask(model, batches, args.overhead_iterations)
                ours += train_node(task, FixedStepRK4("3/8", step_size=STEP)).iter_s
            else:
                bare += bare_loop(model, batches, args.overhead_iterations)
    mo, mb = statistics.median(ours), statistics.median(bare)
    print(f"Disc-Opt step, median over {len(ours)} iterations: ours {1e3 * mo:.2f} ms, bare "
          f"torchdiffeq odeint(rk4) loop {1e3 * mb:.2f} ms, ratio {mo / mb:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--overhead-iterations", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-strategies", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = ap.parse_args()
    compare_overhead(args)
    if not args.skip_strategies:
        compare_strategies(args)


if __name__ == "__main__":
    main()
