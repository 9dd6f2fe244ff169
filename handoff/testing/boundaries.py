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

    def holds(self, context: Any, arguments: dict[str, Any]) -> bool:
        """Whether the condition is true for ``context`` and ``arguments`` (False when it
        raises: it did not hold)."""
        code = self.check.__code__
        takes = code.co_argcount > 1 or bool(code.co_flags & inspect.CO_VARKEYWORDS)
        try:
            names = code.co_varnames[1:code.co_argcount]
            given = {k: v for k, v in arguments.items() if k in names} if not (
                code.co_flags & inspect.CO_VARKEYWORDS) else arguments
            return bool(self.check(context, **given) if takes else self.check(context))
        except Exception:
            return False


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
        """Which field or argument ``node`` names (``c.size``, ``size``)."""
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == ctx_name):
            return found.context, node.attr
        if isinstance(node, ast.Name) and node.id in arg_names:
            return found.arguments, node.id
        return None

    def length(node: ast.expr) -> tuple[dict[str, list[Any]], str] | None:
        """The field or argument whose length ``node`` is (``len(c.items)``)."""
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "len" and len(node.args) == 1):
            return target(node.args[0])
        return None

    for node in ast.walk(expr):
        if isinstance(node, ast.Compare):
            _compare(found, node, target)
            _compare(found, node, length, as_length=True)
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
             target: Callable[[ast.expr], tuple[dict[str, list[Any]], str] | None],
             *, as_length: bool = False) -> None:
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
            values = _around(op, constant, flipped)
            if as_length:  # len(c.items) >= 1: collections of 0 and 1 items
                values = [Length(v) for v in values if isinstance(v, int) and v >= 0]
            found.add(named[0], named[1], values)


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


@dataclass(frozen=True)
class Length:
    """Stands for "a collection of ``n`` items" (``len(c.items) >= 1``): :func:`values_for`
    makes one of the field's type."""

    n: int


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
        sized = [v for n in length_bounds(hint) if (v := sized_value(args[0], n)) is not _NO]
        return [*([example] if example is not None else []), *sized, *number_bounds(hint),
                *representatives(args[0])]
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for arg in args:
            out += [v for v in representatives(arg) if v not in out]
        return out
    if origin is Literal:
        return list(args)
    if origin in (list, tuple, set, frozenset, dict):
        one = sized_value(hint, 1)  # empty, and one item (a guard may need `len(...) >= 1`)
        return [origin(), *([] if one is _NO else [one])]
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


def length_bounds(hint: Any) -> list[int]:
    """The lengths an ``Annotated`` collection or text declares (``Field(min_length=1,
    max_length=3)``: 1 and 3), so the values tried include the shortest and longest."""
    import annotated_types as at

    out: list[int] = []
    stack = list(get_args(hint)[1:]) if get_origin(hint) is typing.Annotated else []
    while stack:
        meta = stack.pop()
        stack += list(getattr(meta, "metadata", None) or [])
        if isinstance(meta, at.MinLen):
            out.append(meta.min_length)
        elif isinstance(meta, at.MaxLen):
            out.append(meta.max_length)
    return sorted(set(out))


def number_bounds(hint: Any) -> list[Any]:
    """The smallest and largest numbers an ``Annotated`` number accepts (``Field(ge=1,
    le=5)``: 1 and 5; a strict bound of an int moves by one)."""
    import annotated_types as at

    out: list[Any] = []
    stack = list(get_args(hint)[1:])
    while stack:
        meta = stack.pop()
        stack += list(getattr(meta, "metadata", None) or [])
        if isinstance(meta, at.Ge | at.Le):
            out.append(meta.ge if isinstance(meta, at.Ge) else meta.le)
        elif isinstance(meta, at.Gt) and isinstance(meta.gt, int):
            out.append(meta.gt + 1)
        elif isinstance(meta, at.Lt) and isinstance(meta.lt, int):
            out.append(meta.lt - 1)
    return out


def sized_value(hint: Any, n: int) -> Any:
    """A value of collection type ``hint`` with ``n`` items (``_NO`` when ``hint`` is not a
    collection, or its items have no representative): ``X | None`` and ``Annotated`` are
    looked through."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is typing.Annotated:
        return sized_value(args[0], n)
    if origin in (Union, types.UnionType):
        return next((v for a in args if (v := sized_value(a, n)) is not _NO), _NO)
    if origin not in (list, tuple, set, frozenset, dict):
        return _NO
    if n == 0:
        return origin()
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return _NO  # a fixed-size tuple has one length
    items = [v for v in representatives(args[0] if args else str) if v is not None]
    if origin is dict:
        values = representatives(args[1]) if len(args) == 2 else ["x"]
        keys = _distinct(items, n)
        return _NO if keys is None or not values else {k: values[0] for k in keys}
    if origin in (set, frozenset):
        distinct = _distinct(items, n)
        return _NO if distinct is None else origin(distinct)
    return _NO if not items else origin([items[0]] * n)


def _distinct(items: list[Any], n: int) -> list[Any] | None:
    """``n`` different items made from ``items`` (texts and numbers can be varied)."""
    if len(items) >= n:
        return items[:n]
    if items and isinstance(items[0], str):
        return [f"{items[0]}{i}" for i in range(n)]
    if items and isinstance(items[0], int) and not isinstance(items[0], bool):
        return list(range(n))
    return None


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
                      if value is SOMETHING else [sized_value(hint, value.n)]
                      if isinstance(value, Length) else [value])
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
