"""``handoff diff``: compare two versions of a flow, judged for calls in flight."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import FlowDefinitionError
from ..flowref import FlowLoadError, load_flow
from .root import _fail, app


class DiffFormat(StrEnum):
    svg = "svg"
    png = "png"
    dot = "dot"
    mermaid = "mermaid"
    markdown = "markdown"
    json = "json"


@app.command()
def diff(
    old: Annotated[str, typer.Argument(
        metavar="OLD", help="[GITREV:]MODULE:ATTRIBUTE, e.g. main:pkg.flow:flow")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="[GITREV:]MODULE:ATTRIBUTE")],
    fmt: Annotated[DiffFormat, typer.Option("--format", "-f")] = DiffFormat.markdown,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write; stdout for markdown/mermaid/dot if absent")] = None,
    exit_code: Annotated[bool, typer.Option(
        "--exit-code", help="Exit 1 when the change breaks calls in flight: it needs a "
        "migration the new version does not declare")] = False,
) -> None:
    """Compare two versions of a flow, judged for calls in flight.

    A diagram, a PR table (with each change judged for calls checkpointed by the old
    version: safe, tightens, needs a migration, and the migration to write) or JSON.
    A side written GITREV:MODULE:ATTRIBUTE is loaded from that git revision in a
    separate process; the working tree is not touched.
    """
    from ..diagram import GraphvizMissing, render
    from ..diagram_diff import compare, diff_dot, diff_markdown, diff_mermaid
    from ..diff_effect import check_by_resuming
    from ..flowref import load_snapshot, parse_ref
    from ..inflight import assess, inflight_json, inflight_markdown

    try:
        changes = compare(load_snapshot(old), load_snapshot(new),
                          labels=(_side_label(old, new), _side_label(new, old)))
        # the new side loaded here: its verdicts come from resuming the old one's checkpoints
        live = None if parse_ref(new, allow_rev=True).rev is not None else load_flow(new)
    except (FlowLoadError, FlowDefinitionError) as exc:
        raise _fail(str(exc)) from exc
    in_flight = assess(changes)
    if live is not None:
        check_by_resuming(in_flight, live)
    data: Any
    if fmt is DiffFormat.markdown:
        data = diff_markdown(changes) + "\n" + inflight_markdown(in_flight)
    elif fmt is DiffFormat.json:
        data = json.dumps(inflight_json(in_flight), indent=2) + "\n"
    elif fmt is DiffFormat.mermaid:
        data = diff_mermaid(changes)
    elif fmt is DiffFormat.dot:
        data = diff_dot(changes).source
    else:
        if output is None:
            raise _fail(f"-f {fmt.value} needs -o PATH")
        try:
            data = render(diff_dot(changes), fmt.value)
        except GraphvizMissing as exc:
            raise _fail(str(exc)) from exc
    if output is None:
        typer.echo(data, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            output.write_bytes(data)
        else:
            output.write_text(data)
        typer.echo(f"wrote {output}")
    raise typer.Exit(1 if exit_code and in_flight.breaking else 0)


def _side_label(ref: str, other: str) -> str:
    """``main`` for ``main:pkg.flow:flow``, ``working tree`` for ``pkg.flow:flow``; the
    whole reference when the two sides name different modules."""
    rev = ref.split(":")[0] if ref.count(":") == 2 else None
    if ref.split(":")[-2:] != other.split(":")[-2:]:
        return ref
    return rev or "working tree"
