"""Boundary values read from the guards: where a guard's answer changes.

A guard ``lambda c, size: 1 <= size <= 12 and c.verified`` changes its answer at
``size`` 0/1 and 12/13 and at ``verified`` False/True. Those are the values worth
trying, whatever else hypothesis draws: :func:`guard_boundaries` reads them from the
guard's source (``ast``), so the search does not depend on which constants hypothesis
happened to mine from the modules loaded.

It also splits a guard into its conditions (the operands of a top-level ``and``), so
a search that never got a guard to say yes can say *which condition* never held.

Read from the source when there is one (a lambda, or a named function whose body is
``return <expression>``); a guard without source yields no boundaries (the search
still runs, on types alone).
"""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter

from ..guards import _lambda_node

if TYPE_CHECKING:
    from ..flow import Flow
    from ..graph import Edge


@dataclass(frozen=True)
class Condition:
    """One operand of a guard's top-level ``and``: its text and a function to evaluate it."""

    text: str
    check: Callable[..., Any]


@dataclass
class Boundaries:
    """Values where a guard changes its answer, per Context field and per argument."""

    context: dict[str, list[Any]] = field(default_factory=dict)
    arguments: dict[str, list[Any]] = field(default_factory=dict)
    conditions: list[Condition] = field(default_factory=list)

    def add(self, where: dict[str, list[Any]], name: str, values: list[Any]) -> None:
        known = where.setdefault(name, [])
        for value in values:
            if not any(type(value) is type(k) and value == k for k in known):
                known.append(value)


def _guard_expression(fn: Callable[..., Any]) -> tuple[ast.expr, ast.arguments] | None:
    """The guard's expression and its parameters, from its source."""
    node = _lambda_node(fn)
    if node is not None:
        return node.body, node.args
    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), None)
    if func is None:
        return None
    returns = [n for n in func.body if isinstance(n, ast.Return) and n.value is not None]
    if len(func.body) != 1 or len(returns) != 1 or returns[0].value is None:
        return None
    return returns[0].value, func.args


def guard_boundaries(guard: Callable[..., Any] | None) -> Boundaries:
    """The boundaries and conditions of ``guard`` (empty when it has none or no source)."""
    if guard is None:
        return Boundaries()
    try:
        return _guard_boundaries(guard)
    except TypeError:  # an unhashable callable object
        return _guard_boundaries.__wrapped__(guard)


@functools.lru_cache(maxsize=1024)
def _guard_boundaries(guard: Callable[..., Any]) -> Boundaries:
    found = Boundaries()
    parsed = _guard_expression(guard)
    if parsed is None:
        return found
    expr, signature = parsed
    params = [a.arg for a in signature.args]
    if not params:
        return found
    ctx_name, arg_names = params[0], params[1:]

    def target(node: ast.expr) -> tuple[dict[str, list[Any]], str] | None:
        """Which field or argument ``node`` names (``c.size``, ``size``, ``len(c.items)``)."""
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == ctx_name):
            return found.context, node.attr
        if isinstance(node, ast.Name) and node.id in arg_names:
            return found.arguments, node.id
        return None

    for node in ast.walk(expr):
        if isinstance(node, ast.Compare):
            _compare(found, node, target)
        elif isinstance(node, ast.BoolOp | ast.UnaryOp | ast.IfExp):
            operands = (node.values if isinstance(node, ast.BoolOp)
                        else [node.operand] if isinstance(node, ast.UnaryOp)
                        else [node.test])
            for operand in operands:
                named = target(operand)
                if named is not None:  # a truth test: `c.verified`, `not c.blocked`
                    found.add(named[0], named[1], [False, True])
    if isinstance(expr, ast.Attribute | ast.Name):
        named = target(expr)
        if named is not None:
            found.add(named[0], named[1], [False, True])
    found.conditions = _conditions(expr, signature, guard)
    return found


def _compare(found: Boundaries, node: ast.Compare,
             target: Callable[[ast.expr], tuple[dict[str, list[Any]], str] | None]) -> None:
    operands = [node.left, *node.comparators]
    for i, op in enumerate(node.ops):
        left, right = operands[i], operands[i + 1]
        for subject, other, flipped in ((left, right, False), (right, left, True)):
            named = target(subject)
            if named is None:
                continue
            try:
                constant = ast.literal_eval(other)
            except ValueError:
                continue
            found.add(named[0], named[1], _around(op, constant, flipped))


