"""Find the flows the commands work on: ``MODULE:ATTR``, ``GITREV:MODULE:ATTR``, a package.

A working-tree flow is imported in this process (the current directory first on
``sys.path``). A flow at a git revision is read without touching the working
tree: ``git archive REV`` is unpacked into a temporary directory and a fresh
Python process imports the module from there (with that revision's own
``handoff`` when the repository holds one), so no module of the other version
is ever cached in this process. The child sends back a :class:`FlowSnap` as JSON.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import pkgutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, FlowDefinitionError, FlowLoadError
from .flow import Flow
from .snapshot import FlowSnap, snapshot


@dataclass(frozen=True)
class FlowRef:
    module: str
    attr: str
    rev: str | None = None

    def __str__(self) -> str:
        return f"{self.rev + ':' if self.rev else ''}{self.module}:{self.attr}"


def parse_ref(text: str, *, allow_rev: bool = False) -> FlowRef:
    """``pkg.mod:flow`` or (with ``allow_rev``) ``REV:pkg.mod:flow``."""
    parts = text.split(":")
    if len(parts) == 2 and all(parts):
        return FlowRef(parts[0], parts[1])
    if allow_rev and len(parts) == 3 and all(parts):
        return FlowRef(parts[1], parts[2], rev=parts[0])
    form = "[GITREV:]MODULE:ATTRIBUTE" if allow_rev else "MODULE:ATTRIBUTE"
    raise FlowLoadError(f"{text!r} is not {form} (e.g. examples.callcenter.flow:flow)")


def load_flow(ref: FlowRef | str) -> Flow[Any]:
    """Import a working-tree flow. ``FlowDefinitionError`` passes through: the module was
    found, but its flow is malformed (``handoff check`` reports those findings)."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    if ref.rev is not None:
        raise FlowLoadError(f"{ref}: a flow at a git revision can only be read as a snapshot")
    value = import_attribute(ref.module, ref.attr)
    if not isinstance(value, Flow):
        raise FlowLoadError(f"{ref} is a {type(value).__name__}, not a handoff Flow")
    return value


def import_attribute(module_name: str, attr: str) -> Any:
    """``module_name.attr``, imported from the working tree, or :class:`FlowLoadError`.

    What the module prints while it is imported goes to stderr (stdout belongs to
    the command: ``check --format json``), and a module that exits at import
    (``sys.exit``) is a load error, not the command's own exit.
    """
    _cwd_on_path()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            module = importlib.import_module(module_name)
    except FlowDefinitionError:
        raise
    except ConfigError as exc:  # a bad setting read at import (a tier): the setting's own line
        raise FlowLoadError(str(exc)) from exc
    except SystemExit as exc:
        raise FlowLoadError(
            f"cannot import {module_name!r}: it called sys.exit({exc.code!r}) while being "
            "imported") from None
    except Exception as exc:  # ImportError, SyntaxError, anything the module raised
        raise FlowLoadError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise FlowLoadError(f"module {module_name!r} has no attribute {attr!r}") from None


def load_snapshot(ref: FlowRef | str) -> FlowSnap:
    """The snapshot of a flow in the working tree or at a git revision."""
    ref = parse_ref(ref, allow_rev=True) if isinstance(ref, str) else ref
    if ref.rev is None:
        try:
            return snapshot(load_flow(ref))
        except FlowDefinitionError as exc:
            raise FlowLoadError(str(exc)) from exc
    return snapshot_at_revision(ref)


def flows_in_package(package: str) -> list[tuple[str, Flow[Any]]]:
    """Every Flow defined at module level in ``package`` and its submodules.

    Returns ``(reference, flow)`` sorted by flow name; a flow re-exported by several
    modules is listed once, under the first module that names it.
    """
    _cwd_on_path()
    try:
        root = importlib.import_module(package)
    except Exception as exc:
        raise FlowLoadError(f"cannot import {package!r}: {type(exc).__name__}: {exc}") from exc
    modules = [root]
    for info in pkgutil.walk_packages(getattr(root, "__path__", []), prefix=package + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except Exception as exc:
            raise FlowLoadError(f"cannot import {info.name!r}: {type(exc).__name__}: {exc}") from exc
    found: dict[int, tuple[str, Flow[Any]]] = {}
    for module in modules:
        for attr, value in sorted(vars(module).items()):
            if isinstance(value, Flow) and id(value) not in found:
                found[id(value)] = (f"{module.__name__}:{attr}", value)
    return sorted(found.values(), key=lambda item: (item[1].name, item[0]))


def _cwd_on_path() -> None:
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))


# -- git revisions --------------------------------------------------------------------
_CHILD = r"""
import importlib, json, sys, types
handoff_dir, module, attr, out = sys.argv[1:5]
pkg = types.ModuleType("_handoff_snap")
pkg.__path__ = [handoff_dir]
sys.modules["_handoff_snap"] = pkg
snap = importlib.import_module("_handoff_snap.snapshot")
try:
    flow = getattr(importlib.import_module(module), attr)
    if not (hasattr(flow, "states") and hasattr(flow, "edges")):
        raise TypeError(f"{module}:{attr} is a {type(flow).__name__}, not a handoff Flow")
    result = {"snapshot": json.loads(snap.snapshot(flow).to_json())}
except SystemExit as exc:
    result = {"error": f"{module} called sys.exit({exc.code!r}) while being imported"}
except Exception as exc:
    result = {"error": f"{type(exc).__name__}: {exc}"}
with open(out, "w") as fh:
    json.dump(result, fh)
"""


LOADER_TIMEOUT = 120.0
"""Seconds the process loading a flow at a git revision may take."""


def snapshot_at_revision(ref: FlowRef, cwd: Path | None = None) -> FlowSnap:
    """Load ``ref.module`` as it is at git revision ``ref.rev`` and snapshot its flow."""
    assert ref.rev is not None
    cwd = cwd or Path.cwd()
    top = Path(_git(["rev-parse", "--show-toplevel"], cwd).decode().strip())
    prefix = _git(["rev-parse", "--show-prefix"], cwd).decode().strip()
    archive = _git(["archive", "--format=tar", ref.rev], top)
    with tempfile.TemporaryDirectory(prefix="handoff-diff-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse odd members
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - git archive output of our own repository
                tar.extractall(tmp)
        root = Path(tmp) / prefix
        if not root.is_dir():
            raise FlowLoadError(f"{ref}: this folder ({prefix.rstrip('/')}) did not exist at "
                                f"{ref.rev}; run the command from a folder that did")
        out = Path(tmp) / "__handoff_snapshot__.json"
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, str(Path(__file__).parent), ref.module, ref.attr,
                 str(out)],
                cwd=root, capture_output=True, text=True, timeout=LOADER_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise FlowLoadError(f"{ref}: importing the flow at {ref.rev} took more than "
                                f"{LOADER_TIMEOUT:g} s (does the module wait at import?)") from None
        if not out.is_file():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1][-300:]
            raise FlowLoadError(f"{ref}: the loader failed (exit {proc.returncode}): {last}")
        result = json.loads(out.read_text())
    if "error" in result:
        raise FlowLoadError(f"{ref}: {result['error']}")
    return FlowSnap.from_json(json.dumps(result["snapshot"]))


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=60)
    except FileNotFoundError as exc:
        raise FlowLoadError("git is not installed") from exc
    if proc.returncode != 0:
        raise FlowLoadError(f"git {' '.join(args[:2])}: {proc.stderr.decode().strip()}")
    return proc.stdout
