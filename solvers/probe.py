"""``probe``: a strategy that does what it is told (work, sleep, wait, fail) for backend
checks."""

from __future__ import annotations

import os
import time
from typing import ClassVar

import torch

from harness.family import declare_family
from harness.params import Param
from harness.plugin import Diverged, Fit, Metric, RunContext, Strategy

declare_family("probe", "Probe: backend checks")  # the generic report section, no claims

FAILURES = ("none", "raise", "nan", "diverge", "oom", "crash")
# A test hook: the factor this environment variable gives scales every cell's spin, so a
# test can make "the same code, slower" under unchanged cell ids (harness compare's tests).
SLOWDOWN = "HARNESS_PROBE_SLOWDOWN"


def spin(seconds: float) -> int:
    """Keep one CPU busy for ``seconds`` of wall time; returns the loop count."""
    end, count = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        count += 1
    return count


class ProbeStrategy(Strategy):
    """Scale the vector in a few logged steps, optionally sleeping, spinning or failing."""

    name = "probe"
    family = "probe"
    parameters: ClassVar[dict[str, Param]] = {
        "fail": Param(str, "none", "none, raise (ValueError), nan (a NaN metric), diverge "
                      "(raises Diverged), oom (a real allocation that cannot succeed), crash "
                      "(the worker process aborts)", choices=FAILURES),
        "sleep_s": Param(float, 0.0, "seconds to sleep while training", low=0),
        "spin_s": Param(float, 0.0, "seconds to keep a CPU busy while training", low=0),
        "steps": Param(int, 3, "training steps, each logged to the history", low=0),
        "scale": Param(float, 0.5, "factor applied to the vector at each step"),
        "wait_for": Param(str, "", "a file: the cell waits until it exists (holds a cell in "
                          "flight until a test or an operator releases it; empty: no wait)"),
    }
    metrics: ClassVar[dict[str, Metric]] = {
        "probe_steps": Metric(int, "steps taken"),
    }

    def fit(self, task: torch.Tensor, run: RunContext) -> Fit:
        p = self.params
        if p["sleep_s"]:
            time.sleep(p["sleep_s"])
        if p["spin_s"]:
            spin(p["spin_s"] * float(os.environ.get(SLOWDOWN, "1")))
        while p["wait_for"] and not os.path.exists(p["wait_for"]):
            time.sleep(0.02)
        fail = p["fail"]
        if fail == "raise":
            raise ValueError("probe asked to fail")
        if fail == "diverge":
            raise Diverged("probe asked to diverge")
        if fail == "oom":
            torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: the allocator refuses
        if fail == "crash":
            os.abort()
        x = task.clone()
        for step in range(p["steps"]):
            x = x * p["scale"]
            run.log("norm", float(torch.linalg.norm(x)), step=step)
        if fail == "nan":
            x = x * float("nan")
        return Fit(x, {"probe_steps": p["steps"]})