def _around(op: ast.cmpop, k: Any, flipped: bool) -> list[Any]:
    """Values on both sides of where ``subject <op> k`` changes (``1 <= size``: 0 and 1)."""
    if isinstance(op, ast.Is | ast.IsNot):
        return [None, _non_none(k)] if k is None else [k]
    if isinstance(op, ast.In | ast.NotIn):
        items = list(k) if isinstance(k, tuple | list | set | frozenset) else []
        outside = _outside(items)
        return [*items, *([] if outside is None else [outside])]
    if isinstance(k, bool) or not isinstance(k, int | float):
        if isinstance(op, ast.Eq | ast.NotEq):
            other = _outside([k])
            return [k, *([] if other is None else [other])]
        return [k]
    # numbers: mirror the comparison when the constant is on the left (`1 <= size`)
    if flipped:
        op = {ast.Lt: ast.Gt(), ast.LtE: ast.GtE(), ast.Gt: ast.Lt(), ast.GtE: ast.LtE()}.get(
            type(op), op)
    step = 1
    if isinstance(op, ast.GtE):      # size >= k: k-1 no, k yes
        return [k - step, k]
    if isinstance(op, ast.Gt):       # size > k: k no, k+1 yes
        return [k, k + step]
    if isinstance(op, ast.LtE):      # size <= k: k yes, k+1 no
        return [k, k + step]
    if isinstance(op, ast.Lt):       # size < k: k-1 yes, k no
        return [k - step, k]
    return [k - step, k, k + step]   # == / !=


class _Something:
    """Stands for "any value but None" (``c.account is not None``): the caller picks one."""

    def __repr__(self) -> str:
        return "SOMETHING"


SOMETHING: Any = _Something()


def _non_none(k: Any) -> Any:
    return SOMETHING


def _outside(items: list[Any]) -> Any:
    """A value of the same kind as ``items`` that is not one of them."""
    if not items:
        return None
    first = items[0]
    if isinstance(first, bool):
        return None
    if isinstance(first, int | float):
        return max(items) + 1
    if isinstance(first, str):
        candidate = "other"
        while candidate in items:
            candidate += "_"
        return candidate
    return None


def _conditions(expr: ast.expr, signature: ast.arguments,
                guard: Callable[..., Any]) -> list[Condition]:
    """The top-level ``and`` operands of the guard, each compiled with the guard's globals."""
    parts = expr.values if isinstance(expr, ast.BoolOp) and isinstance(expr.op, ast.And) else [expr]
    namespace = dict(getattr(inspect.unwrap(guard), "__globals__", {}))
    closure = inspect.getclosurevars(inspect.unwrap(guard)) if callable(guard) else None
    if closure is not None:
        namespace.update(closure.nonlocals)
    out = []
    for part in parts:
        lam = ast.Expression(ast.Lambda(args=signature, body=part))
        ast.fix_missing_locations(lam)
        try:
            check = eval(compile(lam, "<guard condition>", "eval"), namespace)
        except Exception:
            continue
        out.append(Condition(ast.unparse(part), check))
    return out


def unmet_conditions(conditions: list[Condition], seen_true: set[str]) -> list[str]:
    """The texts of ``conditions`` never seen true (in declaration order)."""
    return [c.text for c in conditions if c.text not in seen_true]


# -- a few values of a type (exhaustive exploration draws from these) ----------------------
def representatives(hint: Any) -> list[Any]:
    """A small, finite set of values of ``hint``: every one of a Literal/enum/bool, else one.

    ``X | None`` gives ``None`` too; a pydantic model gives an instance built from its
    defaults (and representatives of its required fields) when that validates.
    """
    if hint is inspect.Parameter.empty or hint is Any:
        return ["x"]
    origin, args = get_origin(hint), get_args(hint)
    if origin is typing.Annotated:
        pattern = text_pattern(hint)
        example = pattern_example(pattern) if pattern is not None else None
        return [*([example] if example is not None else []), *representatives(args[0])]
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for arg in args:
            out += [v for v in representatives(arg) if v not in out]
        return out
    if origin is Literal:
        return list(args)
    if origin in (list, tuple, set, frozenset, dict):
        return [origin()]
    if hint is type(None):
        return [None]
    if hint is bool:
        return [False, True]
    if hint is int:
        return [0]
    if hint is float:
        return [0.0]
    if hint is str:
        return ["x"]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        values = {}
        for name, info in hint.model_fields.items():
            if info.is_required():  # with the field's constraints (Field(pattern=...))
                reps = values_for(info.rebuild_annotation(), [])
                if not reps:
                    return []
                values[name] = reps[0]
        try:
            return [hint.model_validate(values)]
        except Exception:
            return []
    return []


