"""The ordinary tools a flow offers, where, and with which parameters.

A state's agent offers its ``@function_tool`` methods, the free tools of its
``tools = [...]`` (which State moves to ``own_tools``) and the flow-wide tools of
``Flow(tools=[...])``, Toolsets expanded: the semantic core decides which
(:func:`handoff.semantics.offer`), for the run and for the machines alike. The
generated machine calls them as the LLM would, with arguments drawn from the
parameters LiveKit itself derives for the tool's schema
(:func:`livekit.agents.llm.utils.function_arguments_to_pydantic_model`), so a
required parameter always gets a value of its type.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from livekit.agents import llm
from livekit.agents.llm.utils import function_arguments_to_pydantic_model
from pydantic import BaseModel

from ..flow import Flow
from ..semantics import offer


@dataclass(frozen=True)
class OrdinaryTool:
    """One ordinary (non-transition) tool of a flow and the states that offer it."""

    name: str
    tool: llm.FunctionTool | llm.RawFunctionTool
    states: tuple[str, ...]

    def arguments_model(self) -> type[BaseModel] | None:
        """The pydantic model of the tool's LLM-visible parameters (None for a raw-schema
        tool, whose arguments only its JSON schema describes)."""
        if isinstance(self.tool, llm.RawFunctionTool):
            return None
        tool: Any = self.tool
        if _is_method(tool):
            tool = tool.__get__(_Unbound())  # the signature LiveKit shows: without `self`
        return function_arguments_to_pydantic_model(tool)


class _Unbound:
    """Stands for the agent a method tool is bound to (only its signature is read)."""


def _is_method(tool: Any) -> bool:
    try:
        params = list(inspect.signature(tool).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] == "self"


def state_tools(flow: Flow[Any], state: str) -> Mapping[str, llm.FunctionTool | llm.RawFunctionTool]:
    """Name → tool for every ordinary tool ``state``'s agent offers (its methods, its
    ``tools = [...]``, the flow's ``tools=``): the runtime's own decision
    (:func:`handoff.semantics.offer`), so the machines call exactly what the agent has."""
    return offer(flow, state).tools


def ordinary_tools(flow: Flow[Any]) -> dict[str, OrdinaryTool]:
    """Every ordinary tool of ``flow`` by name, with the states that offer it."""
    owners: dict[str, list[str]] = {}
    tools: dict[str, llm.FunctionTool | llm.RawFunctionTool] = {}
    for state in flow.states:
        for name, tool in state_tools(flow, state).items():
            owners.setdefault(name, []).append(state)
            tools.setdefault(name, tool)
    return {name: OrdinaryTool(name, tools[name], tuple(owners[name])) for name in tools}
