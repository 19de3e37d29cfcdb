"""``docs/results.md``, generated: the results contract in words (``results_doc.md.in``)
with every column of :mod:`harness.schema` — the core ones and one per parameter and metric
of each registered plug-in — in tables.

``harness schema`` prints it; ``harness schema --write docs/results.md`` (``make docs``)
updates the file, and a test keeps the checked-in copy current.
"""

from __future__ import annotations

from collections import defaultdict
from importlib import resources

from . import registry
from .schema import CORE_COLUMNS, HISTORY_COLUMNS, Column

TEMPLATE = "results_doc.md.in"
_TYPES = {int: "int64", float: "double", str: "string", bool: "bool"}


def _table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {kind} | {doc.replace('|', '/')} |" for name, kind, doc in rows]
    return "\n".join(lines)


def _core(columns: list[Column]) -> list[tuple[str, str, str]]:
    return [(c.name, str(c.type).replace("timestamp[us, tz=UTC]", "timestamp (UTC)"), c.doc)
            for c in columns]


def _plugin_tables() -> tuple[str, str]:
    """(parameters, metrics) tables: one row per column, each owner's words."""
    found: dict[str, dict[str, dict[str, list[str]]]] = {"p": defaultdict(lambda: defaultdict(
        list)), "m": defaultdict(lambda: defaultdict(list))}
    kinds: dict[str, str] = {}
    for kind, table, prefix in (("problem", registry.problems(), "p_"),
                                ("strategy", registry.strategies(), "s_")):
        for name, cls in table.items():
            for pname, param in cls.parameters.items():
                found["p"][prefix + pname][param.doc].append(f"{kind} {name}")
                kinds[prefix + pname] = _TYPES[param.kind]
            for mname, metric in cls.metrics.items():
                found["m"][mname][metric.doc].append(name)
                kinds[mname] = _TYPES[metric.kind]

    def rows(table: dict[str, dict[str, list[str]]]) -> list[tuple[str, str, str]]:
        out = []
        for col in sorted(table):
            parts = sorted((", ".join(sorted(owners)), doc) for doc, owners in
                           table[col].items())
            out.append((col, kinds[col], "; ".join(f"{o}: {d}" for o, d in parts)))
        return out

    return _table(rows(found["p"])), _table(rows(found["m"]))


def render() -> str:
    """The text of docs/results.md for the registered plug-ins."""
    groups: dict[str, list[Column]] = defaultdict(list)
    for col in CORE_COLUMNS:
        groups[col.group].append(col)
    params, metrics = _plugin_tables()
    cells = [f"### {group}\n\n{_table(_core(cols))}" for group, cols in groups.items()]
    cells += [f"### parameters (one per declared parameter)\n\n{params}",
              f"### metrics (one per declared metric)\n\n{metrics}"]
    template = resources.files("harness").joinpath(TEMPLATE).read_text()
    text = template.replace("{cells_columns}", "\n\n".join(cells))
    return text.replace("{history_columns}", _table(_core(HISTORY_COLUMNS)))
