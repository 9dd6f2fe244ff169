"""Read a guard without running it: the context fields it uses and a short text of it.

A guard is ``lambda c: c.verified`` or a named function whose first parameter is
the Context. Two questions matter for reviews and validation:

- which attributes of the context does it read? Answered from the *bytecode*
  (``LOAD_FAST c`` then ``LOAD_ATTR name``), so it works without source code
  (a guard built by ``exec``, a REPL session, a zipped package);
- what does it say? Answered from the *source* when there is one
  (``c.verified``, ``0 < amount <= c.refund_limit``), else the function's name.

It also runs guards (:class:`GuardCall`) during a call, with these rules:

- an ``async def`` guard (or one returning an awaitable) is awaited, under the
  state's timeout; a coroutine is never taken for a yes;
- a plain guard runs on the event loop, where it cannot be preempted. Its time is
  measured: one that ever takes longer than :data:`SLOW_GUARD` seconds has stalled
  every call of the process once, so from then on it runs in a worker thread, on a
  copy of the context, under the timeout, and the loop never waits for it again.
  One that outlived the timeout on the loop counts as not having answered.

This module imports only the standard library: ``handoff diff`` loads it into a
subprocess next to an older checkout of the user's code.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import dis
import inspect
import linecache
import logging
import time
from collections.abc import Callable
from types import CodeType
from typing import Any

logger = logging.getLogger("handoff")

SLOW_GUARD = 0.05
"""Seconds a plain guard may hold the event loop before it is moved off it for good."""
clock: Callable[[], float] = time.perf_counter
"""What guard times are measured with (a test swaps it for a fake clock)."""


class GuardTimeout(TimeoutError):
    """A guard did not answer within its timeout."""


class GuardParameters:
    """Which of a transition's arguments a guard takes, read from its signature once.

    A guard's first parameter is the Context; the others name transition arguments:
    ``lambda c: ...`` takes none, ``lambda c, count: ...`` takes ``count`` only (however
    many the transition has), ``def g(c, count, kind=None)`` takes both when given and
    keeps its default otherwise, and ``lambda c, **args: ...`` takes them all. Every run,
    the oracle and ``check`` pass arguments through :meth:`select`, so they agree.
    """

    __slots__ = ("names", "required", "takes_all")

    def __init__(self, fn: Callable[..., Any]) -> None:
        try:
            params = list(inspect.signature(fn).parameters.values())[1:]
        except (TypeError, ValueError):  # a builtin or C callable: the context only
            params = []
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self.takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        named = [p for p in params if p.kind in kinds]
        self.names: tuple[str, ...] = tuple(p.name for p in named)
        """The argument names the guard declares (after the Context)."""
        self.required: tuple[str, ...] = tuple(p.name for p in named if p.default is p.empty)
        """Those without a default: each must be a parameter of the transition."""

    def select(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The part of ``arguments`` the guard takes, by name."""
        if self.takes_all:
            return arguments
        return {name: arguments[name] for name in self.names if name in arguments}

    def unknown(self, transition_params: set[str]) -> list[str]:
        """Required guard parameters the transition does not have (its guard could never run)."""
        return [name for name in self.required if name not in transition_params]


def call_guard(fn: Callable[..., Any], parameters: GuardParameters, context: Any,
               arguments: dict[str, Any]) -> Any:
    """``fn(context, **the arguments it takes)``: the one way every caller runs a guard."""
    return fn(context, **parameters.select(arguments))


class GuardCall:
    """Runs one guard: awaited if async, on the loop while fast, in a thread once slow."""

    __slots__ = ("fn", "off_loop", "parameters")

    def __init__(self, fn: Callable[..., Any], parameters: GuardParameters | None = None) -> None:
        self.fn = fn
        self.parameters = parameters or GuardParameters(fn)
        self.off_loop = False
        """Set once the guard held the loop longer than SLOW_GUARD."""

    async def __call__(self, context: Any, arguments: dict[str, Any], timeout: float) -> Any:
        """The guard's answer (truthy: allowed). GuardTimeout when it takes too long."""
        args = self.parameters.select(arguments)
        if self.off_loop:
            private = copy.deepcopy(context)  # its writes, if any, stay on the copy
            try:
                return await asyncio.wait_for(asyncio.to_thread(self.fn, private, **args),
                                              timeout)
            except TimeoutError:
                raise GuardTimeout(f"the guard did not answer within {timeout:g} s") from None
        started = clock()
        answer = self.fn(context, **args)
        if inspect.isawaitable(answer):
            try:
                async with asyncio.timeout(timeout):
                    return await answer
            except TimeoutError:
                raise GuardTimeout(f"the guard did not answer within {timeout:g} s") from None
        took = clock() - started
        if took > SLOW_GUARD:
            self.off_loop = True
            logger.warning("guard %s held the event loop %.3f s (every call of the process "
                           "waited); it runs in a worker thread from now on",
                           guard_text(self.fn), took)
            if took > timeout:
                raise GuardTimeout(f"the guard took {took:.3g} s, more than {timeout:g} s")
        return answer

