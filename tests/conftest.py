"""Shared fixtures: grid files, a session-wide embedded Ray, CLI helpers, and the means to
wait for a state (a cell held in flight, rows written) instead of sleeping and hoping."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.executors.ray_executor import ray_environment
from harness.folder import OutputFolder

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness.cli"]
# A bound on waiting for a state that takes seconds on an idle machine: far above its time
# on a slow or busy one, so that reaching it only says something is broken.
WAIT_S = 300

ray_environment()  # the session's Ray (below) and every Ray the harness starts
# Generated data sets (the CDR surrogate) go to a cache of this test session, not the
# user's ~/.cache: the tests exercise the generation, and leave nothing behind.
os.environ.setdefault("HARNESS_CACHE", tempfile.mkdtemp(prefix="harness-cache-"))


@pytest.fixture
def write_grid(tmp_path):
    """Write grid text to a file in tmp_path and return its path."""
    def write(text: str, name: str = "grid.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray for the whole session (the Ray executor reuses it)."""
    import logging

    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, object_store_memory=128 * 2**20)
    yield ray
    ray.shutdown()


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``harness ARGS`` in a subprocess; returns the completed process (text)."""
    return subprocess.run([*HARNESS, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def held_grid(release: Path, quick: int = 2, held: int = 2, name: str = "held") -> str:
    """Grid text: ``quick`` probe cells that finish at once, then ``held`` probe cells that
    stay in flight until the file ``release`` exists (the probe's ``wait_for``), in that
    order (``order: file``: the paired order would put a held cell beside each quick one)."""
    quick_cells = f"""
  - problem: probe
    params: {{size: 10}}
    seeds: {list(range(quick))}
    strategies: [probe]""" if quick else ""
    return f"""name: {name}
order: file
experiments:{quick_cells}
  - problem: probe
    params: {{size: 10}}
    seeds: {list(range(held))}
    strategies:
      - probe: {{wait_for: "{release}"}}
"""


def wait_until(what: str, ready: Callable[[], bool],
               proc: subprocess.Popen | None = None) -> None:
    """Poll ``ready()`` until it is true; fail after ``WAIT_S`` seconds, or at once if
    ``proc`` ended first (with its stderr)."""
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}: {err}")
        assert time.monotonic() < deadline, f"not {what} after {WAIT_S} s"
        time.sleep(0.05)


def processes(environment: Callable[[list[bytes]], bool]) -> list[int]:
    """The PIDs of this host's processes whose environment (``KEY=value`` entries) passes
    ``environment``: a test's processes are told apart by a value only that test set."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if environment(env):
            pids.append(int(proc.name))
    return pids


def in_flight(out: Path) -> list[str]:
    """The cell ids the runs of folder ``out`` have in flight now (their in-flight
    lists)."""
    folder = OutputFolder(out)
    return sorted(i for run_id in folder.run_ids() for i in folder.inflight_cells(run_id) or [])
