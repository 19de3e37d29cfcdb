"""Where and with what a run happened: versions, git state, host, command line."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

SOURCE_ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "sciml-harness"  # the name pip knows the harness by


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the harness source tree; (None, None) outside a git checkout."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(SOURCE_ROOT), *args], capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if sha is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return sha, bool(status)


def run_provenance() -> dict[str, Any]:
    """Provenance of the driver, for the run manifest and the rows it writes."""
    sha, dirty = git_state()
    return {
        "harness_version": package_version(DISTRIBUTION),
        "git_sha": sha,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "argv": sys.argv,
        "packages": {name: package_version(name) for name in (
            "torch", "numpy", "scipy", "pandas", "pyarrow", "ray", "scikit-learn")},
    }
