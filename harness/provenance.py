"""Where and with what a run happened: versions, git state, host, command line."""

from __future__ import annotations

import platform
import site
import socket
import subprocess
import sys
import sysconfig
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


@lru_cache(maxsize=4)
def git_state(root: Path = SOURCE_ROOT,
              code_files: tuple[Path, ...] = ()) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout at ``root``; (None, None) outside one.

    Dirty means a tracked file is modified, or one of ``code_files`` (the loaded plug-in
    modules) is not in the commit: untracked inside the checkout, or outside it and not
    part of an installed distribution. Either way the commit alone does not hold the code
    that produced the results."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if sha is None:
        return None, None
    if git("status", "--porcelain", "--untracked-files=no"):
        return sha, True
    top = Path(git("rev-parse", "--show-toplevel") or root).resolve()
    inside = [f for f in code_files if f.is_relative_to(top)]
    tracked = set((git("ls-files", "--full-name", "--", *map(str, inside)) or "").splitlines()) \
        if inside else set()
    untracked = [f for f in inside if f.relative_to(top).as_posix() not in tracked]
    outside = [f for f in code_files if not f.is_relative_to(top) and not _installed(f)]
    return sha, bool(untracked or outside)


def _installed(path: Path) -> bool:
    """Whether ``path`` lies in a site-packages folder (an installed distribution, whose
    version the run records) rather than loose on disk."""
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    roots |= set(site.getsitepackages()) | {site.getusersitepackages()}
    return any(path.is_relative_to(Path(r).resolve()) for r in roots if r)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says), so
    two runs can tell whether they ran on the same kind of machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_provenance() -> dict[str, Any]:
    """Provenance of the driver, for the run manifest and the rows it writes."""
    from . import registry

    sha, dirty = git_state(SOURCE_ROOT, tuple(registry.plugin_files()))
    return {
        "harness_version": package_version(DISTRIBUTION),
        "git_sha": sha,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "argv": sys.argv,
        "packages": {name: package_version(name) for name in (
            "torch", "numpy", "scipy", "pandas", "pyarrow", "ray", "scikit-learn")},
    }
