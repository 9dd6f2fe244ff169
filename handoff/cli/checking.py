"""``handoff check``: validate a flow, and with ``--explore N`` run every move sequence
up to N moves against the oracle.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from typing import Annotated, Any

import typer

from ..errors import FlowDefinitionError
from ..flowref import FlowLoadError, load_flow
from .root import _count, _fail, app


class CheckFormat(StrEnum):
    text = "text"
    json = "json"


@app.command()
def check(
    flow_ref: Annotated[str, typer.Argument(metavar="MODULE:ATTRIBUTE", help="The flow")],
    strict: Annotated[bool, typer.Option(help="Count warnings as errors")] = False,
    fmt: Annotated[CheckFormat, typer.Option("--format", help="text, or json for CI")] = (
        CheckFormat.text),
    explore_depth: Annotated[int | None, typer.Option(
        "--explore", min=0, metavar="N",
        help="Also run every move sequence up to N moves against the oracle")] = None,
) -> None:
    """Validate a flow: errors and warnings, each with its fix.

    Warnings are unreachable states, dead ends and the like.

    Exit status 0 when there are no errors (warnings are printed: "0 errors, 2
    warnings"), 1 when there are errors (or warnings with --strict), 2 when the flow
    cannot be loaded. A module whose Flow(...) raises at import is
    loaded but malformed: its findings are printed and the status is 1. With
    ``--explore N`` a counterexample (the shortest) is printed and the status is 1.
    """
    from ..validate import check as run_check

    loaded = True
    try:
        flow = load_flow(flow_ref)
        findings = run_check(flow, strict=strict)
        summary = f"{_count(len(flow.states), 'state')}, {_count(len(flow.edges), 'transition')}"
    except FlowLoadError as exc:
        if fmt is CheckFormat.json:
            typer.echo(json.dumps({"flow": flow_ref, "loaded": False, "error": str(exc)}))
        raise _fail(str(exc)) from exc
    except FlowDefinitionError as exc:
        loaded = False
        findings = list(exc.findings)
        summary = "Flow(...) raised FlowDefinitionError"
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    explored = _explore(flow, explore_depth) if loaded and explore_depth is not None else None
    if fmt is CheckFormat.json:
        typer.echo(json.dumps({
            "flow": flow_ref, "loaded": True, "built": loaded, "strict": strict, "errors": errors,
            "warnings": warnings, "findings": [f.to_dict() for f in findings],
            **({"explore": explored} if explored is not None else {}),
        }, indent=2))
    else:
        for finding in findings:
            typer.echo(str(finding))
        verdict = "ok" if not findings else f"{_count(errors, 'error')}, {_count(warnings, 'warning')}"
        typer.echo(f"{flow_ref}: {verdict} ({summary})")
        if explored is not None:
            typer.echo(explored["text"])
    failed = explored is not None and not explored["ok"]
    raise typer.Exit(1 if errors or failed else 0)


def _explore(flow: Any, depth: int) -> dict[str, Any]:
    """``handoff check --explore N``: the exhaustive exploration's summary."""
    try:
        from ..testing.explore import explore
    except ModuleNotFoundError as exc:
        from ..extras import missing

        raise _fail(str(missing("handoff check --explore", "testing", exc))) from exc

    runtime = logging.getLogger("handoff")
    level = runtime.level
    runtime.setLevel(logging.CRITICAL)  # the runs' own log lines (a loop's error transition
    try:                                # taken, a body that raised) are findings, or not
        result = explore(flow, depth=depth)
    finally:
        runtime.setLevel(level)
    return {"ok": result.ok, "depth": depth, "paths": result.paths, "steps": result.steps,
            "seconds": round(result.seconds, 3),
            "counterexample": [str(m) for m in result.counterexample or []],
            "problems": result.problems, "unreached": result.unreached,
            "ungenerated": result.ungenerated, "text": result.describe(with_rate=True)}
