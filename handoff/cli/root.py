"""The ``handoff`` command's root: the typer app and its ``--version``, and what every
subcommand shares (its usage line, a bare ``--inspect``, the one-line error).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperCommand


class _Command(TyperCommand):
    """A subcommand whose usage line names its arguments as they are written
    (``handoff check [OPTIONS] MODULE:ATTRIBUTE``, not ``{flow_ref}``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [p.removeprefix("{").removesuffix("}") for p in super().collect_usage_pieces(ctx)]


class _Handoff(typer.Typer):
    """The command; ``--inspect`` may come without its address (click options cannot).

    Help is plain text (no ``<bool>`` beside every flag, paragraphs reflowed), and every
    subcommand is a :class:`_Command`.
    """

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and kwargs.get("args") is None:
            kwargs["args"] = with_inspect_default(sys.argv[1:])
        return super().__call__(*args, **kwargs)


def with_inspect_default(args: list[str]) -> list[str]:
    """``args`` with a bare ``--inspect`` (last, or before another option) given its default."""
    from ..inspector.server import DEFAULT_ADDRESS

    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--inspect" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out[i] = f"--inspect={DEFAULT_ADDRESS}"
    return out


app = _Handoff(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
               help="Multi-agent voice AI on LiveKit Agents, as a state machine.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from ..extras import DISTRIBUTION

        try:
            typer.echo(f"{DISTRIBUTION} {version(DISTRIBUTION)}")
        except PackageNotFoundError:
            typer.echo(f"{DISTRIBUTION}: not installed (running from a source tree)")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool | None, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the installed version and exit.")
    ] = None,
) -> None:
    """handoff: multi-agent voice AI on LiveKit Agents, as a state machine."""


def _count(n: int, noun: str) -> str:
    """``1 transition``, ``2 transitions``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
