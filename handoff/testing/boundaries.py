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
import functools
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..guards import GuardParameters, _lambda_node, call_guard
from .values import SOMETHING, Length, values_for

if TYPE_CHECKING:
    from ..flow import Flow
    from ..graph import Edge


@dataclass(frozen=True)
class Condition:
    """One operand of a guard's top-level ``and``: its text and a function to evaluate it."""

    text: str
    check: Callable[..., Any]

    @functools.cached_property
    def parameters(self) -> GuardParameters:
        """The arguments the condition takes, read as the run reads a guard's."""
        return GuardParameters(self.check)

    def holds(self, context: Any, arguments: dict[str, Any]) -> bool:
        """Whether the condition is true for ``context`` and ``arguments`` (False when it
        raises: it did not hold). It gets the arguments it declares, as a guard does
        (:func:`handoff.guards.call_guard`)."""
        try:
            return bool(call_guard(self.check, self.parameters, context, arguments))
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
