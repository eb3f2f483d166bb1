# Copyright 2026 reloc_ros contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""The package's shape: data flows one way, no private names cross modules, modules stay readable."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reloc_ros"
ROBOT_SIDE = ("reloc_ros.runtime", "reloc_ros.nodes.relocalization_node", "reloc_ros.nodes.relocalization_outputs",
              "reloc_ros.nodes.ros_params", "reloc_ros.modelfile", "reloc_ros.mapping.storage")
WORKSHOP = ("reloc_ros.training", "reloc_ros.cli", "reloc_ros.bench")
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every reloc_ros import of a module, at any depth (function-level imports count too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("reloc_ros")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("reloc_ros"):
            found.append((node.module, [a.name for a in node.names]))
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_robot_side_never_imports_training_the_cli_or_benchmarks():
    bad = [f"{name} imports {target}" for name, path in MODULES.items() if within(name, ROBOT_SIDE)
           for target, _ in imports(path) if within(target, WORKSHOP)]
    assert bad == []
    assert len([n for n in MODULES if within(n, ROBOT_SIDE)]) > 10  # the check looked at the robot side


def test_no_private_name_is_imported_from_another_module():
    bad = [f"{name}: from {target} import {n}" for name, path in MODULES.items()
           for target, names in imports(path) for n in names if n.startswith("_") and not n.startswith("__")]
    assert bad == []


def test_no_module_is_too_long_to_read():
    lines = {name: path.read_text().count("\n") for name, path in MODULES.items()}
    assert {name: n for name, n in lines.items() if n > MAX_LINES} == {}, "split these by idea"


def import_graph() -> dict[str, set[str]]:
    """Map each module to the package modules it imports (at any depth; ``from pkg import mod``: ``pkg.mod``)."""
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for target, names in imports(path):
            edges |= {f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES}
            if target in MODULES and not all(f"{target}.{n}" in MODULES for n in names or [None]):
                edges.add(target)
        graph[name] = edges - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_the_checks_see_a_violation_when_there_is_one(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from reloc_ros.training.trainer import _secret\n")
    assert imports(bad) == [("reloc_ros.training.trainer", ["_secret"])]

    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
