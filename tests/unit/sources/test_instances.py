"""Values for JSON Schemas (``sources.instances``): every keyword tool authors use, a corpus of
real-world schemas, deterministic values that look like a model's, and unsatisfiable schemas
named by their path.  Every value is checked here with an independent validator (the schema's
own draft, formats checked)."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest
from schema_corpus import corpus

from mockserver.sources.instances import instance
from mockserver.sources.scalars import FORMATS, Unsatisfiable

SEEDS = range(25)


def valid(schema: Any, value: Any) -> bool:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return bool(cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid(value))


def values(schema: Any, prompt: str = "") -> list[Any]:
    out = [instance(schema, random.Random(seed), prompt) for seed in SEEDS]
    bad = [v for v in out if not valid(schema, v)]
    assert not bad, f"{len(bad)} invalid values, e.g. {bad[0]!r}"
    return out


def obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


CORPUS = corpus()


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_corpus_gets_valid_values(name: str) -> None:
    values(CORPUS[name], "edit /tmp/a.txt please")


def test_deterministic_per_seed_and_varied_across_seeds() -> None:
    schema = CORPUS["book_meeting"]
    one = [instance(schema, random.Random(7)) for _ in range(3)]
    assert one[0] == one[1] == one[2]
    assert len({json.dumps(v, sort_keys=True) for v in values(schema)}) > 5


# --- keyword by keyword ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"type": ["string", "null"]},
        {"type": ["null", "integer"]},
        {"type": "null"},
        {"enum": ["a", 1, None, [1]]},
        {"const": {"x": [1, 2]}},
        {"type": "integer", "minimum": -3, "maximum": -1},
        {"type": "integer", "exclusiveMinimum": 4, "exclusiveMaximum": 6},
        {"type": "integer", "minimum": 1.5, "maximum": 3.5},
        {"type": "integer", "multipleOf": 7, "minimum": 20, "maximum": 30},
        {"type": "integer", "multipleOf": 0.5},
        {"type": "number", "minimum": 0.1, "maximum": 0.3},
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.01},
        {"type": "number", "multipleOf": 0.25, "minimum": 1.1, "maximum": 1.6},
        {"type": "number", "multipleOf": 0.01},
        {"type": "number", "minimum": 1e15},
        {"type": "string", "minLength": 30},
        {"type": "string", "maxLength": 2},
        {"type": "string", "minLength": 5, "maxLength": 5},
        {"type": "string", "pattern": "^[a-z]{2}-\\d{3}$"},
        {"type": "string", "pattern": "(foo|bar)+baz"},
        {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
        {"type": "array", "maxItems": 0},
        {"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "uniqueItems": True},
        {"type": "array", "prefixItems": [{"const": 1}, {"type": "string"}], "items": False},
        {"type": "array", "contains": {"type": "integer", "minimum": 10}, "minContains": 2},
        {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
        {
            "type": "object",
            "patternProperties": {"^n_": {"type": "number"}},
            "additionalProperties": False,
            "minProperties": 1,
        },
        {"type": "object", "propertyNames": {"maxLength": 3}, "minProperties": 2},
        {"type": "object", "maxProperties": 1, "properties": {"a": {"type": "string"}}},
        {
            **obj(a={"type": "string"}),
            "dependentRequired": {"a": ["b"]},
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        },
        {
            **obj(a={"type": "string"}),
            "dependentSchemas": {"a": {"required": ["c"], "properties": {"c": {"const": 3}}}},
        },
        {"allOf": [{"type": "string"}, {"minLength": 4}, {"maxLength": 6}]},
        {"anyOf": [{"type": "string", "maxLength": 0}, {"type": "integer", "minimum": 5}]},
        {"oneOf": [{"type": "integer", "multipleOf": 2}, {"type": "integer", "multipleOf": 3}]},
        {"type": "integer", "not": {"enum": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}},
        {"not": {"type": ["string", "integer", "number"]}},
        {
            "type": "integer",
            "if": {"minimum": 5},
            "then": {"multipleOf": 5},
            "else": {"maximum": -1},
        },
        {"$defs": {"p": {"type": "integer", "minimum": 40}}, "$ref": "#/$defs/p"},
        {
            "$ref": "#/$defs/list",
            "$defs": {
                "list": {
                    "type": "object",
                    "properties": {"next": {"$ref": "#/$defs/list"}, "v": {"type": "integer"}},
                    "required": ["v"],
                }
            },
        },
        {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "boolean"}}},
        True,
        {},
    ],
    ids=lambda s: json.dumps(s)[:60],
)
def test_keywords(schema: Any) -> None:
    values(schema)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_formats(fmt: str) -> None:
    for value in values({"type": "string", "format": fmt}):
        assert isinstance(value, str) and value


def test_required_recursion_deep_enough_still_ends() -> None:
    schema = {
        "$defs": {
            "n": {
                "type": "object",
                "properties": {
                    "k": {
                        "type": "array",
                        "items": {"$ref": "#/$defs/n"},
                        "minItems": 1,
                        "maxItems": 1,
                    }
                },
                "required": ["k"],
            }
        },
        "type": "object",
        "properties": {"k": {"type": "array", "items": {"$ref": "#/$defs/n"}, "maxItems": 0}},
    }
    values(schema)


# --- what a model would send -------------------------------------------------------------------


def test_numbers_are_small_unless_the_bounds_say_otherwise() -> None:
    for v in values({"type": "integer"}) + values({"type": "number"}):
        assert 0 < v <= 10
    for v in values({"type": "integer", "minimum": 1000}):
        assert 1000 <= v < 1010
    for v in values({"type": "integer", "maximum": -50}):
        assert -53 <= v <= -50


def test_strings_are_words_and_defaults_are_used() -> None:
    for v in values({"type": "string"}):
        assert all(word.isalpha() for word in v.split())
    assert values({"type": "integer", "default": 5, "minimum": 0}) == [5] * len(SEEDS)
    assert set(values({"type": "integer", "default": -1, "minimum": 0})) != {-1}  # invalid default


def test_only_the_required_properties_and_the_prompt_path() -> None:
    schema = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string"},
            "limit": {"type": "integer"},
            "path": {"type": "string", "enum": ["x"]},
        },
        "required": ["limit"],
    }
    for v in values(schema, "Use Read on /tmp/dir/hello.txt."):
        assert v.keys() == {"limit", "file_path"} and v["file_path"] == "/tmp/dir/hello.txt"
    for v in values(schema, "no path here"):
        assert v.keys() == {"limit"}


# --- no value: a clear reason and where ---------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "path", "words"),
    [
        ({"type": "integer", "minimum": 5, "maximum": 1}, "$", "no integer lies in"),
        ({"type": "integer", "multipleOf": 4, "minimum": 5, "maximum": 7}, "$", "no integer"),
        ({"type": "string", "minLength": 4, "maxLength": 2}, "$", "minLength 4 > maxLength 2"),
        (obj(a={"$ref": "#/$defs/missing"}), "$.properties.a.$ref", "does not resolve"),
        (obj(a={"$ref": "#"}), "$.properties.a", "nested deeper than"),
        (
            {"type": "object", "required": ["x"], "additionalProperties": False},
            "$",
            "additionalProperties: false",
        ),
        (obj(a=False), "$.properties.a", "the schema `false`"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "$", "nothing in common"),
        ({"enum": []}, "$", ""),
        ({"type": "array", "minItems": 3, "maxItems": 1}, "$", "minItems 3 > maxItems 1"),
        ({"type": "object", "properties": 5}, "$.properties", "not a valid JSON Schema"),
        ({"type": "string", "pattern": "("}, "$", "pattern"),
        ({"type": "integer", "not": {"type": "integer"}}, "$", "excluded by `not`"),
    ],
)
def test_unsatisfiable_schemas_say_where(schema: Any, path: str, words: str) -> None:
    with pytest.raises(Unsatisfiable) as info:
        instance(schema, random.Random(0))
    assert info.value.path.startswith(path), str(info.value)
    assert words in str(info.value)
