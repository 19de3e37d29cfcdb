"""Registered problems and strategies, by name.

Plug-ins register themselves when their module is imported (see ``harness.plugin``);
:func:`load_plugins` imports every module of the ``problems`` and ``solvers`` packages and
any module named by the ``harness.plugins`` entry-point group, so dropping a file into
``problems/`` or ``solvers/`` is all it takes to add one.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Any

_REGISTRY: dict[str, dict[str, type]] = {"problem": {}, "strategy": {}}
_LOADED = False
BUILTIN_PACKAGES = ("harness.problems", "harness.solvers")


def register(kind: str, cls: type) -> None:
    """Add a plug-in class; a second class with the same name is an error."""
    table = _REGISTRY[kind]
    other = table.get(cls.name)
    if other is not None and other is not cls and other.__qualname__ != cls.__qualname__:
        raise TypeError(f"{kind} name {cls.name!r} is taken by {other.__module__}.{other.__name__}")
    table[cls.name] = cls


def load_plugins() -> None:
    """Import the built-in plug-in packages and entry points (once)."""
    global _LOADED
    if _LOADED:
        return
    for pkg_name in BUILTIN_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            if not info.name.rsplit(".", 1)[-1].startswith("_"):
                importlib.import_module(info.name)
    for ep in entry_points(group="harness.plugins"):
        ep.load()
    _LOADED = True


def problems() -> dict[str, type]:
    """Every registered problem class by name."""
    load_plugins()
    return dict(sorted(_REGISTRY["problem"].items()))


def strategies() -> dict[str, type]:
    """Every registered strategy class by name."""
    load_plugins()
    return dict(sorted(_REGISTRY["strategy"].items()))


def get(kind: str, name: str) -> Any:
    """The plug-in class ``name`` of ``kind`` ('problem' or 'strategy'); KeyError if none."""
    table = problems() if kind == "problem" else strategies()
    return table[name]
