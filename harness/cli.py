"""The ``harness`` command: run, estimate, submit, status, cancel, report, compare, list.

Exit codes: 0 success (every cell ok), 1 some cells failed, 2 bad input (one line on
stderr naming the file, key and value), 130 interrupted (Ctrl-C), 143 stopped by SIGTERM or
SIGUSR1 (preemption, time limit, scancel). When stopped, the cells in flight are recorded
``preempted`` and the same command continues with what is left.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import stopping
from .errors import InputError, Preempted
from .folder import OutputFolder

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_PREEMPTED = 0, 1, 2, 130, 143


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see '{self.prog} --help')", file=self.prog)


def _int_at_least(low: int):
    """An argparse type: an integer ≥ ``low``, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer ≥ {low}") from None
        if value < low:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not allowed; allowed: an integer ≥ {low}")
        return value

    return parse


_positive_int, _count = _int_at_least(1), _int_at_least(0)


def _non_negative_float(text: str) -> float:
    """An argparse type: a number ≥ 0, with a one-line message otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number ≥ 0") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: a number ≥ 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .executors import BACKENDS, DEFAULT_BACKEND
    from .slurm.directives import MODES

    parser = _Parser(prog="harness", description="Benchmark harness for scientific ML: "
                     "grids of problems × training strategies, results in Parquet, reports.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="run a grid into an output folder (resumable)",
                         description="Run every cell of GRID into --out. Cells already ok in "
                         "--out are skipped; failed ones are kept unless --retry-failed.")
    run.add_argument("grid", metavar="GRID", help="grid YAML file")
    run.add_argument("--out", required=True, metavar="DIR", help="output folder")
    run.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                     help=f"where cells run (default: {DEFAULT_BACKEND})")
    run.add_argument("--workers", type=_positive_int, metavar="N",
                     help="parallel cells: local pool size, or CPUs of the embedded Ray "
                          "(default: all cores)")
    run.add_argument("--address", metavar="A", help="join the Ray cluster at A (ray only)")
    run.add_argument("--retry-failed", action="store_true",
                     help="also rerun cells whose latest attempt failed")
    run.add_argument("--force", action="store_true", help="rerun every cell")
    run.add_argument("--dry-run", action="store_true",
                     help="print the cells and their count; run nothing")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--shard", metavar="I/N",
                     help="run only shard I of N (cells I, I+N, I+2N, … in grid order); "
                          "shards of one folder may run at the same time")
    run.add_argument("--until-conclusive", action="store_true",
                     help="after the grid's seeds, add seeds to the cells of every claim "
                          "still inconclusive, a batch at a time, until each is settled, at "
                          "--max-seeds, or out of --budget (group-sequential: each wrong "
                          "verdict stays at most 2.5%%)")
    run.add_argument("--budget", metavar="B",
                     help="with --until-conclusive: buy no batch that would take the run "
                          "past B: a run time (30m, 2h) or a cost (2cpu-h, 0.5gpu-h)")
    run.add_argument("--max-seeds", type=_int_at_least(2), default=10, metavar="N",
                     help="with --until-conclusive: the most seeds a claim gets (default "
                          "10; fixed when the folder's plan is made)")
    run.add_argument("--batch", type=_positive_int, default=2, metavar="K",
                     help="with --until-conclusive: seeds added per look (default 2)")
    run.add_argument("--claims", action="append", default=[], metavar="DIR",
                     help="with --until-conclusive: also judge the claims files in DIR "
                          "(as harness report --claims; repeatable)")
    run.add_argument("--history", action="append", default=[], metavar="DIR",
                     help="output folder of an earlier run the cost model learns from, "
                     "beside --out (repeatable): where they predict every cell, each seed's "
                     "blocks run longest first")

    submit = sub.add_parser(
        "submit", help="submit a grid to Slurm and return at once",
        description="Render an sbatch script into DIR/slurm/, submit it and print the job id "
        "(non-blocking). Follow with 'harness status DIR'; resubmitting resumes.")
    submit.add_argument("grid", metavar="GRID", help="grid YAML file")
    submit.add_argument("--out", required=True, metavar="DIR", help="output folder")
    submit.add_argument("--mode", choices=MODES, default="array",
                        help="array: one array task per shard of cells; ray: a Ray cluster "
                        "across the nodes; mpi: srun --mpi=pmi2 with the mpi backend "
                        "(default: array)")
    submit.add_argument("--nodes", type=_positive_int, default=1, metavar="N",
                        help="nodes (ray, mpi; default 1)")
    submit.add_argument("--gpus-per-node", type=_count, default=None, metavar="G",
                        help="GPUs per node (array: per task; default: the most GPUs one "
                        "cell asks for)")
    submit.add_argument("--cpus-per-task", type=_positive_int, default=None, metavar="C",
                        help="cores per array task, Ray node or MPI rank (default: the most "
                        "cores one cell asks for)")
    submit.add_argument("--tasks-per-node", type=_positive_int, metavar="T",
                        help="mpi: ranks per node (default: GPUs per node, or 1)")
    submit.add_argument("--mem", metavar="M", help="memory per node, e.g. 16G")
    submit.add_argument("--time", metavar="T", help="time limit, e.g. 2:00:00 or 1-00:00:00")
    submit.add_argument("--partition", metavar="P", help="Slurm partition")
    submit.add_argument("--account", metavar="A", help="Slurm account")
    submit.add_argument("--max-parallel", type=_positive_int, metavar="K",
                        help="array: at most K tasks at once (%%K)")
    submit.add_argument("--shards", type=_positive_int, default=32, metavar="S",
                        help="array: number of tasks (at most one per cell; default 32)")
    submit.add_argument("--warn", type=_count, default=120, metavar="S",
                        help="seconds before the time limit at which the job stops its cells "
                        "and requeues itself (default 120)")
    submit.add_argument("--setup", action="append", default=[], metavar="CMD",
                        help="shell command run before the harness, e.g. 'module load cuda' "
                        "(repeatable)")
    submit.add_argument("--sbatch", action="append", default=[], metavar="OPT",
                        help="extra sbatch option, e.g. --qos=high (repeatable)")
    submit.add_argument("--dry-run", action="store_true",
                        help="write the script and print it; submit nothing")
    submit.add_argument("--max-cost", metavar="COST",
                        help="refuse (exit 2) when the predicted cost of the cells to run "
                        "exceeds COST: CPU-hours, or with a unit, e.g. 20cpu-h or 4gpu-h "
                        "(see harness estimate)")
    submit.add_argument("--until-conclusive", action="store_true",
                        help="one job that runs the grid, then buys seeds for the claims "
                        "still open (as harness run --until-conclusive; --mode ray or mpi)")
    submit.add_argument("--budget", metavar="B",
                        help="with --until-conclusive: the loop's budget, a run time (30m, "
                        "2h; sizes --time when not given) or a cost (2cpu-h)")
    submit.add_argument("--max-seeds", type=_int_at_least(2), default=10, metavar="N",
                        help="with --until-conclusive: the most seeds a claim gets (default 10)")
    submit.add_argument("--batch", type=_positive_int, default=2, metavar="K",
                        help="with --until-conclusive: seeds added per look (default 2)")
    submit.add_argument("--claims", action="append", default=[], metavar="DIR",
                        help="with --until-conclusive: also judge the claims files in DIR")
    submit.add_argument("--history", action="append", default=[], metavar="DIR",
                        help="output folder of an earlier run the cost model learns from, "
                        "beside --out (repeatable)")

    est = sub.add_parser(
        "estimate", help="the predicted cost of a grid before it runs",
        description="Predict the CPU-hours, GPU-hours, peak memory and wall time of the "
        "cells of GRID not already ok in --out, from the rows of earlier runs (--out "
        "itself and --history folders), and say how far the model is off on them.")
    est.add_argument("grid", metavar="GRID", help="grid YAML file")
    est.add_argument("--out", metavar="DIR",
                     help="output folder the grid would run into: its ok cells are not "
                          "counted, its rows are history")
    est.add_argument("--history", action="append", default=[], metavar="DIR",
                     help="output folder of an earlier run to learn from (repeatable)")
    est.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                     help=f"where the cells would run (default: {DEFAULT_BACKEND})")
    est.add_argument("--workers", type=_positive_int, metavar="N",
                     help="cores the cells share (mpi: ranks running cells; default: this "
                          "machine's cores)")
    est.add_argument("--retry-failed", action="store_true",
                     help="count the cells whose latest attempt failed, as run would")

    cancel = sub.add_parser("cancel", help="cancel the Slurm jobs of an output folder",
                            description="scancel every job submitted into DIR.")
    cancel.add_argument("out", metavar="DIR", help="output folder of 'harness submit'")

    status = sub.add_parser("status", help="how the cells stand: ok, failed, running, pending",
                            description="Show how the cells in DIR stand, merging the "
                            "results, the runs in progress and the Slurm queue (one squeue "
                            "call, cached for HARNESS_SQUEUE_INTERVAL s).")
    status.add_argument("out", metavar="DIR", help="output folder of a run")
    status.add_argument("--cells", action="store_true",
                        help="one line per cell: state, Slurm job or array task, label")

    report = sub.add_parser("report", help="write report.md/.html, figures and tables",
                            description="Write report.md, report.html, figures/*.png and "
                            "tables/*.tex into OUT (default: DIR) from the Parquet data of "
                            "DIR.")
    report.add_argument("out", metavar="DIR", help="output folder of a run")
    report.add_argument("--out", dest="to", metavar="OUT",
                        help="where to write the report (default: DIR), e.g. one folder "
                             "per claims folder judged")
    report.add_argument("--claims", metavar="CLAIMS_DIR", action="append", default=[],
                        help="a folder of your own claims files (*.yaml), judged beside the "
                             "published ones; may be repeated")

    comp = sub.add_parser("compare", help="compare two runs of one grid, cell by cell",
                          description="Match the cells of two output folders by identity "
                          "(with --match-ignore, on all but the named parameters) and "
                          "write compare.md and compare.html: time ratios NEW/BASE and "
                          "quality differences per variant with 95% intervals, status "
                          "changes, unmatched cells. Prints the summary, why it exits as it "
                          "does, and the paths.")
    comp.add_argument("base", metavar="BASE", help="output folder of the reference run")
    comp.add_argument("new", metavar="NEW", help="output folder of the run to judge")
    comp.add_argument("--out", metavar="DIR", help="where to write (default: NEW)")
    comp.add_argument("--match-ignore", metavar="NAME", action="append", default=[],
                      help="match cells on everything but this problem or strategy parameter "
                           "(e.g. r, to pair a grid whose r changed); comma-separated or "
                           "repeated")
    comp.add_argument("--fail-on-regression", metavar="PCT", type=_non_negative_float,
                      help="exit 1 when a variant's training time is slower by more than PCT "
                           "%% (the whole interval above), or a cell went from ok to failed")

    schema = sub.add_parser("schema", help="the results contract (docs/results.md)",
                            description="Print the results contract with every column of "
                            "the registered plug-ins (the text of docs/results.md).")
    schema.add_argument("--write", metavar="FILE", help="write it to FILE instead")

    sub.add_parser("list", help="every problem and strategy with its parameters",
                   description="List the registered problems and strategies by family.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``harness`` console script. The stop signals are taken first and
    kept to the last line (:mod:`harness.stopping`): SIGTERM or SIGUSR1 at any moment ends
    the command with exit code 143, Ctrl-C with 130, after what was finished is saved. As
    the console script (``argv`` None) it then ignores them until the process has exited;
    called from Python with ``argv`` it gives them back to the handlers it found."""
    stopping.install()
    command = None
    try:
        with stopping.interruptible():  # until a driver defers the signal to a safe point
            args = build_parser().parse_args(argv)
            command = args.command
            code = _dispatch(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        code = EXIT_INPUT
    except Preempted as stop:
        code = _stopped(command, stop.args[0] if stop.args else "SIGTERM")
    except BrokenPipeError:  # e.g. `harness status DIR --cells | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    except KeyboardInterrupt:
        code = _stopped(command, "SIGINT")
    late = stopping.finish()  # after a finished command, a signal still decides the exit
    if late is not None and code not in (EXIT_INTERRUPTED, EXIT_PREEMPTED):
        code = _stopped(command, late.name)
    if argv is not None:  # called from Python, which goes on: its handlers back
        stopping.uninstall()
    return code


def _dispatch(args: argparse.Namespace) -> int:
    if args.version:
        from .provenance import DISTRIBUTION, package_version

        print(package_version(DISTRIBUTION))
        return EXIT_OK
    if args.command is None:
        build_parser().print_help()
        return EXIT_INPUT
    return {"run": cmd_run, "submit": cmd_submit, "status": cmd_status,
            "cancel": cmd_cancel, "report": cmd_report, "estimate": cmd_estimate, "list": cmd_list,
            "schema": cmd_schema, "compare": cmd_compare}[args.command](args)


def _stopped(command: str | None, signal_name: str) -> int:
    """Say how a stop signal ended ``command``; its exit code (130 Ctrl-C, 143 otherwise)."""
    saved = (": every finished cell is saved, the cells in flight are recorded 'preempted'; "
             "run the same command again to continue") if command == "run" else ""
    print(f"\nstopped by {signal_name}{saved}", file=sys.stderr)
    return EXIT_INTERRUPTED if signal_name == "SIGINT" else EXIT_PREEMPTED


def _output_folder(path: str, *, must_exist: bool) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", file=str(out))
    if must_exist and not out.exists():
        raise InputError("does not exist; give the --out folder of a 'harness run'",
                         file=str(out))
    if must_exist and not OutputFolder(out).is_results_folder():
        raise InputError(f"is not an output folder of 'harness run' (no "
                         f"{OutputFolder(out).cells_dir.name}/ inside)",
                         file=str(out))
    return out


def cmd_run(args: argparse.Namespace) -> int:
    if args.backend != "mpi":
        return _run(args)
    from .executors.mpi_executor import this_job

    if args.workers:
        raise InputError(f"--workers {args.workers} does not apply to --backend mpi: the "
                         f"MPI ranks (mpiexec -n N) are the workers", file="harness run")
    logs = OutputFolder(args.out).logs_dir if Path(args.out).is_dir() else None
    # on every rank of the job: MPIJob.run says which part this rank plays
    return this_job().run(lambda: _run(args), log_dir=logs, preempted_exit=EXIT_PREEMPTED)


def _run(args: argparse.Namespace) -> int:
    from .grid import load_grid
    from .shard import Shard

    shard = Shard.parse(args.shard) if args.shard else None
    if args.address and args.backend != "ray":
        raise InputError(f"--address {args.address!r} is only for --backend ray",
                         file="harness run")
    grid = load_grid(args.grid)
    out = _output_folder(args.out, must_exist=False)
    if args.history:
        from .cost import history_folders

        history = history_folders(args.history)  # checked before anything runs
    else:
        history = []
    if args.dry_run:
        swept = grid.swept
        for cell in grid.cells:
            print(f"{cell.cell_id}  {cell.label(swept)}")
        print(f"{len(grid.cells)} cells in grid {grid.name!r}")
        return EXIT_OK

    from .driver import run_grid

    ran = None
    if args.until_conclusive:
        summary, ran, cells = _run_until_conclusive(args, grid, out, shard)
    else:
        for flag, given in (("--budget", args.budget), ("--max-seeds", args.max_seeds != 10),
                            ("--batch", args.batch != 2), ("--claims", args.claims)):
            if given:
                raise InputError(f"{flag} applies only with --until-conclusive",
                                 file="harness run")
        summary = run_grid(grid, out, backend=args.backend, workers=args.workers,
                           address=args.address, retry_failed=args.retry_failed,
                           force=args.force, progress=False if args.quiet else None,
                           shard=shard,
                           history=history)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items()))
    what = f"shard {shard} of {grid.name}: {sum(summary.counts.values())}" if shard else \
        f"{grid.name}: {len(grid.cells)}"
    if ran is not None:
        what = f"{what} + {cells} seeds bought = {len(grid.cells) + cells}"
    print(f"{what} cells ({counts}); ran {summary.ran if ran is None else ran} now; "
          f"results in {summary.out}")
    _print_failures(summary.failures)
    if summary.ran:
        from .audit import audit_lines
        from .store import Store

        ran = Store(out).cells(core_only=True)
        for line in audit_lines(ran[ran["run_id"] == summary.run_id]):
            print(f"audit: {line}")
    stopping.pause_point("exit")
    return EXIT_OK if summary.all_ok else EXIT_FAILED


