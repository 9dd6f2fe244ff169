"""A few values of a type: what exhaustive exploration tries for a parameter or a field.

Every member of a ``Literal``/enum/bool; the bounds an ``Annotated`` number declares; a
collection empty, with one item and at its declared ``min_length``/``max_length``; a
pydantic model built field by field; the simplest text a ``pattern`` accepts. Boundary
values read from guards (:mod:`.boundaries`) come first; the markers :data:`SOMETHING`
(``is not None``) and :class:`Length` (``len(c.items) >= 1``) stand for a value of the
field's type that :func:`values_for` makes.
"""

from __future__ import annotations

import enum
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter


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