_ATTR_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR"})
_LOAD_NAME_OPS = frozenset({"LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE", "LOAD_FAST_CHECK"})
_MAX_TEXT = 60


def context_fields(fn: Callable[..., Any]) -> set[str] | None:
    """Attribute names read on the guard's first parameter; None when it cannot tell.

    ``lambda c, amount: amount <= c.limit`` gives ``{"limit"}``. Attributes read in
    nested functions or comprehensions that capture the parameter count too.
    """
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if not isinstance(code, CodeType) or code.co_argcount + code.co_kwonlyargcount < 1:
        return None
    param = code.co_varnames[0]
    found: set[str] = set()
    _collect(code, param, found)
    return found


def _collect(code: CodeType, param: str, found: set[str]) -> None:
    previous: dis.Instruction | None = None
    for ins in dis.get_instructions(code):
        if (
            ins.opname in _ATTR_OPS
            and previous is not None
            and previous.opname in _LOAD_NAME_OPS
            and previous.argval == param
        ):
            found.add(str(ins.argval))
        previous = ins
    for const in code.co_consts:
        # a nested lambda / comprehension that closes over the parameter
        if isinstance(const, CodeType) and param in const.co_freevars:
            _collect(const, param, found)


def guard_text(fn: Callable[..., Any] | None) -> str | None:
    """A short text of the guard: its expression when the source is known, else its name."""
    if fn is None:
        return None
    node = _lambda_node(fn)
    if node is not None:
        text = ast.unparse(node.body)
    else:
        text = getattr(fn, "__name__", None) or type(fn).__name__
        if text == "<lambda>":
            text = "guard"
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def guard_code(fn: Callable[..., Any] | None) -> str | None:
    """The guard's code, normalised, to tell whether its *body* changed between two
    versions (a named guard keeps its name when its body changes): a lambda's or a
    function's source without name, decorators or docstring, else a digest of its bytecode.
    None for no guard, or one that has no code (a callable object)."""
    if fn is None:
        return None
    node: ast.AST | None = _lambda_node(fn)
    if node is None:
        try:
            tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(fn)))
        except (OSError, TypeError, SyntaxError):
            tree = None
        node = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)),
                    None) if tree is not None else None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):  # a tree of our own
            if ast.get_docstring(node) is not None:
                node.body = node.body[1:] or [ast.Pass()]
            node.name, node.decorator_list, node.returns = "guard", [], None
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                arg.annotation = None  # types do not change what it answers
    if node is not None:
        return ast.unparse(node)
    code = getattr(fn, "__code__", None)
    return None if not isinstance(code, CodeType) else f"bytecode:{_code_digest(code)}"


def _code_digest(code: CodeType) -> str:
    import hashlib

    parts = [code.co_code.hex(), repr(code.co_names), repr(code.co_varnames)]
    parts += [_code_digest(c) if isinstance(c, CodeType) else repr(c) for c in code.co_consts]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _lambda_node(fn: Callable[..., Any]) -> ast.Lambda | None:
    """The AST of a lambda, found by its line in its file and its parameter names."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, CodeType) or code.co_name != "<lambda>":
        return None
    tree = _module_ast(code.co_filename)
    if tree is None:
        return None
    args = list(code.co_varnames[: code.co_argcount])
    candidates = [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Lambda)
        and n.lineno == code.co_firstlineno
        and [a.arg for a in n.args.args] == args
    ]
    if len(candidates) > 1:  # two lambdas with the same parameters on one line: use the names
        names = set(code.co_names)
        candidates = [n for n in candidates if _attribute_names(n) - set(args) == names]
    return candidates[0] if len(candidates) == 1 else None


def _attribute_names(node: ast.AST) -> set[str]:
    out = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute):
            out.add(sub.attr)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
            out.add(sub.id)
    return out


_AST_CACHE: dict[str, tuple[str, ast.Module | None]] = {}


def _module_ast(filename: str) -> ast.Module | None:
    """The parsed source file (cached while its text is unchanged)."""
    linecache.checkcache(filename)
    text = "".join(linecache.getlines(filename))
    cached = _AST_CACHE.get(filename)
    if cached is None or cached[0] != text:
        try:
            tree = ast.parse(text) if text else None
        except SyntaxError:
            tree = None
        _AST_CACHE[filename] = cached = (text, tree)
    return cached[1]
