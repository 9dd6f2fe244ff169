"""Hypothesis strategies for a Flow: contexts, triggers, transition arguments, walks.

Everything is derived from what the flow declares — the Context model's field types
and the typed parameters of each ``@transition`` — so the same strategies work for
any flow::

    @given(contexts(flow), walks(flow, max_len=8))
    def test_my_flow(context, walk): ...

Pass ``overrides`` to steer a field or an argument towards interesting values
(``{"account_id": st.sampled_from(["4411", "0000"])}``).
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from ..context import Context
from ..flow import Flow
from ..graph import Edge
from .boundaries import argument_boundaries, context_boundaries
from .values import text_pattern

UNDECLARED = "__undeclared_transition__"
"""A trigger no flow declares: ``triggers(flow, undeclared=True)`` mixes it in."""

Overrides = Mapping[str, st.SearchStrategy[Any]]
ArgumentOverrides = Mapping[str, Overrides]
"""trigger → parameter name → strategy."""

C = TypeVar("C", bound=Context)


@dataclass(frozen=True)
class Attempt:
    """One attempted transition: a trigger and the arguments the LLM (or code) gives it."""

    trigger: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"{self.trigger}({args})"


# -- values from type hints ------------------------------------------------------------
def for_type(hint: Any) -> st.SearchStrategy[Any]:
    """A strategy for a type hint, tuned for conversations: finite floats, short text.

    Recurses into ``X | None``, unions, ``Literal``, ``list``/``dict``/``set``/``tuple``
    and pydantic models; anything else goes to ``st.from_type``.
    """
    if hint is inspect.Parameter.empty or hint is Any:
        return st.text(max_size=12)
    origin = get_origin(hint)
    args = get_args(hint)
    if origin in (Union, types.UnionType):
        return st.one_of(*(for_type(a) for a in args))
    if origin is Literal:
        return st.sampled_from(args)
    if origin is typing.Annotated:
        return _annotated(hint, args[0])
    if origin in (list, typing.List):  # noqa: UP006
        return st.lists(for_type(args[0]) if args else st.text(max_size=8), max_size=3)
    if origin in (set, frozenset):
        inner = for_type(args[0]) if args else st.text(max_size=8)
        return st.frozensets(inner, max_size=3).map(origin)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(for_type(args[0]), max_size=3).map(tuple)
        return st.tuples(*(for_type(a) for a in args))
    if origin is dict:
        key, value = args if args else (str, str)
        return st.dictionaries(for_type(key), for_type(value), max_size=3)
    if hint is type(None):
        return st.none()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(min_value=-1_000_000, max_value=1_000_000)
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
    if hint is str:
        return st.text(max_size=16)
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return models(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    return st.from_type(hint)


def _annotated(hint: Any, inner: Any) -> st.SearchStrategy[Any]:
    """``Annotated[int, Field(ge=1, le=12)]``: values of ``inner`` the constraints accept.

    Numeric bounds narrow the range (so 1..12 is searched, not ±10⁶); any other
    constraint is honoured by validating each value with pydantic.
    """
    from pydantic import TypeAdapter

    adapter = TypeAdapter(hint)
    base = for_type(inner)
    if inner is str and (pattern := text_pattern(hint)) is not None:
        base = st.from_regex(pattern, fullmatch=True)  # filtering text for it would never end
    if get_origin(inner) in (list, set, frozenset) and (lengths := _length_range(hint)):
        item = get_args(inner)[0] if get_args(inner) else str
        low, high = lengths
        base = (st.lists(for_type(item), min_size=low, max_size=high)
                if get_origin(inner) is list
                else st.frozensets(for_type(item), min_size=low, max_size=high).map(
                    get_origin(inner)))
    if inner in (int, float):
        low, high = _bounds(hint)
        if low is not None or high is not None:
            base = (st.integers(min_value=low, max_value=high) if inner is int else
                    st.floats(min_value=low, max_value=high, allow_nan=False,
                              allow_infinity=False))

    def valid(value: Any) -> bool:
        try:
            adapter.validate_python(value)
        except ValidationError:
            return False
        return True

    return base.filter(valid)


def _length_range(hint: Any) -> tuple[int, int] | None:
    """(fewest, most) items an ``Annotated`` collection declares (``Field(min_length=1)``:
    at most three more than the fewest when no maximum is given), or None."""
    import annotated_types as at

    low, high = 0, None
    stack = list(get_args(hint)[1:])
    found = False
    while stack:
        meta = stack.pop()
        stack += list(getattr(meta, "metadata", []))
        if isinstance(meta, at.MinLen):
            low, found = meta.min_length, True
        elif isinstance(meta, at.MaxLen):
            high, found = meta.max_length, True
    return (low, high if high is not None else low + 3) if found else None


def _bounds(hint: Any) -> tuple[Any, Any]:
    """The inclusive numeric bounds an ``Annotated`` hint's metadata declares (or None)."""
    import annotated_types as at

    low: Any = None
    high: Any = None
    stack = list(get_args(hint)[1:])
    while stack:
        meta = stack.pop()
        stack += list(getattr(meta, "metadata", []))  # a pydantic FieldInfo carries its own
        if isinstance(meta, at.Ge):
            low = meta.ge
        elif isinstance(meta, at.Gt):
            low = meta.gt + 1 if isinstance(meta.gt, int) else meta.gt
        elif isinstance(meta, at.Le):
            high = meta.le
        elif isinstance(meta, at.Lt):
            high = meta.lt - 1 if isinstance(meta.lt, int) else meta.lt
        elif isinstance(meta, at.Interval):
            stack += [at.Ge(meta.ge) if meta.ge is not None else None,
                      at.Le(meta.le) if meta.le is not None else None]
    return low, high