def _run_until_conclusive(args: argparse.Namespace, grid, out: Path, shard):
    """The run of ``--until-conclusive``; prints where each claim stopped."""
    from .conclusive import run_until_conclusive
    from .estimate import Budget

    if shard is not None:
        raise InputError(f"--shard {args.shard} cannot be run until conclusive: the claims "
                         f"are judged on every shard's cells; run the whole grid (under "
                         f"Slurm: harness submit --until-conclusive)", file="harness run")
    budget = Budget.parse(args.budget, "--budget", "harness run", wall=True) if (
        args.budget) else None
    from .report.claims import check_claim_dirs

    for folder in args.claims:  # checked before the grid runs, not after
        if not Path(folder).is_dir():
            raise InputError(f"--claims {folder!r}: no such folder; allowed: a folder of "
                             f"claims files (*.yaml)", file="harness run")
    check_claim_dirs(Path(d) for d in args.claims)
    if args.max_seeds < args.batch:
        raise InputError(f"--batch {args.batch} is larger than --max-seeds "
                         f"{args.max_seeds}; allowed: a batch of at most the most seeds",
                         file="harness run")
    done = run_until_conclusive(
        grid, out, budget=budget, most=args.max_seeds, batch=args.batch,
        backend=args.backend, workers=args.workers, address=args.address,
        retry_failed=args.retry_failed, force=args.force,
        progress=False if args.quiet else None, claim_dirs=tuple(args.claims))
    from .status import claim_lines

    for line in claim_lines(done.plan):
        print(line)
    return done.summary, done.ran, len(done.plan.bought)


