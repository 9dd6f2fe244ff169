"""Imports inside handoff go one way: a module imports only modules of its layer or below.

The imports are read with ``ast`` from the source (every ``import`` statement, at module
level, inside functions and under ``if TYPE_CHECKING:`` alike), so the test sees what a
reader sees, not only what happened to be imported at run time.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "handoff"

LAYERS: list[list[str]] = [
    ["handoff.errors"],
    ["handoff.records", "handoff.extras", "handoff.settings", "handoff.context", "handoff.config",
     "handoff.guards",
     "handoff._listeners", "handoff._livekit", "handoff.snapshot", "handoff.deadline",
     "handoff.versions", "handoff.migrations", "handoff.background", "handoff.subtasks",
     "handoff.guard_effect", "handoff.tasks", "handoff.approval", "handoff.observers"],
    ["handoff.history", "handoff.redaction", "handoff.plugins", "handoff.offline", "handoff.offline.*",
     "handoff.sensitive_args", "handoff.returns", "handoff.state_tools",
     "handoff.turn_context", "handoff.realtime"],
    ["handoff.transition"],
    ["handoff.state"],
    ["handoff.graph", "handoff.tiers", "handoff.providers", "handoff.voice", "handoff.secrets",
     "handoff.failures",
     "handoff.scaffold",
     "handoff.sealing"],
    ["handoff.fsm"],
    ["handoff.semantics"],
    ["handoff.validate"],
    ["handoff.handover", "handoff.refusals"],
    ["handoff.move", "handoff.tools_executed", "handoff.items_added"],
    ["handoff.run"],
    ["handoff.flow"],
    ["handoff.transcript", "handoff.diagram", "handoff.diagram_diff", "handoff.inflight",
     "handoff.diff_effect",
     "handoff.flowref",
     "handoff.telemetry", "handoff.telemetry.*", "handoff.persistence", "handoff.persistence.*",
     "handoff.events", "handoff.events.*", "handoff.inspector", "handoff.inspector.*",
     "handoff.health"],
    ["handoff.resume", "handoff.tools", "handoff.tools.*", "handoff.states", "handoff.states.*"],
    ["handoff.worker", "handoff.testing", "handoff.testing.*", "handoff.scripts",
     "handoff.settings_reference"],
    ["handoff.console"],
    ["handoff.cli.root"],
    ["handoff.cli.serving"],
    ["handoff.cli.chatting", "handoff.cli.running", "handoff.cli.inspecting", "handoff.cli.checking",
     "handoff.cli.drawing", "handoff.cli.comparing", "handoff.cli.migrating", "handoff.cli.scaffolding"],
    ["handoff.cli", "handoff.cli.__main__"],
    ["handoff"],
]
"""Bottom to top; DESIGN.md §6 with the Flow above the run (the Flow makes runs)."""

TYPE_ONLY_BACK_EDGES = {
    ("handoff.run", "handoff.flow"): "FlowRun.flow is annotated as the Flow that made it",
    ("handoff.move", "handoff.run"): "a Move is annotated with the FlowRun that made it",
    ("handoff.handover", "handoff.run"): "the handoff step is annotated with the run it acts on",
    ("handoff.handover", "handoff.move"): "the handoff step is annotated with the move it ends",
    ("handoff.refusals", "handoff.run"): "a refusal is recorded on the run it belongs to",
    ("handoff.tools_executed", "handoff.run"): "a run hears LiveKit's executed tools with it",
    ("handoff.items_added", "handoff.run"): "a run hears LiveKit's conversation items with it",
}
"""The upward edges allowed, each only under ``if TYPE_CHECKING:``, and why."""


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                for inner in ast.walk(sub):
                    if hasattr(inner, "lineno"):
                        lines.add(inner.lineno)
    return lines


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    type_only = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def add(target: str, line: int) -> None:
        while target and target not in modules:  # handoff.x.y where y is a name in x
            target = target.rpartition(".")[0]
        if target and target != name:
            found.append(Import(name, target, line, line in type_only))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "handoff" or alias.name.startswith("handoff."):
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "handoff" or node.module.startswith("handoff.")):
                stem = node.module
            else:
                continue
            for alias in node.names:
                add(f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem,
                    node.lineno)
    return found


def layer_of(name: str) -> int:
    for index, patterns in enumerate(LAYERS):
        if any(fnmatch(name, p) for p in patterns):
            return index
    raise AssertionError(f"{name} is in no layer of tests/test_layering.py: place it")


def every_import() -> list[Import]:
    modules = all_modules()
    return [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]


def test_every_module_has_a_layer() -> None:
    for name in all_modules():
        layer_of(name)


def test_no_module_imports_one_above_it() -> None:
    upward = []
    for imp in every_import():
        if layer_of(imp.target) <= layer_of(imp.source):
            continue
        if imp.type_only and (imp.source, imp.target) in TYPE_ONLY_BACK_EDGES:
            continue
        where = " (under TYPE_CHECKING)" if imp.type_only else ""
        upward.append(f"{imp.source}:{imp.line} imports {imp.target}{where}")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_the_allowed_back_edges_are_type_only_and_still_needed() -> None:
    edges = [i for i in every_import() if (i.source, i.target) in TYPE_ONLY_BACK_EDGES]
    assert {(i.source, i.target) for i in edges} == set(TYPE_ONLY_BACK_EDGES), (
        "an allowed back edge is gone: remove it from TYPE_ONLY_BACK_EDGES")
    assert all(i.type_only for i in edges), [i for i in edges if not i.type_only]


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for imp in every_import():
        if imp.type_only and (imp.source, imp.target) in TYPE_ONLY_BACK_EDGES:
            continue
        graph.setdefault(imp.source, set()).add(imp.target)
    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> None:
        if node in stack:
            cycle = [*stack[stack.index(node):], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_only_fsm_imports_transitions() -> None:
    def top_level_names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name.split(".")[0] for a in node.names]
        if isinstance(node, ast.ImportFrom) and not node.level:
            return [(node.module or "").split(".")[0]]
        return []

    users = {name for name, path in all_modules().items()
             for node in ast.walk(ast.parse(path.read_text()))
             if "transitions" in top_level_names(node)}
    assert sorted(users) == ["handoff.fsm"]


TOOLKIT_USERS = {
    "handoff.cli.checking": "`handoff check --explore` runs the exhaustive exploration (imported lazily)",
    "handoff.scripts": "`handoff chat --script` talks to a ScriptedLLM (imported lazily)",
}
"""Production modules that may import the testing toolkit, each for a developer command."""


def test_production_modules_never_import_the_toolkit_or_hypothesis() -> None:
    """The call path (the run, the worker, everything a deployed agent loads) never loads
    ``handoff.testing`` or hypothesis, not even lazily; only the developer commands do."""

    def uses(name: str, path: Path) -> set[str]:
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                found.add(("." * node.level) + (node.module or ""))
        return {f for f in found
                if f.split(".")[0] == "hypothesis" or f.lstrip(".").startswith("testing")
                or f.startswith("handoff.testing")}

    offenders = {name: sorted(found) for name, path in all_modules().items()
                 if not name.startswith("handoff.testing") and name not in TOOLKIT_USERS
                 and (found := uses(name, path))}
    assert offenders == {}
    assert all(uses(name, all_modules()[name]) for name in TOOLKIT_USERS), (
        "a module no longer imports the toolkit: remove it from TOOLKIT_USERS")


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The parser resolves relative, from-package and TYPE_CHECKING imports."""
    modules = {"handoff.errors": tmp_path / "errors.py", "handoff.flow": tmp_path / "flow.py",
               "handoff.state": tmp_path / "state.py"}
    source = tmp_path / "errors.py"
    source.write_text("from typing import TYPE_CHECKING\nfrom . import state\n"
                      "if TYPE_CHECKING:\n    from .flow import Flow\n")
    found = imports_of("handoff.errors", source, modules)
    assert [(i.target, i.type_only) for i in found] == [("handoff.state", False),
                                                        ("handoff.flow", True)]