def models(model: type[BaseModel], overrides: Overrides | None = None) -> st.SearchStrategy[Any]:
    """Valid instances of a pydantic model: every field drawn from its type.

    Values the model's own validators reject (``Field(ge=0)``, custom validators) are
    filtered out, so what comes out is what the model accepts.
    """
    overrides = overrides or {}
    unknown = set(overrides) - set(model.model_fields)
    if unknown:
        raise ValueError(f"{model.__name__} has no field(s) {sorted(unknown)}")
    fields = {  # each field with its own constraints (Field(ge=..., pattern=...))
        name: overrides.get(name, for_type(info.rebuild_annotation()))
        for name, info in model.model_fields.items()
    }

    def build(values: dict[str, Any]) -> Any:
        try:
            return model.model_validate(values)
        except ValidationError:
            return None

    return st.fixed_dictionaries(fields).map(build).filter(lambda m: m is not None)


def model_arguments(model: type[BaseModel], overrides: Overrides | None = None
                    ) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for a tool whose parameters ``model`` describes (LiveKit's
    ``function_arguments_to_pydantic_model``): every required field, and the others now
    and then, each from its annotation with its constraints."""
    over = overrides or {}
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        strategy = over.get(name, for_type(info.rebuild_annotation()))
        (required if info.is_required() else optional)[name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


def contexts(flow: Flow[C], **overrides: st.SearchStrategy[Any]) -> st.SearchStrategy[C]:
    """Valid Context values of ``flow``, every field drawn from its declared type."""
    return models(flow.context_type, overrides)


def context_changes(
    flow: Flow[Any], *, max_fields: int | None = None, **overrides: Any
) -> st.SearchStrategy[dict[str, Any]]:
    """Context fields with new values (what a tool or code might set).

    Up to ``max_fields`` fields (default: every field of the Context, so a guard that
    needs four fields set can be met). Drawn as a list of (field, value) pairs, so it
    shrinks towards changing nothing and a counterexample shows only the fields that
    matter. Values where a guard changes its answer (:mod:`.boundaries`) are drawn
    often.
    """
    fields = len(flow.context_type.model_fields)
    if fields == 0:
        return st.just({})
    size = fields if max_fields is None else max_fields
    return st.lists(field_changes(flow, **overrides), max_size=size,
                    unique_by=lambda change: change[0]).map(dict)


def field_changes(
    flow: Flow[Any], **overrides: st.SearchStrategy[Any]
) -> st.SearchStrategy[tuple[str, Any]]:
    """One Context field and a valid new value for it, as ``(name, value)``.

    Nothing to draw (``st.nothing()``) for a Context without fields.
    """
    model = flow.context_type
    if not model.model_fields:
        return st.nothing()
    edges = context_boundaries(flow)

    def values(name: str) -> st.SearchStrategy[tuple[str, Any]]:
        return field_values(flow, name, overrides.get(name), edges).map(lambda v: (name, v))

    return st.sampled_from(sorted(model.model_fields)).flatmap(values)


def field_values(flow: Flow[Any], name: str, override: st.SearchStrategy[Any] | None = None,
                 boundaries: Mapping[str, list[Any]] | None = None) -> st.SearchStrategy[Any]:
    """Valid values of the Context field ``name``: ``override``, else drawn from its type,
    its guards' boundary values about half the time."""
    model = flow.context_type
    if boundaries is None:
        boundaries = context_boundaries(flow)
    strategy = override if override is not None else _with_boundaries(
        for_type(model.model_fields[name].annotation), boundaries.get(name, []))
    return strategy.filter(lambda v: _valid_changes(model, {name: v}))


