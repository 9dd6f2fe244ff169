"""Whether a changed guard tightens or loosens: both versions run on the same contexts.

``handoff diff`` has each guard's code as text (:func:`handoff.guards.guard_code`), from
the working tree or a git revision. :func:`compare_guards` compiles both (builtins only:
a guard that needs its module's names cannot be judged this way, and says so), runs
them on contexts built from the Context's fields at their boundary values
(:meth:`handoff.versions.FieldSpec.samples`: every value of each field with the others
varied too, a fixed pseudo-random selection when the product is large) and compares
the answers: the new guard refuses a context the old one allowed (*tightens*), allows
one it refused (*loosens*), both, or neither on any context tried (*same*). A guard
that raises refuses, as at run time.

Like :mod:`handoff.versions` this module imports only the standard library.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal

from .versions import FieldSpec

Direction = Literal["same", "tightens", "loosens", "both"]
MAX_CONTEXTS = 2000
"""Most contexts each guard is run on."""


@dataclass(frozen=True)
class GuardChange:
    """How a guard's answers changed, with a context of each kind as an example."""

    direction: Direction | None
    """None: the guards could not be run here (why says why)."""
    refused_now: dict[str, Any] | None = None
    """A context the old guard allowed and the new one refuses."""
    allowed_now: dict[str, Any] | None = None
    why: str = ""


def compare_guards(old_code: str | None, new_code: str | None,
                   fields: Iterable[FieldSpec]) -> GuardChange:
    """Run the old and the new guard (None: no guard, allows all) on the same contexts."""
    try:
        old, new = _compiled(old_code), _compiled(new_code)
    except _CannotRun as exc:
        return GuardChange(None, why=str(exc))
    refused_now = allowed_now = None
    answered = False
    for values in contexts(list(fields)):
        before, after = _answer(old, values), _answer(new, values)
        answered = answered or (before is not None and after is not None)
        if bool(before) and not after and refused_now is None:
            refused_now = values
        if bool(after) and not before and allowed_now is None:
            allowed_now = values
        if refused_now is not None and allowed_now is not None:
            break
    if not answered:
        return GuardChange(None, why="the guards raise on every context tried (they read "
                                     "more than the Context's fields)")
    direction: Direction = ("both" if refused_now and allowed_now else "tightens" if refused_now
                            else "loosens" if allowed_now else "same")
    read = _reads(old_code) | _reads(new_code)
    return GuardChange(direction, _only(refused_now, read), _only(allowed_now, read))


def _reads(code: str | None) -> set[str]:
    """The attributes a guard's code reads (of any name: its context parameter)."""
    if code is None or code.startswith("bytecode:"):
        return set()
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}


def _only(values: dict[str, Any] | None, names: set[str]) -> dict[str, Any] | None:
    """The example, shown with the fields the guards read (all, when that is unknown)."""
    if values is None or not names:
        return values
    return {k: v for k, v in values.items() if k in names} or values


def contexts(fields: Sequence[FieldSpec]) -> Iterable[dict[str, Any]]:
    """Contexts from every field's boundary values: all combinations, or a fixed
    selection of :data:`MAX_CONTEXTS` of them, each field's every value included."""
    names = [f.name for f in fields]
    values = [f.samples() or [None] for f in fields]
    total = 1
    for options in values:
        total *= len(options)
    if total <= MAX_CONTEXTS:
        yield from (dict(zip(names, combo, strict=True)) for combo in itertools.product(*values))
        return
    rng = random.Random(0)
    base = [options[0] for options in values]
    for i, options in enumerate(values):  # each value of each field at least once
        for value in options:
            yield dict(zip(names, [*base[:i], value, *base[i + 1:]], strict=True))
    for _ in range(MAX_CONTEXTS):
        yield dict(zip(names, [rng.choice(options) for options in values], strict=True))


class _CannotRun(Exception):
    pass


def _compiled(code: str | None) -> Callable[[Any], Any] | None:
    if code is None:
        return None
    if code.startswith("bytecode:"):
        raise _CannotRun("its source is not available")
    namespace: dict[str, Any] = {"__builtins__": __builtins__}
    try:
        if code.startswith("lambda"):
            fn = eval(code, namespace)
        else:
            exec(code, namespace)
            fn = namespace["guard"]
    except Exception as exc:
        raise _CannotRun(f"its code does not compile alone: {type(exc).__name__}") from None
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.default is inspect.Parameter.empty]
    if len(params) != 1 or inspect.iscoroutinefunction(fn):
        raise _CannotRun("it takes the transition's arguments, or is async")
    return fn


def _answer(guard: Callable[[Any], Any] | None, values: dict[str, Any]) -> bool | None:
    """True/False, or None when it raised (a refusal at run time)."""
    if guard is None:
        return True
    try:
        return bool(guard(SimpleNamespace(**values)))
    except Exception:
        return None
