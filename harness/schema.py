"""The results schema: every column of ``cells/`` and ``history/``, its type and meaning.

The cells schema is the core columns plus one typed column per parameter and per metric of
every registered plug-in (named by :mod:`harness.vocabulary`), so all files written by one
version of the harness share one schema and a folder reads as one table. docs/results.md
documents every column (a test keeps it in step with this module).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .cell import SCHEMA_VERSION
from .vocabulary import METRIC, terms

_ARROW = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}
TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    """One documented column."""

    name: str
    type: pa.DataType
    doc: str
    group: str


def _core() -> list[Column]:
    s, f, i, b = pa.string(), pa.float64(), pa.int64(), pa.bool_()
    spec = [
        ("identity", [
            ("cell_id", s, "16 hex digits: hash of problem, strategy, their identity parameters, "
                           "seed and schema version"),
            ("grid", s, "the grid's `name`"),
            ("run_id", s, "the `harness run` invocation that produced the row"),
            ("experiment", i, "index of the experiment in the grid file"),
            ("problem", s, "problem name"),
            ("strategy", s, "strategy name"),
            ("variant", s, "the strategy variant as the report names it: the strategy name "
                           "plus every parameter not at its default, in declared order, e.g. "
                           "sgd[lr=0.01,epochs=10]; group by it, not by strategy"),
            ("family", s, "the family problem and strategy belong to"),
            ("seed", i, "the cell's seed (data split, initialisation, random features)"),
            ("attempt", i, "1 for the first attempt of a cell in this folder, then 2, 3, …"),
            ("params", s, "all problem and strategy parameters as canonical JSON"),
            ("block", i, "the cell's block: the cells of one problem instance and seed, which "
                         "the grid runs side by side (index in the grid's run order)"),
            ("run_order", i, "the cell's place in the order its run started cells in: the "
                             "grid's, with each seed's blocks longest first where earlier "
                             "rows predicted them; within a block the strategies are in a "
                             "random order drawn per block"),
        ]),
        ("outcome", [
            ("status", s, "ok, error, timeout, diverged, oom, preempted or skipped"),
            ("error", s, "exception type and message; null when ok"),
            ("traceback", s, "last lines of the traceback; null when none"),
        ]),
        ("timing", [
            ("started_at", TIMESTAMP, "when the attempt started (UTC)"),
            ("finished_at", TIMESTAMP, "when it ended (UTC)"),
            ("wall_s", f, "wall time of the whole attempt in the worker (s)"),
            ("setup_s", f, "building the problem: data, features, model (s)"),
            ("train_s", f, "training time, evaluation excluded, synchronized on CUDA (s)"),
            ("eval_s", f, "evaluation time, including evaluation inside training (s)"),
            ("cpu_s", f, "CPU time the cell's process got while it ran, all its threads (s)"),
            ("cpu_wait_s", f, "time its threads were ready to run but waited for a CPU "
                              "(Linux run-queue delay, s); null where the kernel does not "
                              "say. The placement audit's evidence (docs/slurm.md)"),
            ("cpu_hours", f, "cost: wall_s × cpus / 3600"),
            ("gpu_hours", f, "cost: wall_s × n_gpus / 3600"),
        ]),
        ("memory", [
            ("peak_rss_mb", f, "peak resident memory of the worker during the cell (MiB)"),
            ("gpu_peak_mb", f, "peak CUDA memory allocated by torch (MiB); null off GPU"),
        ]),
        ("placement", [
            ("device", s, "torch device the cell ran on, e.g. cpu or cuda:0"),
            ("n_gpus", i, "GPUs the cell used"),
            ("gpu_name", s, "CUDA device name; null off GPU"),
            ("host", s, "host name of the worker"),
            ("backend", s, "executor: local, ray, …"),
            ("worker", s, "worker slot that ran the cell"),
            ("node", s, "Slurm node name (SLURMD_NODENAME) under Slurm, else the host name"),
            ("scheduler", s, "batch scheduler the cell ran under (slurm); null outside one"),
            ("slurm_job_id", s, "Slurm job that ran the cell: JOBID, or ARRAYJOB_TASK for an "
                                "array task; null outside Slurm"),
            ("slurm_array_task", i, "the array task (SLURM_ARRAY_TASK_ID) that ran the cell; "
                                    "null outside an array job"),
            ("rank", i, "MPI rank when run under MPI"),
            ("cores", s, "CPU cores the cell's process could run on (its affinity), e.g. "
                         "0,1; the cores it held under local and mpi"),
            ("placement", s, "pinned: the cell's process was pinned to its cores, which it "
                             "owned; unenforced: not, see placement_note (docs/slurm.md)"),
            ("placement_note", s, "why placement was not enforced (e.g. Slurm did not bind "
                                  "the job, Ray binds no core); null when pinned"),
            ("gpu_ids", s, "GPUs the cell could see (CUDA_VISIBLE_DEVICES): its own under "
                           "local, mpi and ray; empty when none, null when not restricted"),
            ("timeout_s", f, "requested time limit (s)"),
            ("cpus", i, "requested CPU cores (torch threads)"),
            ("gpus", f, "requested GPUs"),
        ]),
        ("provenance", [
            ("harness_version", s, "version of the harness package"),
            ("git_sha", s, "commit of the harness source tree; null outside git"),
            ("git_dirty", b, "the source tree had uncommitted changes"),
            ("python", s, "Python version in the worker"),
            ("torch", s, "torch version in the worker"),
            ("cuda", s, "CUDA version torch was built with; null for CPU builds"),
        ]),
    ]
    return [Column(n, t, d, g) for g, cols in spec for n, t, d in cols]


CORE_COLUMNS = _core()

HISTORY_COLUMNS = [
    Column("cell_id", pa.string(), "the cell (join with cells)", "history"),
    Column("attempt", pa.int64(), "the attempt (join with cells)", "history"),
    Column("step", pa.int64(), "iteration, batch or other step index the value belongs to",
           "history"),
    Column("epoch", pa.int64(), "epoch, when the strategy has epochs", "history"),
    Column("wall_s", pa.float64(), "training time elapsed when logged (s)", "history"),
    Column("split", pa.string(), "train, val, test, or what the value refers to", "history"),
    Column("metric", pa.string(), "what was measured", "history"),
    Column("value", pa.float64(), "the value", "history"),
]
HISTORY_SCHEMA = pa.schema([(c.name, c.type) for c in HISTORY_COLUMNS],
                           metadata={"harness_schema_version": str(SCHEMA_VERSION)})


def plugin_columns() -> list[Column]:
    """Parameter and metric columns of every registered plug-in (parameters first, each
    group sorted), from :func:`harness.vocabulary.terms`, which holds each to one type."""
    cols = [Column(t.column, arrow_type(t.type), "; ".join(f"{o.kind} {o.name}: {doc}"
                                                          for o, doc in t.docs()),
                   "metrics" if t.kind == METRIC else "parameters")
            for t in terms().values()]
    clash = {c.name for c in CORE_COLUMNS} & {c.name for c in cols}
    if clash:
        raise TypeError(f"plug-in columns {sorted(clash)} collide with core columns")
    return sorted(cols, key=lambda c: (c.group != "parameters", c.name))


def arrow_type(kind: type) -> pa.DataType:
    """The Arrow type of a declared ``int``, ``float``, ``str`` or ``bool`` column."""
    return _ARROW[kind]


def cells_schema() -> pa.Schema:
    """The Arrow schema of a cells file written by this version."""
    cols = CORE_COLUMNS + plugin_columns()
    return pa.schema([(c.name, c.type) for c in cols],
                     metadata={"harness_schema_version": str(SCHEMA_VERSION)})


def core_cells_schema() -> pa.Schema:
    """The columns every cells row has, whatever plug-ins exist (no parameters, no
    metrics): readable without importing them."""
    return pa.schema([(c.name, c.type) for c in CORE_COLUMNS],
                     metadata={"harness_schema_version": str(SCHEMA_VERSION)})


def cells_table(rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> pa.Table:
    """Rows (dicts, missing keys = null) as a table of the cells schema."""
    schema = schema or cells_schema()
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in schema.names} for row in rows], schema=schema
    )


def timing_columns() -> frozenset[str]:
    """Columns that are durations in seconds: the core timings (``wall_s``, ``train_s``, …)
    and every declared metric with unit ``s``."""
    names = {c.name for c in _core() if c.group == "timing" and c.type == pa.float64()}
    return frozenset(names | {c for c, t in terms().items() if t.kind == METRIC and t.unit == "s"})


def deterministic_metric_columns() -> list[str]:
    """Metric columns that the same cell reproduces exactly on any backend or machine
    (every declared metric except timings, unit ``s``)."""
    return [c for c, t in terms().items() if t.kind == METRIC and t.unit != "s"]
