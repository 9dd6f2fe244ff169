"""The docs cannot rot: every code block of README.md and docs/ is run or checked.

- ``python`` blocks run, page by page, in order, in one module per page (a guide builds on
  its earlier blocks, as a reader does); top-level ``await`` is allowed, and an
  ``async def main()`` the page defines is awaited at the end. The tests a page shows are run
  too: each ``test_*`` function without fixtures (``@pytest.mark.parametrize`` cases
  included; hypothesis ``@given`` tests draw their examples), and each ``unittest.TestCase``
  (the generated state machines). Everything runs offline: the pages use the ScriptedLLM.
- ``toml`` blocks must parse; ``sh`` blocks may only name ``make`` targets of the Makefile
  and ``handoff`` commands of the CLI.
- A block that cannot run here (a cluster, a key, a fragment shown for its shape) is marked
  with ``<!-- docs-test: skip REASON -->`` on the line before it; the reason is required,
  and the site builds without it showing.

The site itself is built with ``mkdocs build --strict`` (broken links and references fail),
and reads nothing from another host: no fonts, scripts or styles from the web.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import shutil
import subprocess
import sys
import tomllib
import types
import unittest
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = {"docs/benchmarks.md"}  # written by `make bench`: tables, no code
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s+(?P<reason>\S.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    code: str
    skip: str | None


def pages() -> list[str]:
    found = ["README.md", *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").rglob("*.md")))]
    return [p for p in found if p not in GENERATED]


def blocks(page: str) -> list[Block]:
    lines = (ROOT / page).read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, info = len(m["indent"]), m["info"].strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            body.append(lines[i][indent:])
            i += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.search(before)
        lang = info.split()[0].lower() if info else ""
        found.append(Block(page, start + 1, lang, "\n".join(body) + "\n",
                           skip["reason"] if skip else None))
        i += 1
    return found


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.M))


def _handoff_commands() -> set[str]:
    from typer.main import get_command

    from handoff.cli import app

    return set(get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("page", pages())
def test_the_python_of_each_page_runs(page: str, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    """A block with top-level ``await`` runs on the page's event loop; any other block runs
    as a module's code does at import, with no loop running (so a ``transition_cover`` or a
    ``replay`` at top level works as it does in a test module)."""
    code_blocks = [b for b in blocks(page) if b.lang in ("python", "py") and b.skip is None]
    if not code_blocks:
        pytest.skip(f"{page} has no python block to run")
    monkeypatch.chdir(tmp_path)  # a page that writes files writes them here
    name = "docs_" + re.sub(r"\W", "_", page.removesuffix(".md"))
    module = types.ModuleType(name)
    module.__file__ = str(tmp_path / f"{name}.py")
    monkeypatch.setitem(sys.modules, name, module)
    with asyncio.Runner() as loop:
        for block in code_blocks:
            code = compile(block.code, f"{page}:{block.line}", "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(code, module.__dict__)
            if inspect.iscoroutine(result):
                loop.run(result)
        main = module.__dict__.get("main")
        if inspect.iscoroutinefunction(main) and not inspect.signature(main).parameters:
            loop.run(main())
        _run_the_pages_tests(module, loop)


_GENERATED_CASES = "hypothesis.stateful"
"""The module of a state machine's ``.TestCase`` (``FlowStateMachine(flow).TestCase``): made
by hypothesis, bound to a ``Test*`` name by the page."""


def _run_the_pages_tests(module: types.ModuleType, loop: asyncio.Runner) -> None:
    """Run the tests a page defines, as pytest would (fixture-free functions, parametrize
    cases, TestCase classes); a test that needs a fixture is a skip-marked block instead."""
    for name, value in list(module.__dict__.items()):
        if isinstance(value, type) and issubclass(value, unittest.TestCase) and \
                value.__module__ in (module.__name__, _GENERATED_CASES) and name.startswith("Test"):
            result = unittest.TestResult()
            unittest.defaultTestLoader.loadTestsFromTestCase(value).run(result)
            assert result.wasSuccessful(), f"{name}: {result.failures or result.errors}"
        elif name.startswith("test_") and callable(value) and \
                getattr(value, "__module__", None) == module.__name__:
            for args in _cases(value):
                outcome = value(*args)
                if inspect.iscoroutine(outcome):
                    loop.run(outcome)


def _cases(test: Callable[..., object]) -> list[tuple[object, ...]]:
    """The argument tuples pytest would call ``test`` with."""
    marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
    if not marks:
        params = inspect.signature(test).parameters
        assert not params, f"{test.__name__} needs fixtures {list(params)}: mark its block skip"
        return [()]
    [mark] = marks
    names = mark.args[0] if isinstance(mark.args[0], (list, tuple)) else mark.args[0].split(",")
    return [tuple(v) if len(names) > 1 else (v,) for v in mark.args[1]]


@pytest.mark.parametrize("page", pages())
def test_the_config_and_commands_of_each_page_exist(page: str) -> None:
    targets, commands = _make_targets(), _handoff_commands()
    for block in blocks(page):
        where = f"{page}:{block.line}"
        if block.skip is not None:
            continue
        if block.lang == "toml":
            tomllib.loads(block.code)
        elif block.lang in ("sh", "bash", "console"):
            for raw in block.code.splitlines():
                line = raw.strip().removeprefix("$ ")
                words = line.split("#", 1)[0].split()
                if not words:
                    continue
                if words[0] == "make":
                    named = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
                    assert set(named) <= targets, f"{where}: no make target {named}"
                elif words[0] == "handoff" and len(words) > 1 and not words[1].startswith("-"):
                    assert words[1] in commands, f"{where}: no `handoff {words[1]}` command"


def test_every_skip_says_why() -> None:
    for page in pages():
        text = (ROOT / page).read_text()
        for marker in re.findall(r"<!--\s*docs-test:[^>]*-->", text):
            assert SKIP.search(marker), f"{page}: {marker} must be `docs-test: skip REASON`"


MKDOCS_MISSING = shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built strictly (``make docs``)."""
    if MKDOCS_MISSING:
        pytest.skip("mkdocs is not installed (the dev extra installs it)")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                      **__import__("os").environ},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_the_site_builds_strictly(site: Path) -> None:
    assert (site / "reference" / "core" / "index.html").exists()


EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)
LOADED = re.compile(r"<(script|link|img|iframe|source|video|audio)\b[^>]*?\b(src|href)=[\"']([^\"']+)",
                    re.I)


def external_loads(html: str) -> list[str]:
    """What a page makes the browser fetch from another host (links one clicks are fine)."""
    return [f"<{tag} {attr}={url}>" for tag, attr, url in LOADED.findall(html) if EXTERNAL.match(url)]


def test_external_loads_are_recognised() -> None:
    page = ('<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
            '<script src="//cdn.example/x.js"></script><img src="images/a.png">'
            '<a href="https://github.com/livekit/agents">LiveKit</a>')
    assert external_loads(page) == ["<link href=https://fonts.googleapis.com/css?family=Roboto>",
                                     "<script src=//cdn.example/x.js>"]


def test_the_site_reads_nothing_from_other_hosts(site: Path) -> None:
    """Offline, and the reader's visit goes nowhere else: no web fonts, CDN scripts or styles."""
    found = []
    for page in sorted(site.rglob("*.html")):
        found += [f"{page.relative_to(site)}: {load}" for load in external_loads(page.read_text())]
    for sheet in sorted(site.rglob("*.css")):
        found += [f"{sheet.relative_to(site)}: {url}" for url in
                  re.findall(r"(?:@import\s+|url\()\s*[\"']?((?:https?:)?//[^\"')\s]+)", sheet.read_text())]
    assert not found, "\n".join(found[:20])
