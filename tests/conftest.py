"""Shared fixtures: grid files, a session-wide embedded Ray, and CLI helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness.cli"]

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
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
