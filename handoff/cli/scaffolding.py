"""``handoff new``: start a project whose tests pass at once, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .root import _fail, app


@app.command()
def new(
    name: Annotated[str, typer.Argument(metavar="NAME",
                                        help="the project (and its package, with _ for -)")],
    directory: Annotated[Path, typer.Option("--dir", help="where to create it")] = Path("."),
) -> None:
    """Start a project whose tests pass at once, offline.

    A two-state flow, its tests and coverage gate, handoff.toml, a Dockerfile,
    Kubernetes manifests and a CI script."""
    from ..scaffold import ScaffoldError, create

    try:
        root, written = create(name, directory)
    except ScaffoldError as exc:
        raise _fail(str(exc)) from exc
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"next: cd {root} && python -m pip install -e '.[test]' && python -m pytest")
