"""The docs cannot rot: every code block of README.md and docs/ is run or checked.

- ``python`` blocks run, page by page, in order, in one module per page (a guide builds on
  its earlier blocks, as a reader does); top-level ``await`` is allowed, and an
  ``async def main()`` the page defines is awaited at the end. Everything runs offline: the
  pages use the ScriptedLLM.
- ``toml`` blocks must parse; ``sh`` blocks may only name ``make`` targets of the Makefile
  and ``handoff`` commands of the CLI.
- A block that cannot run here (a cluster, a key, a fragment shown for its shape) is marked
  with ``<!-- docs-test: skip REASON -->`` on the line before it; the reason is required,
  and the site builds without it showing.

The site itself is built with ``mkdocs build --strict`` (broken links and references fail).
"""

from __future__ import annotations

import ast
import inspect
import re
import shutil
import subprocess
import sys
import tomllib
import types
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
async def test_the_python_of_each_page_runs(page: str, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    code_blocks = [b for b in blocks(page) if b.lang in ("python", "py") and b.skip is None]
    if not code_blocks:
        pytest.skip(f"{page} has no python block to run")
    monkeypatch.chdir(tmp_path)  # a page that writes files writes them here
    name = "docs_" + re.sub(r"\W", "_", page.removesuffix(".md"))
    module = types.ModuleType(name)
    module.__file__ = str(tmp_path / f"{name}.py")
    monkeypatch.setitem(sys.modules, name, module)
    for block in code_blocks:
        code = compile(block.code, f"{page}:{block.line}", "exec",
                       flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, module.__dict__)
        if inspect.iscoroutine(result):
            await result
    main = module.__dict__.get("main")
    if inspect.iscoroutinefunction(main) and not inspect.signature(main).parameters:
        await main()


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


@pytest.mark.skipif(shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs")
                    .exists(), reason="mkdocs is not installed (make docs installs it)")
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                      **__import__("os").environ},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "core" / "index.html").exists()