def _with_boundaries(base: st.SearchStrategy[Any], values: list[Any]) -> st.SearchStrategy[Any]:
    """``base``, drawing one of the guards' boundary ``values`` about half the time."""
    if not values:
        return base
    return st.one_of(st.sampled_from(values), base)


def _valid_changes(model: type[BaseModel], changes: dict[str, Any]) -> bool:
    try:
        model.model_validate({**_defaults(model), **changes})
    except ValidationError:
        return False
    return True


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    return {n: f.get_default(call_default_factory=True) for n, f in model.model_fields.items()
            if not f.is_required()}


# -- triggers and arguments ---------------------------------------------------------------
def trigger_names(flow: Flow[Any]) -> list[str]:
    """Every trigger the flow declares, sorted (a global transition once)."""
    return sorted({edge.trigger for edge in flow.edges})


def triggers(flow: Flow[Any], *, undeclared: bool = False) -> st.SearchStrategy[str]:
    """Trigger names of ``flow`` (plus one no state declares, with ``undeclared=True``)."""
    names = trigger_names(flow) + ([UNDECLARED] if undeclared else [])
    return st.sampled_from(names)


def arguments(
    flow: Flow[Any],
    trigger: str,
    overrides: Overrides | None = None,
    *,
    state: str | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments for ``trigger`` drawn from its parameters' type hints.

    ``state`` picks that state's edge when two states declare the same trigger name.
    A parameter with a default is sometimes left out (the LLM may omit it). Values
    where the edge's guard changes its answer (``1 <= size <= 12``: 0, 1, 12, 13) are
    drawn often.
    """
    edge = flow.table[state].get(trigger) if state is not None else None
    if edge is None:
        edge = next((e for e in flow.edges if e.trigger == trigger), None)
    if edge is None:
        return st.just({})
    return edge_arguments(edge, overrides)


def edge_arguments(edge: Edge, overrides: Overrides | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments for one declared edge, from its parameters' type hints and its guard."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for param in edge.transition.params:
        strategy = parameter_strategy(edge, param.name, overrides)
        (required if param.default is param.empty else optional)[param.name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


def parameter_strategy(edge: Edge, name: str, overrides: Overrides | None = None
                       ) -> st.SearchStrategy[Any]:
    """Values for parameter ``name`` of ``edge``: the override, else its type and guard."""
    if overrides and name in overrides:
        return overrides[name]
    param = next(p for p in edge.transition.params if p.name == name)
    return _with_boundaries(for_type(param.annotation),
                            argument_boundaries(edge).get(name, []))


def attempts(
    flow: Flow[Any],
    *,
    undeclared: bool = True,
    argument_overrides: ArgumentOverrides | None = None,
) -> st.SearchStrategy[Attempt]:
    """One attempted transition of ``flow`` (any trigger, valid from here or not)."""
    over = argument_overrides or {}

    def with_arguments(trigger: str) -> st.SearchStrategy[Attempt]:
        return arguments(flow, trigger, over.get(trigger)).map(lambda a: Attempt(trigger, a))

    return triggers(flow, undeclared=undeclared).flatmap(with_arguments)


@st.composite
def _walk(
    draw: st.DrawFn,
    flow: Flow[Any],
    max_len: int,
    valid_ratio: float,
    argument_overrides: ArgumentOverrides | None,
) -> list[Attempt]:
    over = argument_overrides or {}
    size = draw(st.integers(min_value=0, max_value=max_len))
    state = flow.initial
    walk: list[Attempt] = []
    everything = [*trigger_names(flow), UNDECLARED]
    for _ in range(size):
        available = sorted(flow.table[state])
        pick_valid = available and draw(st.floats(0, 1)) < valid_ratio
        trigger = draw(st.sampled_from(available if pick_valid else everything))
        args = draw(arguments(flow, trigger, over.get(trigger), state=state))
        walk.append(Attempt(trigger, args))
        if trigger in flow.table[state]:
            state = flow.table[state][trigger].target  # optimistic: assumes guards allow it
    return walk


def walks(
    flow: Flow[Any],
    *,
    max_len: int = 8,
    valid_ratio: float = 0.8,
    argument_overrides: ArgumentOverrides | None = None,
) -> st.SearchStrategy[list[Attempt]]:
    """Sequences of attempted transitions from the initial state, valid and invalid.

    Each step picks, with probability ``valid_ratio``, a trigger declared from the
    state the walk would be in if every earlier valid attempt was taken; otherwise
    any trigger (or one no state declares). Whether an attempt is *allowed* is up to
    the guards and bodies when the walk is replayed (see :func:`replay`).
    """
    return _walk(flow, max_len, valid_ratio, argument_overrides)
