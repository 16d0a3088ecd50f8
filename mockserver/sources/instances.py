"""Values that validate against a JSON Schema: a tool call's ``input``, a structured reply's JSON.

``instance(schema, rng)`` covers JSON Schema 2020-12 as tool authors write it (and the older
drafts' spellings): ``type`` lists and ``null``, ``enum``/``const``, number bounds and
``multipleOf``, string lengths, ``pattern`` and ``format``, arrays (``prefixItems``, ``items``,
``contains``, ``uniqueItems``, sizes), objects (``required``, ``properties``,
``patternProperties``, ``additionalProperties``, ``propertyNames``, sizes,
``dependentRequired``, ``dependentSchemas``), ``allOf``/``anyOf``/``oneOf``/``not``,
``if``/``then``/``else``, ``$ref``/``$defs`` (recursion bounded).  Values look like a model's:
only the required properties (and a path-named property gets the path the user wrote), a few
words for a string, small numbers.

Every value is validated against the whole schema with a format checker before it is
returned; a schema no value satisfies (contradictory bounds, ``false``, a ``$ref`` to nowhere,
recursion that never ends) raises ``Unsatisfiable`` naming the path in the schema.
Deterministic for a schema and the ``random.Random`` given.
"""

from __future__ import annotations

import json
import random
import re
from collections import OrderedDict
from threading import Lock
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing._core import Resolver
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from .containers import Containers
from .merge import TYPES, merge
from .scalars import Unsatisfiable, number, string, words

#: nesting past this is a schema that recurses without end
HARD_DEPTH = 24
#: keywords that make a scope for $ref (the resolver carries it once entered)
SCOPE_KEYS = frozenset({"$id", "$defs", "definitions", "$schema", "$anchor", "$dynamicAnchor"})
#: draws tried before a schema is called unsatisfiable
ATTEMPTS = 6
_ABS_PATH = re.compile(r"(?<![\w/.~:<])/[^\s\"'`<>()\[\]{},;]+")

_CACHE_MAX = 512
_validators: OrderedDict[str, Validator | SchemaError] = OrderedDict()
_lock = Lock()


def validator(schema: Any) -> Validator:
    """A validator for ``schema`` (its own ``$schema`` draft, formats checked), cached by the
    schema's JSON; ``Unsatisfiable`` when ``schema`` is not a valid JSON Schema."""
    key = json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str)
    with _lock:
        found = _validators.get(key)
        if found is not None:
            _validators.move_to_end(key)
    if found is None:
        try:
            cls = jsonschema.validators.validator_for(
                schema, default=jsonschema.Draft202012Validator
            )
            cls.check_schema(schema)
            found = cls(schema, format_checker=cls.FORMAT_CHECKER)
        except SchemaError as exc:
            found = exc
        except (TypeError, ValueError, RecursionError) as exc:
            found = SchemaError(str(exc))
        with _lock:
            _validators[key] = found
            while len(_validators) > _CACHE_MAX:
                _validators.popitem(last=False)
    if isinstance(found, SchemaError):
        where = "$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in found.path)
        raise Unsatisfiable(where, f"not a valid JSON Schema: {found.message}")
    return found


def path_in(prompt: str) -> str | None:
    """The first absolute path written in ``prompt`` (trailing punctuation dropped)."""
    for m in _ABS_PATH.finditer(prompt):
        path = m.group(0).rstrip(".:!?")
        if len(path) > 1:
            return path
    return None


def instance(schema: Any, rng: random.Random, prompt: str = "") -> Any:
    """A value valid for ``schema`` (see the module docstring), or ``Unsatisfiable``."""
    check = validator(schema)
    first: Unsatisfiable | None = None
    for attempt in range(ATTEMPTS):
        gen = _Gen(schema, rng, path_in(prompt) if attempt < ATTEMPTS - 1 else None)
        try:
            value = gen.value(schema, "$", 0, gen.resolver)
        except Unsatisfiable as exc:
            first = first or exc
            continue
        try:
            error = next(iter(check.iter_errors(value)), None)
        except (Unresolvable, RecursionError) as exc:  # a $ref the validator cannot follow
            raise Unsatisfiable("$", f"a $ref does not resolve: {exc}") from None
        if error is None:
            return value
        first = first or Unsatisfiable(
            "$" + "".join(f".{p}" for p in error.schema_path), f"no value found ({error.message})"
        )
    assert first is not None
    raise first


