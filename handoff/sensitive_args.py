"""Sensitive tool and transition arguments: a parameter marked pii like a Context field.

::

    @function_tool
    async def verify_account(self, ctx: RunContext[Call], account_id: str,
                             pin: Annotated[str, Field(json_schema_extra={"pii": True})]) -> str:

The model writes the value itself (the caller said it), so nothing knew it was sensitive
before the call. handoff learns it the moment the model's call arrives, before LiveKit
runs (or logs) the tool: the agent's ``llm_node`` reads the call from the model's stream
and the value joins the Context's sensitive memory (:meth:`Context.remember_sensitive`).
From there the one mechanism of :mod:`handoff.redaction` keeps it out of logs, spans,
events, checkpoints and the inspector, as it does a pii field's values. The tool itself,
a transition body and ``run.go()`` remember them too (a realtime model has no
``llm_node``). Once the tools ran, the stored calls are scrubbed (:func:`scrub_calls`), so
later requests to the model, summaries and the next states' history carry ``[redacted]``.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from livekit.agents import llm
from livekit.agents.llm.utils import function_arguments_to_pydantic_model
from pydantic import BaseModel

from .context import Context, sensitive_fields

PiiArguments = Mapping[str, frozenset[str]]
"""Tool name → the names of its parameters marked pii (tools with none left out)."""

_by_class: weakref.WeakKeyDictionary[type, dict[tuple[str, ...], PiiArguments]] = (
    weakref.WeakKeyDictionary())


def pii_parameters(tool: llm.Tool | llm.Toolset) -> frozenset[str]:
    """The parameters of ``tool`` marked ``{"pii": True}`` (none for other tools)."""
    if isinstance(tool, llm.FunctionTool):
        return sensitive_fields(function_arguments_to_pydantic_model(tool))
    if isinstance(tool, llm.RawFunctionTool):
        properties = tool.info.raw_schema.get("parameters", {}).get("properties", {})
        return frozenset(name for name, schema in properties.items()
                         if isinstance(schema, Mapping) and schema.get("pii"))
    return frozenset()


def pii_arguments(owner: type, tools: Sequence[llm.Tool | llm.Toolset]) -> PiiArguments:
    """The pii parameters of ``tools`` (those of Toolsets included), worked out once per
    ``owner`` class and set of tool names."""
    flat = list(_flatten(tools))
    key = tuple(sorted(t.id for t in flat))
    known = _by_class.setdefault(owner, {})
    if key not in known:
        found = {t.id: pii_parameters(t) for t in flat}
        known[key] = {name: params for name, params in found.items() if params}
    return known[key]


def remember_arguments(context: Context, names: frozenset[str],
                       arguments: str | Mapping[str, Any] | BaseModel | None) -> None:
    """Make the values of the parameters ``names`` in ``arguments`` (the model's JSON, or
    the parsed arguments) sensitive values of ``context``."""
    if not names or arguments is None:
        return
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError:  # not JSON (LiveKit refuses the call): keep the whole text out
            context.remember_sensitive([arguments])
            return
    if isinstance(arguments, BaseModel):
        arguments = arguments.model_dump(mode="json")
    if isinstance(arguments, Mapping):
        context.remember_sensitive(arguments.get(name) for name in names)


def scrub_calls(calls: Iterable[llm.FunctionCall], scrub: Callable[[str], str]) -> None:
    """Rewrite the arguments of the model's executed ``calls`` in place with ``scrub``:
    LiveKit stores these very objects in the agent's history and the session's, which later
    requests, summaries and checkpoints read (called from ``function_tools_executed``,
    which LiveKit emits before it stores them)."""
    for fnc in calls:
        text = scrub(fnc.arguments)
        if text != fnc.arguments:
            fnc.arguments = text


def _flatten(tools: Sequence[llm.Tool | llm.Toolset]) -> Any:
    for tool in tools:
        if isinstance(tool, llm.Toolset):
            yield from _flatten(tool.tools)
        elif isinstance(tool, llm.FunctionTool | llm.RawFunctionTool):
            yield tool
