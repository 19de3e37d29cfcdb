"""The ``harness`` command: run, status, report, list.

Exit codes: 0 success (every cell ok), 1 some cells failed, 2 bad input (one line on
stderr naming the file, key and value), 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections import Counter
from pathlib import Path

from .errors import InputError

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see '{self.prog} --help')", file=self.prog)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer ≥ 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: an integer ≥ 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .executors import BACKENDS, DEFAULT_BACKEND

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

    status = sub.add_parser("status", help="counts by status and the failed cells",
                            description="Show how the cells in DIR stand.")
    status.add_argument("out", metavar="DIR", help="output folder of a run")

    report = sub.add_parser("report", help="write report.md/.html, figures and tables",
                            description="Write DIR/report.md, DIR/report.html, "
                            "DIR/figures/*.png and DIR/tables/*.tex from the Parquet data.")
    report.add_argument("out", metavar="DIR", help="output folder of a run")

    sub.add_parser("list", help="every problem and strategy with its parameters",
                   description="List the registered problems and strategies by family.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``harness`` console script."""
    try:
        args = build_parser().parse_args(argv)
        if args.version:
            from .provenance import package_version

            print(package_version("harness"))
            return EXIT_OK
        if args.command is None:
            build_parser().print_help()
            return EXIT_INPUT
        return {"run": cmd_run, "status": cmd_status, "report": cmd_report,
                "list": cmd_list}[args.command](args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted: every finished cell is saved; run the same command again to "
              "continue", file=sys.stderr)
        return EXIT_INTERRUPTED


def _output_folder(path: str, *, must_exist: bool) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", file=str(out))
    if must_exist and not (out / "cells").is_dir():
        raise InputError("is not an output folder of 'harness run' (no cells/ inside)",
                         file=str(out))
    return out


def cmd_run(args: argparse.Namespace) -> int:
    if args.backend != "mpi":
        return _run(args)
    from .executors.mpi_executor import comm, release_workers, serve

    if args.workers:
        raise InputError(f"--workers {args.workers} does not apply to --backend mpi: the "
                         f"MPI ranks (mpiexec -n N) are the workers", file="harness run")

    if comm().Get_rank() != 0:  # a worker rank: run what rank 0 hands out
        return serve(Path(args.out) / "logs" if Path(args.out).is_dir() else None)
    try:
        return _run(args)
    finally:
        release_workers()  # on every exit of rank 0, bad input included


def _run(args: argparse.Namespace) -> int:
    from .grid import load_grid

    if args.address and args.backend != "ray":
        raise InputError(f"--address {args.address!r} is only for --backend ray",
                         file="harness run")
    grid = load_grid(args.grid)
    out = _output_folder(args.out, must_exist=False)
    if args.dry_run:
        swept = grid.swept
        for cell in grid.cells:
            print(f"{cell.cell_id}  {cell.label(swept)}")
        print(f"{len(grid.cells)} cells in grid {grid.name!r}")
        return EXIT_OK

    from .driver import run_grid

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    summary = run_grid(grid, out, backend=args.backend, workers=args.workers,
                       address=args.address, retry_failed=args.retry_failed, force=args.force,
                       progress=False if args.quiet else None)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items()))
    print(f"{grid.name}: {len(grid.cells)} cells ({counts}); ran {summary.ran} now; "
          f"results in {summary.out}")
    _print_failures(summary.failures)
    return EXIT_OK if summary.all_ok else EXIT_FAILED


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


def cmd_status(args: argparse.Namespace) -> int:
    from .store import Store

    out = _output_folder(args.out, must_exist=True)
    df = Store(out).cells()
    counts = Counter(df["status"]) if len(df) else Counter()
    expected = _grid_size(out)
    line = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no cells yet"
    total = f" of {expected}" if expected is not None else ""
    print(f"{out}: {len(df)}{total} cells recorded ({line})")
    if expected is not None and expected > len(df):
        print(f"  {expected - len(df)} cell(s) not run yet")
    bad = df[df["status"] != "ok"]
    for row in bad.itertuples():
        print(f"  {row.cell_id}  {row.status:<9} {row.problem} {row.strategy} seed={row.seed}"
              f"  {row.error or ''}")
    return EXIT_OK


def _grid_size(out: Path) -> int | None:
    grid_file = out / "grid.yaml"
    if not grid_file.exists():
        return None
    from .grid import parse_grid

    try:
        return len(parse_grid(grid_file.read_text(), str(grid_file), check_inputs=False).cells)
    except InputError:
        return None


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    out = _output_folder(args.out, must_exist=True)
    paths = write_report(out)
    for p in paths:
        print(p)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from . import registry

    problems, strategies = registry.problems(), registry.strategies()
    families = sorted({c.family for c in [*problems.values(), *strategies.values()]})
    for family in families:
        print(f"== family {family}")
        for kind, table in (("problem", problems), ("strategy", strategies)):
            for name, cls in table.items():
                if cls.family != family:
                    continue
                print(f"{kind} {name}: {cls.summary()}")
                for pname, p in cls.parameters.items():
                    default = "(required)" if p.required else repr(p.default)
                    print(f"    {pname:<14} {p.kind.__name__:<5} default {default:<12} "
                          f"{p.allowed()}. {p.doc}")
        print()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
