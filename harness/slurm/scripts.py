"""Render the sbatch script of a submission from ``templates/<mode>.sbatch``.

Templates are plain bash with ``@NAME@`` placeholders. Every path goes in through
:func:`shlex.quote` (a folder with spaces or quotes works), the ``#SBATCH`` header comes
from :func:`~harness.slurm.directives.sbatch_directives`, and ``common.sh`` (signal
handling and requeue) is shared by every mode.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..folder import OutputFolder
from .directives import Request, sbatch_directives

TEMPLATES = Path(__file__).parent / "templates"
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


@dataclass(frozen=True)
class ScriptInputs:
    """Everything a script needs besides the resource request."""

    grid_name: str
    grid_file: Path  # absolute
    out: Path  # absolute
    cells: int
    harness: str  # the harness executable (absolute path, or a name on PATH)
    ray: str = "ray"
    setup: tuple[str, ...] = ()  # shell lines run before the harness (module load, …)
    run_flags: tuple[str, ...] = ()  # more flags of the driver's harness run (ray, mpi)


def fill(template: str, values: dict[str, str]) -> str:
    """Replace every ``@NAME@``; a placeholder without a value is a programming error."""
    def sub(m: re.Match[str]) -> str:
        if m[1] not in values:
            raise KeyError(f"template placeholder @{m[1]}@ has no value")
        return values[m[1]]

    return _PLACEHOLDER.sub(sub, template)


def render(req: Request, inputs: ScriptInputs) -> str:
    """The complete sbatch script for ``req`` (its mode picks the template)."""
    log = OutputFolder(inputs.out).job_log_pattern(array=req.mode == "array")
    directives = sbatch_directives(req, job_name=f"harness-{inputs.grid_name}",
                                   log_pattern=str(log))
    common = fill((TEMPLATES / "common.sh").read_text(), {"WARN_S": str(req.warn_s)})
    setup = "\n".join(["# -- setup (--setup)", *inputs.setup]) if inputs.setup else ""
    values = {
        "DIRECTIVES": "\n".join(directives), "GRID_NAME": inputs.grid_name,
        "CELLS": str(inputs.cells), "SHARDS": str(req.shards),
        "HARNESS": shlex.quote(inputs.harness), "RAY": shlex.quote(inputs.ray),
        "GRID": shlex.quote(str(inputs.grid_file)), "OUT": shlex.quote(str(inputs.out)),
        "SETUP": setup, "COMMON": common.rstrip("\n"),
        "GPUS_PER_NODE": str(req.gpus_per_node),
        "RUN_FLAGS": "".join(f" {shlex.quote(f)}" for f in inputs.run_flags),
    }
    text = fill((TEMPLATES / f"{req.mode}.sbatch").read_text(), values)
    return re.sub(r"\n{3,}", "\n\n", text)  # an empty setup leaves no gap
