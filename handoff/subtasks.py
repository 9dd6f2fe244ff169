"""Which LiveKit sub-tasks a State's code awaits, read from its code (for diagrams and diffs).

A State awaits LiveKit's ``AgentTask``s (``await GetEmailTask()``, a ``TaskGroup``) inside
its tools, transition bodies and hooks without declaring them anywhere; at run time
``run.tasks`` lists the ones talking now. To draw them, this module reads the compiled
code of the state's own functions (nested functions and lambdas included, so
``group.add(lambda: GetPhoneNumberTask(), ...)`` counts) and keeps the names that resolve,
in the function's module, to an ``AgentTask`` subclass: a global name
(``GetEmailTask``) or an attribute of a module it imported (``workflows.GetEmailTask``).

It is a reading of the code, not of what runs: a task built by a factory elsewhere, or
under a name made at run time, is not seen. Nothing here executes user code.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterable, Iterator
from typing import Any

from livekit.agents import AgentTask, llm


def awaited_tasks(functions: Iterable[Any]) -> tuple[str, ...]:
    """The names of the ``AgentTask`` subclasses the code of ``functions`` refers to,
    sorted (functions, transition bodies, function tools; anything else is ignored)."""
    found: set[str] = set()
    for function in functions:
        func = _function_of(function)
        if func is None:
            continue
        namespace = func.__globals__
        for name in _names(func.__code__):
            for candidate in _resolve(name, namespace):
                if isinstance(candidate, type) and issubclass(candidate, AgentTask):
                    found.add(candidate.__name__)
    return tuple(sorted(found))


def _function_of(obj: Any) -> types.FunctionType | None:
    """The plain function behind a method, a function tool or a ``@transition``."""
    if isinstance(obj, llm.FunctionTool | llm.RawFunctionTool):
        obj = getattr(obj, "_func", None)
    obj = getattr(obj, "func", obj)  # a TransitionDef's body
    if isinstance(obj, staticmethod | classmethod):
        obj = obj.__func__
    obj = inspect.unwrap(obj) if callable(obj) else obj
    return obj if isinstance(obj, types.FunctionType) else None


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # a nested function, lambda or comprehension
            yield from _names(const)


def _resolve(name: str, namespace: dict[str, Any]) -> Iterator[Any]:
    if name in namespace:
        yield namespace[name]
        return
    for value in namespace.values():  # ``workflows.GetEmailTask``: an attribute of a module
        if isinstance(value, types.ModuleType) and name in vars(value):  # no module __getattr__
            yield vars(value)[name]
