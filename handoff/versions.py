"""A flow's version: given, or a fingerprint of what a checkpoint depends on.

A checkpoint names the state a call is in and holds its Context, so what decides
whether an older checkpoint still fits a flow is the flow's state names, its
table (which trigger leads from which state to which) and its Context schema.
:func:`fingerprint` hashes exactly those: a new prompt, tier or docstring keeps
the version, a renamed state or a retyped field changes it.

:func:`context_fields` describes a Context's fields as plain data (a normalised
JSON schema per field, and whether a value is required) so that two versions of
a flow, even one loaded from an older git revision in another process, can be
compared field by field.

Like :mod:`handoff.snapshot` this module imports only the standard library and
reads flows and Context classes by duck typing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FINGERPRINT_LENGTH = 12
"""Hex digits of a derived version (48 bits: no two versions of one flow collide)."""

_NOT_TYPE = frozenset({"title", "description", "default", "examples", "pii", "deprecated"})
"""JSON schema keys that describe a field without constraining its values."""


@dataclass(frozen=True)
class FieldSpec:
    """One Context field: its values' JSON schema (normalised), and whether it is required."""

    name: str
    schema: str
    """``json.dumps`` of the field's schema, sorted, without titles, descriptions, defaults
    or the pii mark, ``$ref``\\ s inlined."""
    required: bool
    type_text: str
    """The schema as a short Python-like type for people (``int | None``)."""

    def alternatives(self) -> frozenset[str]:
        """The schema's ``anyOf`` branches, each as text (one branch when it has none)."""
        data = json.loads(self.schema)
        branches = data.get("anyOf") if isinstance(data, dict) and set(data) == {"anyOf"} else None
        return frozenset(json.dumps(b, sort_keys=True) for b in (branches or [data]))

    def accepts_every_value_of(self, older: FieldSpec) -> bool:
        """True when every value ``older`` held is still valid here (same or wider type:
        more alternatives, ``int`` → ``float``, a ``Literal`` that gains values)."""
        if self.schema == older.schema:
            return True
        mine = [json.loads(b) for b in self.alternatives()]
        return all(any(_wider(m, json.loads(b)) for m in mine) for b in older.alternatives())

    def samples(self) -> list[Any]:
        """Values this field may hold at its boundaries, as stored (JSON): what a checkpoint
        of the flow can carry, for judging a change by resuming them."""
        return _samples(json.loads(self.schema))


def context_fields(context_type: Any) -> tuple[FieldSpec, ...]:
    """The fields of a Context class (a pydantic model), sorted by name.

    A field pydantic cannot describe in JSON schema (an arbitrary Python type) is
    described by its annotation's text instead.
    """
    try:
        schema = context_type.model_json_schema()
    except Exception:  # e.g. PydanticInvalidForJsonSchema: arbitrary_types_allowed
        return tuple(sorted(
            (FieldSpec(name, json.dumps({"python": repr(info.annotation)}), info.is_required(),
                       repr(info.annotation))
             for name, info in context_type.model_fields.items()), key=lambda f: f.name))
    defs = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        clean = _normalise(prop, defs, ())
        out.append(FieldSpec(name, json.dumps(clean, sort_keys=True), name in required,
                             type_text(clean)))
    return tuple(sorted(out, key=lambda f: f.name))


def fingerprint(state_names: Iterable[str], table: Iterable[tuple[str | None, str, str]],
                fields: Iterable[FieldSpec]) -> str:
    """The derived version of a flow: a hash of its states, table and Context schema.

    ``table`` holds (source or None for a global transition, trigger, target).
    """
    data = {
        "states": sorted(state_names),
        "table": sorted([source or "*", trigger, target] for source, trigger, target in table),
        "context": [[f.name, f.schema, f.required] for f in fields],
    }
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return digest[:FINGERPRINT_LENGTH]


def flow_fingerprint(flow: Any) -> str:
    """:func:`fingerprint` of a built Flow (its ``states``, ``edges`` and ``context_type``)."""
    return fingerprint(flow.states, [(e.source, e.trigger, e.target) for e in flow.edges],
                       context_fields(flow.context_type))


def _normalise(node: Any, defs: Mapping[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_normalise(n, defs, seen) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in seen or name not in defs:  # a recursive model: name it, do not unroll
            return {"$ref": name}
        return _normalise(defs[name], defs, (*seen, name))
    return {k: _normalise(v, defs, seen) for k, v in node.items() if k not in _NOT_TYPE}


def _wider(new: Any, old: Any) -> bool:
    """``new`` (one schema branch) accepts every value of ``old`` (another)."""
    if new == old:
        return True
    if not isinstance(new, dict) or not isinstance(old, dict):
        return False
    if new == {"type": "number"} and old.get("type") == "integer" and set(old) == {"type"}:
        return True  # an int fits a float field, unchanged
    values = old.get("enum", [old["const"]] if "const" in old else None)
    if values is None or set(old) - {"enum", "const", "type"}:
        return False
    if "enum" in new or "const" in new:  # a Literal that gains values
        return (new.get("type") == old.get("type") and set(new) <= {"enum", "const", "type"}
                and all(v in new.get("enum", [new.get("const")]) for v in values))
    return set(new) == {"type"} and old.get("type") == new["type"]  # a Literal widened to str


_INTS = [0, 1, -1, 2**31, -(2**31), 2**53]
_FLOATS = [0.0, 0.5, -1.5, 1e300, -1e300]
_STRINGS = ["", "a", "0", "x" * 256, "é ☃ \U0001f600"]


def _samples(schema: Any) -> list[Any]:
    if not isinstance(schema, dict):
        return [None]
    if "anyOf" in schema:
        return [v for branch in schema["anyOf"] for v in _samples(branch)]
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        values = [v for v in _INTS if (low is None or v >= low) and (high is None or v <= high)]
        return values + [b for b in (low, high) if b is not None]
    if kind == "number":
        return _FLOATS + _INTS[:3]
    if kind == "string":
        return list(_STRINGS)
    if kind == "boolean":
        return [False, True]
    if kind == "null":
        return [None]
    if kind == "array":
        items = _samples(schema.get("items", {}))
        return [[], items[:1], items[:3]]
    if kind == "object":
        props = schema.get("properties", {})
        return [{k: _samples(v)[0] for k, v in props.items()}]
    return [None]


_SIMPLE = {"integer": "int", "number": "float", "string": "str", "boolean": "bool",
           "null": "None", "object": "dict", "array": "list"}


def type_text(schema: Any) -> str:
    """A normalised field schema as a short Python-like type, for reports."""
    if not isinstance(schema, dict):
        return "Any"
    if "anyOf" in schema:
        return " | ".join(type_text(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "Literal[" + ", ".join(json.dumps(v) for v in schema["enum"]) + "]"
    if "const" in schema:
        return f"Literal[{json.dumps(schema['const'])}]"
    kind = schema.get("type")
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"list[{type_text(schema['items'])}]"
    if kind == "object" and "properties" in schema:
        return "{" + ", ".join(sorted(schema["properties"])) + "}"
    if isinstance(kind, str):
        return _SIMPLE.get(kind, kind)
    if "$ref" in schema:
        return str(schema["$ref"])
    return "Any"
