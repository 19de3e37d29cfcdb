"""The generic resource flags of ``harness submit`` and their ``#SBATCH`` lines.

This is the one place that knows Slurm's option names: every mode's script gets its header
from :func:`sbatch_directives`. Values are checked here, before anything is written, and a
bad one is an InputError naming the flag, the value and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import InputError

MODES = ("array", "ray", "mpi")
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # Slurm: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_MEM = re.compile(r"^\d+[KMGT]?$")
_NAME = re.compile(r"^[A-Za-z0-9_.,-]+$")  # partition, account (comma: several partitions)


@dataclass(frozen=True)
class Request:
    """What one submission asks Slurm for (the flags of ``harness submit``)."""

    mode: str
    nodes: int = 1
    gpus_per_node: int | None = 0  # None: from the cells (harness.slurm.submit.sized_for)
    cpus_per_task: int | None = 1  # likewise
    tasks_per_node: int | None = None  # mpi: ranks per node (default: GPUs per node, or 1)
    mem: str | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    max_parallel: int | None = None  # array: tasks running at once (%K)
    shards: int = 1  # array: number of tasks
    warn_s: int = 120  # signal this long before the time limit
    extra: list[str] = field(default_factory=list)  # raw sbatch options, e.g. --qos=high

    def __post_init__(self) -> None:
        def bad(flag: str, value: object, allowed: str) -> InputError:
            return InputError(f"{flag} {value!r} is not allowed; allowed: {allowed}",
                              file="harness submit")

        if self.mode not in MODES:
            raise bad("--mode", self.mode, " | ".join(MODES))
        for flag, value, low in (("--nodes", self.nodes, 1), ("--cpus-per-task",
                                 self.cpus_per_task or 1, 1), ("--gpus-per-node",
                                 self.gpus_per_node or 0, 0), ("--shards", self.shards, 1),
                                 ("--max-parallel", self.max_parallel or 1, 1),
                                 ("--tasks-per-node", self.tasks_per_node or 1, 1),
                                 ("--warn", self.warn_s, 0)):
            if value < low:
                raise bad(flag, value, f"an integer ≥ {low}")
        if self.mode == "array" and self.nodes != 1:
            raise bad("--nodes", self.nodes, "1 with --mode array (each array task is one "
                      "node; use --mode ray or mpi to spread one job over nodes)")
        if self.time is not None and not _TIME.match(self.time):
            raise bad("--time", self.time, "minutes, MM:SS, HH:MM:SS, D-HH or D-HH:MM:SS")
        if self.mem is not None and not _MEM.match(self.mem):
            raise bad("--mem", self.mem, "an integer with an optional K, M, G or T (per node)")
        for flag, value in (("--partition", self.partition), ("--account", self.account)):
            if value is not None and not _NAME.match(value):
                raise bad(flag, value, "letters, digits, '_', '.', '-' and ','")
        for option in self.extra:
            if not option.startswith("--") or "\n" in option:
                raise bad("--sbatch", option, "one long sbatch option such as --qos=high")

    @property
    def ranks_per_node(self) -> int:
        """mpi mode: MPI ranks per node."""
        return self.tasks_per_node or max(1, self.gpus_per_node or 0)


def sbatch_directives(req: Request, *, job_name: str, log_pattern: str) -> list[str]:
    """The ``#SBATCH`` lines for ``req``; ``log_pattern`` is the (unquoted) output path."""
    opts = [f"--job-name={job_name}", f"--output={quote_directive(log_pattern)}",
            "--open-mode=append",  # a requeued job appends to its log
            "--requeue", f"--signal=B:USR1@{req.warn_s}"]
    if req.mode == "array":
        throttle = f"%{req.max_parallel}" if req.max_parallel else ""
        opts += [f"--array=0-{req.shards - 1}{throttle}", "--nodes=1", "--ntasks=1",
                 f"--cpus-per-task={req.cpus_per_task}"]
        if req.gpus_per_node:
            opts.append(f"--gpus-per-task={req.gpus_per_node}")
    elif req.mode == "ray":  # one Ray node per Slurm node
        opts += [f"--nodes={req.nodes}", "--ntasks-per-node=1",
                 f"--cpus-per-task={req.cpus_per_task}"]
        if req.gpus_per_node:
            opts.append(f"--gpus-per-node={req.gpus_per_node}")
    else:  # mpi: one rank per task; each rank sees one GPU of its node
        opts += [f"--nodes={req.nodes}", f"--ntasks-per-node={req.ranks_per_node}",
                 f"--cpus-per-task={req.cpus_per_task}"]
        if req.gpus_per_node:
            opts.append("--gpus-per-task=1")
    if req.mem:
        opts.append(f"--mem={req.mem}")
    if req.time:
        opts.append(f"--time={req.time}")
    if req.partition:
        opts.append(f"--partition={req.partition}")
    if req.account:
        opts.append(f"--account={req.account}")
    opts += req.extra
    return [f"#SBATCH {o}" for o in opts]


def quote_directive(value: str) -> str:
    """``value`` quoted for an ``#SBATCH`` line (sbatch reads double quotes and ``\\"``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
