"""The import graph of nuclib matches docs/design.md's table of rooms, without cycles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nuclib"
# Leaf helpers that any room may use.
ANYWHERE = {"nuclib._files", "nuclib._version"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def room(module: str) -> str:
    """``nuclib.postprocess.star`` -> ``nuclib.postprocess``."""
    return ".".join(module.split(".")[:2])


def imports(module: str) -> list[tuple[str, str]]:
    """``(imported module, imported name or "")`` for every import in ``module``, at any depth."""
    path = MODULES[module]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    package = package.rsplit(".", 1)[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((full, "") if full in MODULES else (base, alias.name))
    return [(m, name) for m, name in out if m == "nuclib" or m.startswith("nuclib.")]


def module_graph() -> dict[str, set[str]]:
    graph = {}
    for module in MODULES:
        targets = set()
        for target, _ in imports(module):
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != module and target != "nuclib":
                targets.add(target)
        graph[module] = targets
    return graph


def design_table() -> dict[str, set[str]]:
    """``{room: rooms it may import}`` from docs/design.md."""
    text = (ROOT / "docs" / "design.md").read_text()
    table = {}
    for line in text.splitlines():
        row = re.match(r"^\| `(nuclib[.\w]*)` \|.*\| ([^|]*) \|$", line)
        if row:
            allowed = row.group(2).strip()
            table[row.group(1)] = (set() if allowed == "—" else
                                   {f"nuclib.{name.strip()}" for name in allowed.split(",")})
    return table


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_design_table_lists_every_room():
    table = design_table()
    rooms = {room(m) for m in MODULES if m != "nuclib"} - ANYWHERE
    assert rooms == set(table), f"rooms missing from / extra in docs/design.md: {rooms ^ set(table)}"


def test_every_arrow_between_rooms_is_in_the_design_table():
    table = design_table()
    unexpected = sorted(
        f"{module} imports {target}"
        for module, targets in module_graph().items() if module != "nuclib"
        for target in targets
        if room(target) != room(module) and target not in ANYWHERE
        and room(target) not in table.get(room(module), set()))
    assert not unexpected, "arrows that docs/design.md does not show:\n" + "\n".join(unexpected)


def test_there_is_no_import_cycle():
    assert find_cycle(module_graph()) is None, f"import cycle: {find_cycle(module_graph())}"


def test_no_private_name_crosses_a_room():
    crossing = sorted(
        f"{module} imports {name} from {source}"
        for module in MODULES for source, name in imports(module)
        if room(source) != room(module) and source not in ANYWHERE
        and (name.startswith("_") and not name.startswith("__")
             or source.rsplit(".", 1)[-1].startswith("_")))
    assert not crossing, "private names used across rooms:\n" + "\n".join(crossing)


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": set(), "c": {"a", "b"}}, None),
])
def test_the_cycle_finder_finds_cycles(graph, cycle):
    assert find_cycle(graph) == cycle
