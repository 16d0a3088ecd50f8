"""The JSON Schemas of ``schemas/``: loaded once, one cached validator per schema reference.

The schema files ship as the data package ``mockserver.schemas`` (the top-level ``schemas/``
directory, mapped in ``pyproject.toml``).  They ``$ref`` each other by relative URI
(``message.json#/$defs/usage``), resolved through one ``referencing.Registry``.

A schema reference (``ref``) is a file stem with an optional JSON pointer fragment:
``"request"``, ``"message"``, ``"stream_event#/$defs/text_delta"``, ``"error#/$defs/deepseek"``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any, Final
from urllib.parse import urldefrag, urljoin

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .violations import Violation, json_path, short

SCHEMA_PACKAGE: Final = "mockserver.schemas"
BASE_URI: Final = "https://schemas.mockserver.invalid/"
SCHEMA_NAMES: Final = (
    "request",
    "message",
    "stream_event",
    "error",
    "count_tokens",
    "models",
    "cassette",
    "rules",
)


@functools.cache
def load_schemas() -> Mapping[str, Mapping[str, Any]]:
    """All schema documents by file stem (read from the package once)."""
    root = resources.files(SCHEMA_PACKAGE)
    out: dict[str, Mapping[str, Any]] = {}
    for name in SCHEMA_NAMES:
        out[name] = json.loads((root / f"{name}.json").read_text(encoding="utf-8"))
    return out


def schema(name: str) -> Mapping[str, Any]:
    """The schema document ``schemas/<name>.json``."""
    return load_schemas()[name]


@functools.cache
def registry() -> Registry[Any]:
    """A registry holding every schema under its ``$id``, so that they can ``$ref`` each other."""
    resources_ = [
        (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012))
        for doc in load_schemas().values()
    ]
    reg: Registry[Any] = Registry().with_resources(resources_)
    return reg.crawl()


def uri(ref: str) -> str:
    name, _, fragment = ref.partition("#")
    if name not in SCHEMA_NAMES:
        raise KeyError(f"unknown schema {name!r} (known: {', '.join(SCHEMA_NAMES)})")
    return f"{BASE_URI}{name}.json" + (f"#{fragment}" if fragment else "")


@functools.cache
def validator(ref: str) -> Draft202012Validator:
    """The (cached) validator of a schema reference such as ``"message"`` or
    ``"stream_event#/$defs/content_block_delta"``.

    The schema is used with its ``$ref`` s inlined (except recursive ones, which stay as
    absolute references resolved through the registry): it validates exactly the same, but
    several times faster, because jsonschema pays a registry lookup for every ``$ref``."""
    target = uri(ref)
    inlined = _inline(registry().resolver().lookup(target).contents, target, (target,))
    if isinstance(inlined, dict):
        inlined["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    fast: Draft202012Validator = _FastValidator(inlined, registry=registry())
    return fast


def plain_validator(ref: str) -> Draft202012Validator:
    """A validator of the schema exactly as written (no inlining, no dispatch): the reference
    semantics :func:`validator` must agree with (used by the tests)."""
    return Draft202012Validator({"$ref": uri(ref)}, registry=registry())


#: A private keyword standing for the usual discriminator idiom, an ``allOf`` of
#: ``{"if": {"properties": {F: {"const": X}}, "required": [F]}, "then": S}``: one dict
#: lookup instead of one ``if`` per case.  Only :func:`_inline` produces it.
DISPATCH: Final = "x-mockserver-dispatch"


def _dispatch(
    validator: Any, spec: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    value = instance.get(spec["field"])
    case = spec["cases"].get(value) if isinstance(value, str) else None
    if case is not None:
        yield from validator.descend(instance, case)


_FastValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {DISPATCH: _dispatch}
)


def _dispatch_case(node: Any) -> tuple[str, str, Any] | None:
    """(field, value, then-schema) when ``node`` is one case of the discriminator idiom."""
    if not isinstance(node, dict) or set(node) != {"if", "then"}:
        return None
    cond = node["if"]
    if not isinstance(cond, dict) or set(cond) != {"properties", "required"}:
        return None
    props, required = cond["properties"], cond["required"]
    if not isinstance(props, dict) or len(props) != 1 or required != list(props):
        return None
    ((field, test),) = props.items()
    if not isinstance(test, dict) or set(test) != {"const"} or not isinstance(test["const"], str):
        return None
    return field, test["const"], node["then"]


def _compile_dispatch(items: list[Any]) -> list[Any]:
    """Replace the discriminator cases of an ``allOf`` by one dispatch keyword."""
    cases = [_dispatch_case(item) for item in items]
    fields = {case[0] for case in cases if case is not None}
    values = [case[1] for case in cases if case is not None]
    if len(fields) != 1 or len(values) < 2 or len(set(values)) != len(values):
        return items
    rest = [item for item, case in zip(items, cases, strict=True) if case is None]
    table = {case[1]: case[2] for case in cases if case is not None}
    return [*rest, {DISPATCH: {"field": fields.pop(), "cases": table}}]


#: keywords whose values are data, not subschemas
_DATA_KEYWORDS: Final = frozenset({"const", "enum", "default", "examples", "required"})
#: keywords whose values map names to subschemas
_SCHEMA_MAPS: Final = frozenset({"properties", "patternProperties", "dependentSchemas"})


def _inline(node: Any, base: str, stack: tuple[str, ...]) -> Any:
    """``node`` (a subschema of the document at ``base``) with every non-recursive ``$ref``
    replaced by an inlined copy of its target."""
    if isinstance(node, list):
        return [_inline(item, base, stack) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    target: Any = None
    for key, value in node.items():
        if key in ("$defs", "$id", "$schema"):
            continue
        if key == "$ref" and isinstance(value, str):
            absolute = urljoin(base, value)
            if absolute in stack:  # recursive: keep it, the registry resolves it
                out["$ref"] = absolute
            else:
                contents = registry().resolver().lookup(absolute).contents
                target = _inline(contents, urldefrag(absolute).url, (*stack, absolute))
        elif key in _DATA_KEYWORDS:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _inline(sub, base, stack) for name, sub in value.items()}
        elif key == "allOf" and isinstance(value, list):
            out[key] = _compile_dispatch(_inline(value, base, stack))
        else:
            out[key] = _inline(value, base, stack)
    if target is None:
        return out
    if not out:
        return target
    out["allOf"] = [*out.get("allOf", []), target]
    return out


def is_valid(ref: str, instance: Any) -> bool:
    return bool(validator(ref).is_valid(instance))


def schema_violations(
    ref: str, instance: Any, rule: str, event: int | None = None
) -> Iterator[Violation]:
    """One ``Violation`` per schema error of ``instance`` against ``ref``, in document order."""
    seen: set[tuple[str, str]] = set()
    for error in validator(ref).iter_errors(instance):
        path, message = describe(error)
        if (path, message) not in seen:
            seen.add((path, message))
            yield Violation(rule, path, message, event)


def describe(error: ValidationError) -> tuple[str, str]:
    """A JSON path and a short, readable message for a jsonschema error."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        depth = len(error.absolute_path)
        deeper = [e for e in error.context if len(e.absolute_path) > depth]
        if deeper:
            match = best_match(deeper)
            if match is not None:
                return describe(match)
        types: list[str] = []
        for sub in error.context:
            if sub.validator == "type":
                bound = sub.validator_value
                types += [str(t) for t in bound] if isinstance(bound, list) else [str(bound)]
        if types:
            wanted = " or ".join(dict.fromkeys(types))
            got = f"{_json_type(error.instance)} {short(error.instance, 40)}"
            return json_path(error.absolute_path), f"expected {wanted}, got {got}"
    path = json_path(error.absolute_path)
    kind = error.validator
    value = error.validator_value
    inst = error.instance
    if kind == "type":
        wanted = " or ".join(value) if isinstance(value, list) else str(value)
        message = f"expected {wanted}, got {_json_type(inst)} {short(inst, 40)}"
    elif kind == "const":
        message = f"expected {short(value)}, got {short(inst)}"
    elif kind == "enum":
        message = f"{short(inst)} is not one of {short(value, 120)}"
    elif kind == "pattern":
        message = f"{short(inst)} does not match {value}"
    elif kind in ("anyOf", "oneOf"):
        message = f"{short(inst)} matches none of the allowed forms"
    elif kind in ("required", "additionalProperties", "dependentRequired"):
        message = error.message
    elif kind in ("minimum", "exclusiveMinimum"):
        message = f"{short(inst)} is below the minimum {value}"
    elif kind in ("maximum", "exclusiveMaximum"):
        message = f"{short(inst)} is above the maximum {value}"
    elif kind in ("minItems", "maxItems", "minLength", "maxLength"):
        bound = "at least" if kind.startswith("min") else "at most"
        unit = "items" if kind.endswith("Items") else "characters"
        message = f"{short(inst)} must have {bound} {value} {unit}"
    elif kind == "not":
        message = f"{short(inst)} has a form that is not allowed here"
    else:
        message = f"{short(inst)}: {kind} {short(value)}"
    return path, message if len(message) <= 300 else message[:299] + "…"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
