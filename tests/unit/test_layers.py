"""How the packages lean on each other, read from the source: the contracts import
nothing of the services or the gateway, the vocabulary imports nothing at all, nothing
served imports the operator's tools, and no
module of the project imports, even for type checking only, a module that imports it
back."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "services", "orchestrator")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    modules = {_module(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found.update(target for target in targets if target in modules and target != name)
        graph[name] = found
    return graph


GRAPH = _imports()


def test_the_contracts_import_nothing_of_the_services_or_the_gateway() -> None:
    leaks = {name: sorted(t for t in targets if not t.startswith("contracts")) for name, targets in GRAPH.items()}
    assert {name: found for name, found in leaks.items() if name.startswith("contracts") and found} == {}


def test_the_vocabulary_imports_nothing() -> None:
    assert GRAPH["contracts.vocabulary"] == set()


def test_the_gateway_and_the_services_import_nothing_of_the_operators_tools() -> None:
    # The tools drive the system from outside (start it, load it, fill it); a served
    # process that imported them would carry the benchmark's and the prefill's code.
    served = {name: targets for name, targets in GRAPH.items() if not name.startswith("orchestrator.tools")}
    leaks = {name: sorted(t for t in targets if t.startswith("orchestrator.tools")) for name, targets in served.items()}
    assert {name: found for name, found in leaks.items() if found} == {}


def test_no_module_imports_one_that_imports_it_back() -> None:
    cycles = []
    for start in GRAPH:
        stack, seen = [(start, [start])], set()
        while stack:
            name, path = stack.pop()
            for target in GRAPH[name]:
                if target == start:
                    cycles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert cycles == []
