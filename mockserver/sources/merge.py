"""Merging JSON Schemas for generation: ``allOf``, a ``$ref``'s siblings, a branch with the rest.

The merge asks for what both schemas ask for as far as generating a value needs (types
intersected, bounds tightened, properties merged, ``required`` united, combinators paired);
what it cannot merge (two different patterns, say) keeps the first, and the final validation
against the whole schema checks the rest.
"""

from __future__ import annotations

from typing import Any

from .scalars import Unsatisfiable

TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


_LOWER = ("minimum", "minLength", "minItems", "minProperties", "minContains")
_UPPER = ("maximum", "maxLength", "maxItems", "maxProperties", "maxContains")


def merge(a: dict[str, Any], b: dict[str, Any], path: str) -> dict[str, Any]:
    """One schema that asks for what both ask for, as far as generation needs (the final
    validation checks everything): types intersected, bounds tightened, properties merged,
    ``required`` united, combinators kept."""
    if not a:
        return dict(b)
    if not b:
        return dict(a)
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif out[key] == value:
            continue
        elif key == "type":
            out[key] = _types(out[key], value, path)
        elif key in _LOWER:
            out[key] = max(out[key], value) if _nums(out[key], value) else value
        elif key in _UPPER:
            out[key] = min(out[key], value) if _nums(out[key], value) else value
        elif key == "required" and isinstance(value, list) and isinstance(out[key], list):
            out[key] = list(dict.fromkeys([*out[key], *value]))
        elif (
            key in ("properties", "patternProperties", "dependentSchemas", "$defs")
            and isinstance(value, dict)
            and isinstance(out[key], dict)
        ):
            merged = dict(out[key])
            for name, sub in value.items():
                merged[name] = {"allOf": [merged[name], sub]} if name in merged else sub
            out[key] = merged
        elif key == "enum" and isinstance(value, list) and isinstance(out[key], list):
            keep = [v for v in out[key] if v in value]
            if not keep:
                raise Unsatisfiable(path, "allOf: the enums have no value in common")
            out[key] = keep
        elif key == "const":
            raise Unsatisfiable(path, f"allOf: const {out[key]!r} and const {value!r}")
        elif key in ("anyOf", "oneOf") and isinstance(value, list) and isinstance(out[key], list):
            pairs = [
                merge(x, y, path)
                for x in out[key]
                for y in value
                if isinstance(x, dict) and isinstance(y, dict)
            ]
            out[key] = pairs[:16] or out[key]
        elif key in ("items", "additionalProperties", "contains", "propertyNames", "not"):
            if out[key] is False or value is False:
                out[key] = False if key != "not" else {"anyOf": [out[key], value]}
            elif isinstance(out[key], dict) and isinstance(value, dict):
                out[key] = (
                    {"anyOf": [out[key], value]} if key == "not" else {"allOf": [out[key], value]}
                )
        # anything else that differs (e.g. two patterns): the first drives generation, the
        # final validation checks both
    return out


def _nums(x: Any, y: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))


def _types(x: Any, y: Any, path: str) -> Any:
    xs = {x} if isinstance(x, str) else set(x) if isinstance(x, list) else set(TYPES)
    ys = {y} if isinstance(y, str) else set(y) if isinstance(y, list) else set(TYPES)
    both = xs & ys
    if ("integer" in xs and "number" in ys) or ("number" in xs and "integer" in ys):
        both.add("integer")
    if not both:
        raise Unsatisfiable(path, f"allOf: types {x!r} and {y!r} have nothing in common")
    ordered = [t for t in TYPES if t in both]
    return ordered[0] if len(ordered) == 1 else ordered
