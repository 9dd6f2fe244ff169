"""What the distribution declares matches what the code does, and every install line names it.

handoff is published as ``livekit-handoff`` (``handoff`` on the package index is an
unrelated project); these checks read the sources, so they are quick. The wheel and sdist
themselves are built and installed into fresh venvs by ``tests/test_packaging_install.py``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from handoff.extras import DISTRIBUTION
from handoff.scaffold import FILES

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PYPROJECT["optional-dependencies"]
REPOSITORY_ONLY = {"dev", "docs"}


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _texts() -> dict[str, str]:
    """Every file a user reads an install line in: README, docs, the package (scaffold
    templates and error messages included), examples, deploy/, the Makefile and CI."""
    paths = [ROOT / "README.md", ROOT / "Makefile", ROOT / ".ci" / "run",
             *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "handoff").rglob("*.py")),
             *sorted((ROOT / "examples").rglob("*.py")), *sorted((ROOT / "deploy").rglob("*")),
             *sorted((ROOT / "examples").rglob("*.md"))]
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in paths if p.is_file()}
    texts.update({f"handoff new: {name}": body for name, body in FILES.items()})
    return texts


def install_lines(text: str) -> list[str]:
    """The arguments of each ``pip install`` in ``text`` (a line broken right after
    ``pip install`` continues on the next), up to the end of the command."""
    text = re.sub(r"pip install\s*\n\s*", "pip install ", text)
    return [m[1] for m in re.finditer(r"pip install([^\n`;&#)]*)", text)]


def installed_requirements(line: str) -> list[Requirement]:
    """The requirements a ``pip install`` line names (paths, options and prose skipped)."""
    found = []
    for word in line.split():
        word = word.strip("'\"\\")
        if not word or word.startswith(("-", ".", "/", "$")):
            continue
        try:
            found.append(Requirement(word))
        except InvalidRequirement:
            continue
    return found


def test_install_lines_are_recognised() -> None:
    assert install_lines("run `pip install\n  'livekit-handoff[redis]'` now") == [
        " 'livekit-handoff[redis]'"]
    [req] = installed_requirements(" 'handoff[anthropic]' (or")
    assert req.name == "handoff" and req.extras == {"anthropic"}
    assert installed_requirements(' -q -e ".[test]"') == []


def test_no_install_line_names_the_unrelated_handoff_project() -> None:
    wrong, unknown_extras, seen = [], [], 0
    for where, text in _texts().items():
        for line in install_lines(text):
            for req in installed_requirements(line):
                seen += req.name == DISTRIBUTION
                if canonicalize_name(req.name) == "handoff":
                    wrong.append(f"{where}: pip install{line}")
                elif req.name == DISTRIBUTION and not req.extras <= set(EXTRAS):
                    unknown_extras.append(f"{where}: {req} (extras are {sorted(EXTRAS)})")
    assert not wrong, "`handoff` on the index is another project; install livekit-handoff:\n" + \
        "\n".join(wrong)
    assert not unknown_extras, "\n".join(unknown_extras)
    assert seen >= 8  # the check reads the lines it means to


def test_the_scaffold_and_the_dockerfiles_depend_on_livekit_handoff() -> None:
    project = tomllib.loads(FILES["pyproject.toml"].format(
        name="x", package="x", flow_ref="x.flow:flow", flow_name="x"))["project"]
    assert _names(project["dependencies"]) == {DISTRIBUTION}
    assert [str(r) for r in project["optional-dependencies"]["test"]] == [f"{DISTRIBUTION}[testing]"]
    assert re.search(r"^ARG HANDOFF=livekit-handoff$", FILES["Dockerfile"], flags=re.M)
    assert PYPROJECT["name"] == DISTRIBUTION


def test_the_extras_match_their_use() -> None:
    assert _names(EXTRAS["testing"]) == {"pytest", "pytest-asyncio", "hypothesis"}
    assert _names(EXTRAS["voice"]) == {"pocketsphinx"} and _names(EXTRAS["redis"]) == {"redis"}
    user_extras = set(EXTRAS) - REPOSITORY_ONLY
    assert {"testing", "redis", "voice", "vault", "anthropic", "google", "groq"} <= user_extras
    # dev is the union of every user extra plus the repository's tools
    dev = [Requirement(r) for r in EXTRAS["dev"]]
    itself = set().union(*(r.extras for r in dev if r.name == DISTRIBUTION))
    assert itself == user_extras | {"docs"}
    core = _names(PYPROJECT["dependencies"])
    assert not core & {"pytest", "hypothesis", "mkdocs", "ruff", "mypy", "selenium"}


def _third_party_imports() -> dict[str, list[tuple[str, str, bool]]]:
    """Per top-level module imported by handoff/: (file, line, unconditional) for each
    import (unconditional = a statement of the module body itself, not in try/def/if)."""
    std = set(sys.stdlib_module_names)
    found: dict[str, list[tuple[str, str, bool]]] = {}
    for path in sorted((ROOT / "handoff").rglob("*.py")):
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                head = name.split(".")[0]
                if head in std or head == "handoff":
                    continue
                key = "livekit.plugins" if name.startswith("livekit.plugins") else (
                    "livekit." + name.split(".")[1] if head == "livekit" and "." in name else head)
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.setdefault(key, []).append((where, name, id(node) in top))
    return found


def _distributions(module: str) -> set[str]:
    dists = importlib.metadata.packages_distributions()
    if module.startswith("livekit."):
        sub = module.split(".")[1]
        if sub == "plugins":
            return {"livekit-plugins-openai", "livekit-plugins-silero"}  # the core's plugins
        return {{"agents": "livekit-agents", "api": "livekit-api", "rtc": "livekit",
                 "protocol": "livekit-protocol"}[sub]}
    return {canonicalize_name(d) for d in dists.get(module, [])}


def test_every_import_of_the_package_is_declared() -> None:
    core = _names(PYPROJECT["dependencies"])
    anywhere = core.union(*(_names(reqs) for name, reqs in EXTRAS.items()
                            if name not in REPOSITORY_ONLY))
    testing = _names(EXTRAS["testing"])
    problems = []
    for module, uses in _third_party_imports().items():
        dists = {canonicalize_name(d) for d in _distributions(module)}
        assert dists, f"{module} ({uses[0][0]}) is not installed here: which package is it?"
        for where, name, unconditional in uses:
            in_toolkit = where.startswith("handoff/testing/")
            allowed = core | testing if in_toolkit else (core if unconditional else anywhere)
            if not dists & allowed:
                problems.append(f"{where}: import {name} ({', '.join(sorted(dists))}) is not declared"
                                + (" in the core dependencies" if unconditional else ""))
    assert not problems, "\n".join(problems)


def test_production_modules_never_import_the_toolkit_at_import_time() -> None:
    for path in sorted((ROOT / "handoff").rglob("*.py")):
        if "testing" in path.relative_to(ROOT).parts:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                assert "testing" not in target.split("."), f"{path}:{node.lineno} imports {target}"


def _floor(spec: SpecifierSet) -> Version | None:
    floors = [Version(s.version) for s in spec if s.operator in (">=", "~=", "==", ">")]
    return max(floors) if floors else None


def test_floors_are_no_lower_than_livekit_agents_own() -> None:
    theirs = {}
    for raw in importlib.metadata.requires("livekit-agents") or []:
        req = Requirement(raw)
        if req.marker is None or "extra" not in str(req.marker):
            theirs[canonicalize_name(req.name)] = _floor(req.specifier)
    assert len(theirs) > 10
    ours = [Requirement(r) for r in PYPROJECT["dependencies"]] + [
        Requirement(r) for reqs in EXTRAS.values() for r in reqs]
    low = []
    for req in ours:
        floor = theirs.get(canonicalize_name(req.name))
        if floor is not None and (_floor(req.specifier) or Version("0")) < floor:
            low.append(f"{req} (livekit-agents 1.8.9 needs >= {floor})")
    assert not low, "\n".join(low)
    mine = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    assert {"aiohttp", "numpy", "pydantic-core", "typing-extensions"} <= mine


WITHOUT_HYPOTHESIS = "import sys; sys.modules['hypothesis'] = None  # as if not installed\n"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_HYPOTHESIS + code], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_without_hypothesis_the_toolkit_says_which_extra_in_one_line() -> None:
    done = _python(
        "import handoff.testing as t, handoff.testing.pytest_plugin\n"
        "from handoff.testing import ScriptedLLM, FlowDriver, call  # the core's part\n"
        "try:\n    t.FlowStateMachine\nexcept ModuleNotFoundError as e:\n    print(e)\n"
        "try:\n    t.nothing\nexcept AttributeError as e:\n    print(e)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "handoff.testing.FlowStateMachine needs hypothesis, from the testing extra: "
        "pip install 'livekit-handoff[testing]'",
        "module 'handoff.testing' has no attribute 'nothing'"]


def test_check_explore_without_hypothesis_is_one_line_and_exit_2() -> None:
    done = _python("from handoff.cli import main; sys.argv = ['handoff', 'check', "
                   "'examples.callcenter.flow:flow', '--explore', '2']; main()")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == ("error: handoff check --explore needs hypothesis, from the testing "
                           "extra: pip install 'livekit-handoff[testing]'\n")
