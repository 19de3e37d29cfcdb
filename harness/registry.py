"""Registered problems, strategies and families, by name.

Plug-ins register themselves when their module is imported (see ``harness.plugin`` and
``harness.family``). :func:`load_plugins` imports every module of the built-in plug-in
packages (``harness.problems``, ``harness.solvers``: the repository's ``problems/`` and
``solvers/`` folders), every module named by the ``harness.plugins`` entry-point group,
and every module or package named in ``$HARNESS_PLUGINS`` (comma-separated), so dropping
a file into ``problems/`` or ``solvers/``, installing a package that declares the entry
point, or naming a module in the environment is all it takes to add one.

A family's report section is not imported here: it is named by its family declaration
and imported only by ``harness report``, so workers never load report code.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import InputError, RegistrationError

KINDS = ("problem", "strategy", "family")
_REGISTRY: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_LOADED = False
BUILTIN_PACKAGES = ("harness.problems", "harness.solvers")
ENTRY_POINT_GROUP = "harness.plugins"
PLUGINS_ENV = "HARNESS_PLUGINS"
_PLUGIN_MODULES: set[str] = set()  # every module load_plugins imported


def _origin(obj: Any) -> str:
    """Where ``obj`` was defined: ``module.Name`` for a class, its ``module`` otherwise."""
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    return str(getattr(obj, "module", "") or type(obj).__module__)


def register(kind: str, obj: Any, name: str | None = None) -> None:
    """Add a plug-in (a class, or a family declaration) under its name; a second one with
    the same name from another module is refused, naming both."""
    name = name or obj.name
    table = _REGISTRY[kind]
    other = table.get(name)
    if other is not None and other is not obj and _origin(other) != _origin(obj):
        raise RegistrationError(f"{kind} name {name!r} is registered twice: by "
                                f"{_origin(other)} and by {_origin(obj)}; rename one of them")
    table[name] = obj


def load_plugins() -> None:
    """Import the built-in plug-in packages, the entry points and ``$HARNESS_PLUGINS``
    (once)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for pkg_name in BUILTIN_PACKAGES:
        _import_tree(pkg_name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _import_tree(ep.value.split(":")[0])
    for name in filter(None, (s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            _import_tree(name)
        except ModuleNotFoundError as err:
            raise InputError(f"cannot import plug-in module {name!r} ({err}); it must be "
                             f"importable (on PYTHONPATH or installed); the value is a "
                             f"comma-separated list of modules", file=f"${PLUGINS_ENV}") from None


def _import_tree(name: str) -> None:
    """Import module ``name`` and, for a package, every public module below it except the
    report sections that family declarations name."""
    module = importlib.import_module(name)
    _PLUGIN_MODULES.add(name)
    if not hasattr(module, "__path__"):
        return
    for info in pkgutil.walk_packages(module.__path__, prefix=name + "."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("_") or info.name in _section_modules():
            continue
        importlib.import_module(info.name)
        _PLUGIN_MODULES.add(info.name)


def _section_modules() -> set[str]:
    return {f.section.split(":")[0] for f in _REGISTRY["family"].values() if f.section}


def table(kind: str) -> dict[str, Any]:
    """The plug-ins of ``kind`` registered so far (without loading any)."""
    return _REGISTRY[kind]


def plugin_files() -> list[Path]:
    """The source files of every loaded plug-in module (for provenance)."""
    load_plugins()
    files = []
    for name in sorted(_PLUGIN_MODULES):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            files.append(Path(path).resolve())
    return files


def problems() -> dict[str, type]:
    """Every registered problem class by name."""
    load_plugins()
    return dict(sorted(_REGISTRY["problem"].items()))


def strategies() -> dict[str, type]:
    """Every registered strategy class by name."""
    load_plugins()
    return dict(sorted(_REGISTRY["strategy"].items()))


def families() -> dict[str, Any]:
    """Every declared family (``harness.family.Family``) by name."""
    load_plugins()
    return dict(sorted(_REGISTRY["family"].items()))


def get(kind: str, name: str) -> Any:
    """The plug-in ``name`` of ``kind`` ('problem', 'strategy' or 'family'); KeyError if
    none."""
    load_plugins()
    return _REGISTRY[kind][name]
