"""Objects and arrays for ``instances``: which properties a model fills in (the required ones,
a path-named one when the prompt has a path, enough for ``minProperties``), property names
beyond the schema's own, array lengths, ``prefixItems``, ``contains`` and ``uniqueItems``."""

from __future__ import annotations

import json
import random
import re
from typing import Any

from referencing._core import Resolver

from .merge import merge
from .scalars import Unsatisfiable, string

#: nesting past this: objects get only their required properties, arrays their minItems
SOFT_DEPTH = 5
#: a top-level string property named like a path gets the path written in the prompt
PATH_NAME = re.compile(r"^(?:path|file|filename|\w+_(?:path|file))$", re.IGNORECASE)
#: names of properties beyond the schema's own (``minProperties``)
WORD_SUFFIXES = ("note", "extra", "detail", "tag", "label", "info")


class Containers:
    """The object and array part of the generator (``instances._Gen``)."""

    rng: random.Random
    prompt_path: str | None

    def value(self, schema: Any, path: str, depth: int, res: Resolver[Any]) -> Any:
        raise NotImplementedError

    def valid(self, schema: Any, value: Any) -> bool:
        raise NotImplementedError

    def obj(
        self, schema: dict[str, Any], path: str, depth: int, res: Resolver[Any]
    ) -> dict[str, Any]:
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        deps = schema.get("dependentSchemas")
        if isinstance(deps, dict):  # a required property's dependent schema applies to all
            for name in required:
                if isinstance(deps.get(name), dict):
                    schema = merge(schema, deps[name], path)
            required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        patterns = schema.get("patternProperties")
        patterns = patterns if isinstance(patterns, dict) else {}
        extra = schema.get("additionalProperties", True)
        names = list(dict.fromkeys(required))
        if self.prompt_path is not None and depth == 0:  # "Use Read on /tmp/x.txt"
            names += [n for n, s in props.items() if PATH_NAME.match(n) and _plain_string(s)]
        dependent = schema.get("dependentRequired")
        dependent = dependent if isinstance(dependent, dict) else {}
        minimum = int(schema.get("minProperties") or 0)
        if len(set(names)) < minimum:
            optional = [n for n in props if n not in names]
            names += optional[: minimum - len(set(names))]
        while len(set(names)) < minimum:
            names.append(self.new_name(schema, patterns, names, path))
        names = _with_dependencies(list(dict.fromkeys(names)), dependent)
        maximum = schema.get("maxProperties")
        if isinstance(maximum, int) and len(names) > maximum:
            raise Unsatisfiable(
                path, f"{len(names)} properties are required, maxProperties is {maximum}"
            )
        out: dict[str, Any] = {}
        for name in names:
            sub = self.property_schema(name, props, patterns, extra, path)
            where = f"{path}.properties.{name}"
            if (
                self.prompt_path is not None
                and depth == 0
                and PATH_NAME.match(name)
                and _plain_string(sub)
            ):
                out[name] = self.prompt_path
            else:
                out[name] = self.value(sub, where, depth + 1, res)
        return out

    def property_schema(
        self, name: str, props: dict[str, Any], patterns: dict[str, Any], extra: Any, path: str
    ) -> Any:
        if name in props:
            return props[name]
        matching = [s for p, s in patterns.items() if _search(p, name)]
        if matching:
            merged: dict[str, Any] = {}
            for sub in matching:
                if sub is False:
                    raise Unsatisfiable(
                        f"{path}.patternProperties", f"property {name!r} is not allowed"
                    )
                merged = merge(merged, sub if isinstance(sub, dict) else {}, path)
            return merged
        if extra is False:
            raise Unsatisfiable(
                path, f"property {name!r} is required but not allowed (additionalProperties: false)"
            )
        return extra

    def new_name(
        self, schema: dict[str, Any], patterns: dict[str, Any], taken: list[str], path: str
    ) -> str:
        """A property name beyond ``properties`` (to reach ``minProperties``): one a pattern
        property matches, else one ``propertyNames`` allows."""
        names = schema.get("propertyNames")
        allowed = names if isinstance(names, dict | bool) else True
        candidates: list[str] = []
        for pattern in patterns:
            try:
                base = string({"pattern": pattern}, self.rng, path)
            except Unsatisfiable:
                continue
            more = [base, *(f"{base}{self.rng.choice(WORD_SUFFIXES)}{i}" for i in range(4))]
            candidates += [c for c in more if _search(pattern, c)]
        if schema.get("additionalProperties", True) is not False:
            for _ in range(8):
                if isinstance(names, dict):
                    try:
                        candidates.append(string(names, self.rng, path))
                    except Unsatisfiable:
                        break
                else:
                    candidates.append(self.rng.choice(WORD_SUFFIXES))
        for candidate in candidates:
            if candidate not in taken and self.valid(allowed, candidate):
                return candidate
        raise Unsatisfiable(path, "no more property names for minProperties")

    def array(self, schema: dict[str, Any], path: str, depth: int, res: Resolver[Any]) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 2019-09 and older: tuple validation
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix if isinstance(prefix, list) else []
        lo = int(schema.get("minItems") or 0)
        hi = schema.get("maxItems")
        hi = int(hi) if isinstance(hi, int | float) and not isinstance(hi, bool) else None
        if hi is not None and lo > hi:
            raise Unsatisfiable(path, f"minItems {lo} > maxItems {hi}")
        contains = schema.get("contains")
        need = int(schema.get("minContains", 1)) if contains is not None else 0
        want = lo if depth >= SOFT_DEPTH else max(lo, min(len(prefix) or 1, 2), need)
        if hi is not None:
            want = min(want, hi)
        if items is False and want > len(prefix):
            if lo > len(prefix):
                raise Unsatisfiable(
                    path, f"minItems {lo} but only {len(prefix)} prefixItems allowed"
                )
            want = len(prefix)
        out: list[Any] = []
        seen: set[str] = set()
        unique = schema.get("uniqueItems") is True
        for i in range(want):
            sub = prefix[i] if i < len(prefix) else items
            if i < need and isinstance(contains, dict):
                sub = merge(sub if isinstance(sub, dict) else {}, contains, path)
            where = f"{path}.prefixItems[{i}]" if i < len(prefix) else f"{path}.items"
            for _ in range(12):
                value = self.value(sub, where, depth + 1, res)
                key = json.dumps(value, sort_keys=True)
                if not unique or key not in seen:
                    break
            else:
                raise Unsatisfiable(where, "no distinct values enough for uniqueItems")
            seen.add(key)
            out.append(value)
        return out


def _plain_string(schema: Any) -> bool:
    return (
        isinstance(schema, dict)
        and schema.get("type") == "string"
        and not {"enum", "const", "format", "pattern", "maxLength"} & set(schema)
    )


def _search(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _with_dependencies(names: list[str], dependent: dict[str, Any]) -> list[str]:
    out = list(names)
    for name in out:  # (grows while it is walked: the closure)
        for dep in dependent.get(name) or []:
            if isinstance(dep, str) and dep not in out:
                out.append(dep)
    return out