def text_pattern(hint: Any) -> str | None:
    """The regular expression an ``Annotated`` text must match (``Field(pattern=...)``,
    ``StringConstraints(pattern=...)``), or None."""
    stack = list(get_args(hint)[1:]) if get_origin(hint) is typing.Annotated else []
    while stack:
        meta = stack.pop()
        stack += list(getattr(meta, "metadata", None) or [])  # a FieldInfo carries its own
        pattern = getattr(meta, "pattern", None)
        if pattern is not None:
            return str(getattr(pattern, "pattern", pattern))  # a compiled re.Pattern too
    return None


_PATTERN_EXAMPLES: dict[str, str] = {}


def pattern_example(pattern: str) -> str | None:
    """The simplest text matching ``pattern`` (``0000-00-00`` for an ISO date's pattern):
    hypothesis' regex strategy shrunk to its minimum, so the same every time.

    None inside a running hypothesis test (``find`` cannot nest there; the strategies
    draw from the regex themselves) and for a pattern hypothesis cannot generate."""
    if pattern in _PATTERN_EXAMPLES:
        return _PATTERN_EXAMPLES[pattern]
    from hypothesis import HealthCheck, find, settings
    from hypothesis import strategies as st
    from hypothesis.control import currently_in_test_context

    if currently_in_test_context():
        return None
    try:
        example = find(st.from_regex(pattern, fullmatch=True), lambda _: True,
                       settings=settings(database=None, derandomize=True,
                                         suppress_health_check=list(HealthCheck)))
    except Exception:  # an unsupported construct, or nothing matches
        return None
    _PATTERN_EXAMPLES[pattern] = example
    return example


def values_for(hint: Any, boundaries: list[Any]) -> list[Any]:
    """The boundary values that are values of ``hint``, then its representatives.

    ``SOMETHING`` (from ``is not None``) becomes the representatives of the type; a
    boundary of the wrong type (``0`` for a ``str``) is dropped.
    """
    out: list[Any] = []
    for value in [*boundaries, *representatives(hint)]:
        candidates = ([v for v in representatives(hint) if v is not None]
                      if value is SOMETHING else [value])
        for candidate in candidates:
            fitted = _fitted(hint, candidate)
            if fitted is not _NO and not any(
                    type(fitted) is type(k) and fitted == k for k in out):
                out.append(fitted)
    return out


_NO: Any = object()


def _fitted(hint: Any, value: Any) -> Any:
    """``value`` as a value of ``hint`` (``1`` → ``1.0`` for a float), or ``_NO``."""
    if hint is inspect.Parameter.empty or hint is Any:
        return value
    try:
        return _adapter(hint).validate_python(value, strict=True)
    except Exception:
        return _NO


def _adapter(hint: Any) -> TypeAdapter[Any]:
    try:
        return _cached_adapter(hint)
    except TypeError:  # an unhashable hint (Annotated with a mutable marker)
        return TypeAdapter(hint)


@functools.lru_cache(maxsize=512)
def _cached_adapter(hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(hint)


# -- per flow ---------------------------------------------------------------------------------
def context_boundaries(flow: Flow[Any]) -> dict[str, list[Any]]:
    """Context field → the values where some guard of ``flow`` changes its answer.

    Only fields of the Context; values of the wrong type are dropped.
    """
    merged = Boundaries()
    for edge in flow.edges:
        found = guard_boundaries(edge.transition.when)
        for name, values in found.context.items():
            merged.add(merged.context, name, values)
    model = flow.context_type
    return {name: values_for(model.model_fields[name].annotation, values)
            for name, values in merged.context.items() if name in model.model_fields}


def argument_boundaries(edge: Edge) -> dict[str, list[Any]]:
    """Parameter → the values where this edge's guard changes its answer (typed)."""
    found = guard_boundaries(edge.transition.when).arguments
    return {p.name: values_for(p.annotation, found[p.name])
            for p in edge.transition.params if p.name in found}