def _print_failures(failures: list, limit: int = 20) -> None:
    if not failures:
        return
    print(f"{len(failures)} cell(s) not ok:")
    for cell, status, error in failures[:limit]:
        print(f"  {cell.cell_id}  {status:<9} {cell.label()}  {error}")
    if len(failures) > limit:
        print(f"  … and {len(failures) - limit} more (harness status shows all)")
    hint = "rerun with --retry-failed" if any(s != "missing" for _, s, _ in failures) else ""
    if hint:
        print(f"  ({hint} to run the failed cells again)")


def cmd_estimate(args: argparse.Namespace) -> int:
    from .cost import CostModel, history_folders
    from .driver import plan_run
    from .estimate import Estimate, estimate_lines
    from .grid import load_grid
    from .placement import usable_cores
    from .store import Store

    grid = load_grid(args.grid)
    folders = history_folders(args.history)
    plan = None
    if args.out:
        out = _output_folder(args.out, must_exist=False)
        plan = plan_run(grid.cells, Store(out), retry_failed=args.retry_failed)
        folders.insert(0, out)
    est = Estimate.of(plan.to_run if plan else grid.cells, CostModel.from_folders(folders))
    workers = args.workers or len(usable_cores())
    print(f"grid {grid.name}: {len(grid.cells)} cells")
    for line in estimate_lines(est, backend=args.backend, workers=workers,
                               already_ok=len(plan.already_ok) if plan else 0,
                               kept_failed=len(plan.kept_failed) if plan else 0):
        print(line)
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from .estimate import Budget
    from .slurm.directives import Request
    from .slurm.submit import submit_grid

    req = Request(mode=args.mode, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                  cpus_per_task=args.cpus_per_task, tasks_per_node=args.tasks_per_node,
                  mem=args.mem, time=args.time, partition=args.partition,
                  account=args.account, max_parallel=args.max_parallel, shards=args.shards,
                  warn_s=args.warn, extra=list(args.sbatch))
    budget = Budget.parse(args.max_cost) if args.max_cost is not None else None
    run_flags: tuple[str, ...] = ()
    if args.until_conclusive:
        from .slurm.submit import until_conclusive_flags

        loop_budget = Budget.parse(args.budget, "--budget", wall=True) if args.budget else None
        req, run_flags = until_conclusive_flags(req, loop_budget, args.max_seeds, args.batch)
        for folder in args.claims:
            run_flags += ("--claims", str(Path(folder).absolute()))
    elif args.budget or args.claims:
        flag = "--budget" if args.budget else "--claims"
        raise InputError(f"{flag} applies only with --until-conclusive",
                         file="harness submit")
    done = submit_grid(args.grid, args.out, req, setup=tuple(args.setup),
                       dry_run=args.dry_run, max_cost=budget, history=tuple(args.history),
                       run_flags=run_flags)
    if args.dry_run:
        print(done.script.read_text())
    if done.cost is not None and done.cost.cells:
        print(f"predicted: {done.cost.summary()}")
    if done.timing:
        print(done.timing)
    if args.dry_run:
        print(f"# dry run: script written to {done.script}; nothing submitted")
    elif done.job_id is None:
        print(f"nothing to submit: all {done.cells} cells of the grid are finished in "
              f"{args.out} (harness status {args.out})")
    else:
        print(f"submitted job {done.job_id} ({args.mode}): {done.to_run} of {done.cells} "
              f"cells to run; script {done.script}")
        print(f"follow with: harness status {args.out}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from .audit import audit_lines
    from .cell import swept_params
    from .status import folder_status
    from .store import Store

    out = _output_folder(args.out, must_exist=True)
    folder = OutputFolder(out)
    st = folder_status(out)
    if not st.cells:  # no grid copy in the folder: what is recorded
        print(f"{out}: {st.recorded} cells recorded; no grid copy ({folder.grid_file.name}) "
              f"to list the cells not run yet: harness run GRID --out {out} writes it")
    else:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(st.counts.items()))
        print(f"{out}: {st.recorded} of {len(st.cells)} cells recorded ({counts})")
    for job, summary in st.jobs:
        print(f"  job {job.job_id} ({job.mode}): {summary}")
    if st.note:
        print(f"  note: {st.note}")
    for run_id, n in st.interrupted:
        print(f"  note: run {run_id} was interrupted (killed, or its node lost) with {n} "
              f"cell(s) in flight, which read not run; run the grid again to resume")
    from .looks import load
    from .status import claim_lines

    plan = load(folder)
    for line in claim_lines(plan) if plan else []:
        print(f"  {line}")
    damaged = folder.damaged()
    if damaged:
        print(f"  damaged: {len(damaged)} unreadable file(s) set aside in "
              f"{folder.damaged_dir}/ ({', '.join(p.name for p in damaged)}); what they held "
              f"is missing until an intact copy is put back")
    if not st.cells:
        return EXIT_OK
    rows = Store(out).cells(core_only=True) if st.recorded else None
    for line in audit_lines(rows) if rows is not None else []:
        print(f"  audit: {line}")
    rows = rows.set_index("cell_id") if rows is not None else None
    swept = swept_params(c.cell for c in st.cells)  # what tells two cells apart
    for c in st.cells:
        recorded = rows is not None and c.cell.cell_id in rows.index
        if not args.cells and (not recorded or c.state == "ok"):
            continue  # without --cells: only the failed and preempted cells
        row = rows.loc[c.cell.cell_id].to_dict() if recorded else {}
        # null strings come back as None or NaN
        text = {k: row.get(k) if isinstance(row.get(k), str) else "" for k in
                ("slurm_job_id", "error")}
        job = c.job or text["slurm_job_id"] or "-"
        error = text["error"] if c.state != "ok" else ""
        print(f"  {c.cell.cell_id}  {c.state:<9} {job:<10} {c.cell.label(swept)}  "
              f"{error}".rstrip())
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from .slurm.jobs import load_jobs
    from .slurm.scheduler import cancel

    out = _output_folder(args.out, must_exist=True)
    ids = [j.job_id for j in load_jobs(out)]
    if not ids:
        raise InputError("no Slurm jobs were submitted into this folder", file=str(out))
    cancel(ids)
    print(f"cancelled job(s) {', '.join(ids)}; finished cells stay in {out}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    out = _output_folder(args.out, must_exist=True)
    for folder in args.claims:
        if not Path(folder).is_dir():
            raise InputError("is not a folder (--claims takes a folder of claims files)",
                             file=folder)
    to = _output_folder(args.to, must_exist=False) if args.to else out
    paths = write_report(out, claim_dirs=tuple(args.claims), to=to)
    for p in paths:
        print(p)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs, failed, verdict_lines, write_compare

    base = _output_folder(args.base, must_exist=True)
    new = _output_folder(args.new, must_exist=True)
    ignore = [name.strip() for given in args.match_ignore for name in given.split(",")]
    if "" in ignore:
        raise InputError("--match-ignore: an empty name; give parameter names, e.g. "
                         "--match-ignore r or --match-ignore r,lr")
    result = compare_runs(base, new, ignore)
    pct = args.fail_on_regression
    paths = write_compare(result, Path(args.out) if args.out else new, pct)
    for line in [*verdict_lines(result, pct), *map(str, paths)]:
        print(line)
    return EXIT_FAILED if pct is not None and failed(result, pct) else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from . import atomic
    from .results_doc import render

    text = render()
    if args.write:
        atomic.write_text(args.write, text)
    else:
        print(text, end="")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from . import registry
    from .family import family_of
    from .report.claims import claim_files

    problems, strategies = registry.problems(), registry.strategies()
    families = sorted({c.family for c in [*problems.values(), *strategies.values()]})
    for family in families:
        declared = family_of(family)
        claims = [f.name for f in claim_files(declared)]
        print(f"== family {family}: {declared.title}"
              + (f" (claims: {', '.join(claims)})" if claims else ""))
        for kind, table in (("problem", problems), ("strategy", strategies)):
            for name, cls in table.items():
                if cls.family != family:
                    continue
                print(f"{kind} {name}: {cls.summary()}")
                for pname, p in cls.parameters.items():
                    default = "(required)" if p.required else repr(p.default)
                    role = f" [role: {p.role.name}]" if p.role else ""
                    print(f"    {pname:<14} {p.kind.__name__:<5} default {default:<12} "
                          f"{p.allowed()}. {p.doc}{role}")
        print()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
