"""A user installs livekit-handoff the way the README says, from the wheel this checkout builds.

The sdist and the wheel are built (the wheel from the sdist, as an index would) from a copy
of the tracked files; the wheel is installed into a fresh venv under a temporary folder,
with no repository on the path, and the README's install block is followed line by line
(``livekit-handoff`` standing for the built wheel):

1. the core install: ``handoff --version``; pytest (installed the way any project has it)
   on an unrelated one-line test file passes, with handoff's pytest plugin loaded and no
   hypothesis; the README's twenty lines run; ``handoff chat --script`` talks to a new
   project offline; ``check --explore`` names the extra it needs in one line;
2. ``[testing]`` on top (the packages a fresh ``[testing]`` install has): ``handoff new``,
   the project's ``pip install -e ".[test]"`` (handoff from the built wheel) and its own
   pytest with the coverage gate.

One venv for both steps keeps the test near a minute (the core install is ~500 MB of
wheels to unpack); ``pip check`` confirms the environment is consistent at the end.
Everything comes from this machine's configured package indexes and wheel cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def readme_block(heading: str, lang: str) -> str:
    """The first ``lang`` block under ``## heading`` in the README."""
    section = README.split(f"\n## {heading}\n", 1)[1]
    return section.split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def _run(args: list[str] | str, cwd: Path, env: dict[str, str], *, stdin: str | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, input=stdin, text=True, capture_output=True,
                          timeout=timeout, shell=isinstance(args, str))


def _ok(done: subprocess.CompletedProcess[str], step: str) -> str:
    assert done.returncode == 0, f"{step}: exit {done.returncode}\n{done.stdout[-3000:]}\n" \
        f"{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it, from a copy of the tracked files."""
    base = tmp_path_factory.mktemp("packaging")
    source, out = base / "source", base / "dist"
    tracked = subprocess.run(["git", "ls-files", "-z", "handoff", "pyproject.toml", "README.md"],
                             cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes((ROOT / name).read_bytes())
    _ok(_run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
             base, dict(os.environ)), "python -m build")
    return out


def test_the_sdist_and_wheel_hold_the_package_and_its_metadata(dist: Path) -> None:
    [wheel] = dist.glob("livekit_handoff-*.whl")
    [sdist] = dist.glob("livekit_handoff-*.tar.gz")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        [meta] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(meta).decode()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "handoff = handoff.cli:app" in zf.read(entry_points).decode()
    assert "Name: livekit-handoff" in metadata
    assert "handoff/testing/pytest_plugin.py" in names and "handoff/inspector/static/index.html" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/"))]
    for extra in ("testing", "redis", "voice", "vault", "anthropic"):
        assert f"Provides-Extra: {extra}" in metadata
    assert 'Requires-Dist: hypothesis>=6.100; extra == "testing"' in metadata
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "README.md", "handoff/cli/__init__.py"} <= members


def test_a_user_follows_the_readme_install_block(dist: Path, tmp_path: Path) -> None:
    [wheel] = dist.glob("livekit_handoff-*.whl")
    venv = tmp_path / "venv"
    _ok(_run([sys.executable, "-m", "venv", str(venv)], tmp_path, dict(os.environ)), "venv")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "HANDOFF_", "OPENAI_", "LIVEKIT_",
                                "HYPOTHESIS_"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_COMPILE="1")  # compiled on import instead
    home = tmp_path / "home"  # the user's folder: nothing of the repository in reach
    home.mkdir()

    lines = [line.split("#", 1)[0].strip() for line in readme_block("Install", "sh").splitlines()]
    lines = [line for line in lines if line]
    assert lines[:2] == ["pip install livekit-handoff", "pip install 'livekit-handoff[testing]'"]

    def follow(line: str, cwd: Path) -> str:
        # `livekit-handoff` on the index is this wheel here
        line = re.sub(r"(?<![\w/.-])livekit-handoff(?=[\[' ]|$)", str(wheel), line)
        return _ok(_run(f"set -e; {line}", cwd, env), f"README: {line}")

    # 1. the core install (pytest as any project has it, without handoff's testing extra)
    follow(lines[0], home)
    _ok(_run(["pip", "install", "-q", "pytest"], home, env), "pip install pytest")
    assert _ok(_run(["handoff", "--version"], home, env), "version").strip() == \
        f"livekit-handoff {wheel.name.split('-')[1]}"

    unrelated = home / "other-project"
    unrelated.mkdir()
    (unrelated / "test_sum.py").write_text("def test_sum() -> None:\n    assert 1 + 1 == 2\n")
    out = _ok(_run(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--handoff-coverage"],
                   unrelated, env), "pytest in an unrelated project")
    assert "1 passed" in out and "handoff transition coverage" in out  # the plugin loaded

    (home / "twenty.py").write_text(
        readme_block("Twenty lines", "python") + "\nimport asyncio\nasyncio.run(main())\n"
        "import handoff, importlib.util\nprint(handoff.__file__, importlib.util.find_spec('hypothesis'))\n")
    said = _ok(_run(["python", "twenty.py"], home, env), "README twenty lines").splitlines()
    assert said[0] == "Helper Ann"
    assert said[1].startswith(str(venv)) and said[1].endswith(" None")  # the wheel; no hypothesis

    _ok(_run(["handoff", "new", "scratch"], home, env), "handoff new (core)")
    chat = _ok(_run(["handoff", "chat", "scratch.flow:flow", "--script", "scratch.scripts:replies"],
                    home / "scratch", {**env, "PYTHONPATH": str(home / "scratch")},
                    stdin="I'm Ann\n"), "handoff chat --script (core)")
    assert "Greeter → Helper by caller_identified" in chat
    explore = _run(["handoff", "check", "scratch.flow:flow", "--explore", "2"], home / "scratch",
                   {**env, "PYTHONPATH": str(home / "scratch")})
    assert explore.returncode == 2 and explore.stderr.strip() == (
        "error: handoff check --explore needs hypothesis, from the testing extra: "
        "pip install 'livekit-handoff[testing]'")

    # 2. the testing extra, then a new project and its own tests
    follow(lines[1], home)
    rest = "; ".join(lines[2:])  # one shell: the block's `cd` holds for the lines after it
    [name] = re.findall(r"handoff new (\S+)", rest)
    out = follow(rest, home)
    assert re.search(r"\d+ passed", out) and "failed" not in out, out[-3000:]
    project = home / name
    shown = _ok(_run("pip check && pip show livekit-handoff", project, env), "pip check, show")
    assert f"Location: {venv}" in shown and "Editable project location" not in shown