class _Gen(Containers):
    def __init__(self, root: Any, rng: random.Random, prompt_path: str | None) -> None:
        self.rng = rng
        self.prompt_path = prompt_path
        resource: Resource[Any] = Resource.from_contents(root, default_specification=DRAFT202012)
        uri = resource.id() or "urn:mockserver:schema"
        self.resolver: Resolver[Any] = (
            Registry().with_resource(uri, resource).crawl().resolver(base_uri=uri)
        )
        self.check = validator(root)

    def valid(self, schema: Any, value: Any) -> bool:
        try:
            return bool(self.check.evolve(schema=schema).is_valid(value))
        except (Unresolvable, RecursionError):
            return False

    # --- one value ------------------------------------------------------------------------

    def value(self, schema: Any, path: str, depth: int, res: Resolver[Any]) -> Any:
        if depth > HARD_DEPTH:
            raise Unsatisfiable(
                path, f"nested deeper than {HARD_DEPTH} levels (a $ref that always recurses?)"
            )
        if schema is True or schema == {}:
            return words(self.rng)
        if schema is False:
            raise Unsatisfiable(path, "the schema `false` accepts no value")
        if not isinstance(schema, dict):
            raise Unsatisfiable(path, f"not a schema: {schema!r}")
        schema, res = self.flatten(schema, path, depth, res)
        if "const" in schema:
            return schema["const"]
        if "default" in schema and self.valid(schema, schema["default"]):
            return schema["default"]  # (what a model sends when it has nothing better)
        if isinstance(schema.get("enum"), list):
            return self.pick_enum(schema, path)
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                return self.branch(schema, key, path, depth, res)
        if isinstance(schema.get("if"), dict | bool):
            return self.conditional(schema, path, depth, res)
        if "not" in schema:
            return self.avoiding(schema, path, depth, res)
        return self.typed(schema, path, depth, res)

    def flatten(
        self, schema: dict[str, Any], path: str, depth: int, res: Resolver[Any]
    ) -> tuple[dict[str, Any], Resolver[Any]]:
        """``schema`` with its ``$ref`` resolved and its ``allOf`` merged in."""
        if isinstance(schema.get("$id"), str):  # a new base for the $refs inside it
            res = res.in_subresource(
                Resource.from_contents(schema, default_specification=DRAFT202012)
            )
        for _ in range(HARD_DEPTH):
            ref = schema.get("$ref")
            if isinstance(ref, str):
                try:
                    resolved = res.lookup(ref)
                except Unresolvable:
                    raise Unsatisfiable(f"{path}.$ref", f"{ref!r} does not resolve") from None
                res = resolved.resolver
                rest = {k: v for k, v in schema.items() if k != "$ref"}
                target = resolved.contents
                if target is False:
                    raise Unsatisfiable(path, f"{ref!r} is the schema `false`")
                schema = merge(target if isinstance(target, dict) else {}, rest, path)
                continue
            parts = schema.get("allOf")
            if isinstance(parts, list):
                merged = {k: v for k, v in schema.items() if k != "allOf"}
                for i, part in enumerate(parts):
                    if part is False:
                        raise Unsatisfiable(
                            f"{path}.allOf[{i}]", "the schema `false` accepts no value"
                        )
                    if isinstance(part, dict):
                        part, res = self.flatten(part, f"{path}.allOf[{i}]", depth, res)
                        merged = merge(merged, part, path)
                schema = merged
                continue
            return schema, res
        raise Unsatisfiable(path, "$ref chain too long")

    def pick_enum(self, schema: dict[str, Any], path: str) -> Any:
        options = list(schema["enum"])
        if not options:
            raise Unsatisfiable(path, "enum is empty")
        rest = {k: v for k, v in schema.items() if k != "enum"}
        self.rng.shuffle(options)
        for option in options:
            if self.valid(rest, option):
                return option
        raise Unsatisfiable(path, "no enum value satisfies the rest of the schema")

    def branch(
        self, schema: dict[str, Any], key: str, path: str, depth: int, res: Resolver[Any]
    ) -> Any:
        # (the schema's own $id and $defs stay out of each branch: ``res`` is their scope
        # already, and merged into a branch with its own they would resolve its $ref in
        # theirs, e.g. back to this very anyOf)
        rest = {k: v for k, v in schema.items() if k != key and k not in SCOPE_KEYS}
        branches = list(enumerate(schema[key]))
        self.rng.shuffle(branches)
        first: Unsatisfiable | None = None
        for i, sub in branches:
            if sub is False:
                continue
            where = f"{path}.{key}[{i}]"
            try:
                candidate = self.value(
                    merge(rest, sub if isinstance(sub, dict) else {}, where), where, depth + 1, res
                )
            except Unsatisfiable as exc:
                first = first or exc
                continue
            if key == "oneOf" and sum(self.valid(s, candidate) for s in schema[key]) != 1:
                continue
            return candidate
        raise first or Unsatisfiable(path, f"no branch of {key} can be satisfied")

    def conditional(self, schema: dict[str, Any], path: str, depth: int, res: Resolver[Any]) -> Any:
        cond = schema["if"]
        rest = {
            k: v
            for k, v in schema.items()
            if k not in ("if", "then", "else") and k not in SCOPE_KEYS
        }
        ways = [("then", True), ("else", False)]
        self.rng.shuffle(ways)
        for key, holds in ways:
            extra = schema.get(key, True)
            if extra is False:
                continue
            parts = [rest, extra if isinstance(extra, dict) else {}]
            if holds and isinstance(cond, dict):
                parts.append(cond)
            merged = parts[0]
            for part in parts[1:]:
                merged = merge(merged, part, path)
            try:
                candidate = self.value(merged, f"{path}.{key}", depth + 1, res)
            except Unsatisfiable:
                continue
            if self.valid(cond, candidate) == holds:
                return candidate
        raise Unsatisfiable(path, "neither if/then nor else can be satisfied")

    def avoiding(self, schema: dict[str, Any], path: str, depth: int, res: Resolver[Any]) -> Any:
        banned = schema["not"]
        rest = {k: v for k, v in schema.items() if k != "not"}
        tries = [rest] * 4
        if "type" not in rest:  # whatever is not excluded: try each type
            tries += [{**rest, "type": kind} for kind in TYPES]
        for option in tries:
            try:
                candidate = self.value(option, path, depth, res)
            except Unsatisfiable:
                continue
            for nearby in _nearby(candidate):
                if not self.valid(banned, nearby) and self.valid(option, nearby):
                    return nearby
        raise Unsatisfiable(f"{path}.not", "every value found is excluded by `not`")

    def typed(self, schema: dict[str, Any], path: str, depth: int, res: Resolver[Any]) -> Any:
        types = schema.get("type")
        if isinstance(types, str):
            options = [types]
        elif isinstance(types, list) and types:  # a model fills in a value, null last
            options = [str(t) for t in types if t != "null"] + (["null"] if "null" in types else [])
        else:
            options = [_implied_type(schema)]
        first: Unsatisfiable | None = None
        for kind in options:
            try:
                return self.of_type(kind, schema, path, depth, res)
            except Unsatisfiable as exc:
                first = first or exc
        raise first or Unsatisfiable(path, f"no type in {types!r}")

    def of_type(
        self, kind: str, schema: dict[str, Any], path: str, depth: int, res: Resolver[Any]
    ) -> Any:
        if kind == "object":
            return self.obj(schema, path, depth, res)
        if kind == "array":
            return self.array(schema, path, depth, res)
        if kind == "string":
            return string(schema, self.rng, path)
        if kind in ("integer", "number"):
            return number(schema, self.rng, path, integer=kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        raise Unsatisfiable(f"{path}.type", f"unknown type {kind!r} (known: {', '.join(TYPES)})")


def _implied_type(schema: dict[str, Any]) -> str:
    keys = set(schema)
    if keys & {
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "minProperties",
        "maxProperties",
        "propertyNames",
        "dependentRequired",
    }:
        return "object"
    if keys & {"items", "prefixItems", "minItems", "maxItems", "contains", "uniqueItems"}:
        return "array"
    if keys & {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}:
        return "number"
    return "string"


def _nearby(value: Any) -> list[Any]:
    """``value`` and a few values close to it (for ``not``, which may exclude the first)."""
    if isinstance(value, bool) or value is None:
        return [value, not value] if isinstance(value, bool) else [value]
    if isinstance(value, int | float):
        return [
            value,
            *(value + d for d in range(11, 60, 7)),
            *(value - d for d in range(11, 60, 7)),
        ]
    if isinstance(value, str):
        return [value, value + " x", value + "y", value[:-1]]
    return [value]
