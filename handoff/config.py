"""Project configuration: a ``[tool.handoff.<section>]`` table, or ``[<section>]`` of handoff.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def find_table(section: str, start: Path) -> tuple[dict[str, Any] | None, str]:
    """The ``section`` table and the file it came from, searching from ``start`` upwards.

    A handoff.toml that has the section wins over pyproject.toml in the same folder;
    the first pyproject.toml found is the project root, where the search stops.
    """
    for folder in [start, *start.parents]:
        handoff_toml = folder / "handoff.toml"
        if handoff_toml.is_file():
            data = tomllib.loads(handoff_toml.read_text())
            if section in data:
                return dict(data[section]), str(handoff_toml)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            data = tomllib.loads(pyproject.read_text())
            table = data.get("tool", {}).get("handoff", {}).get(section)
            return (dict(table), str(pyproject)) if table is not None else (None, "")
    return None, ""
