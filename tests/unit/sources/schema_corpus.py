"""Tool and output schemas as people write them: hand-written ones in the style of the SDKs'
examples, and what pydantic (which the Python SDK's ``messages.parse`` and many agent
frameworks use) makes of typical models, as is and after the SDK's ``transform_schema``."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Annotated, Any, Literal

import pydantic

HAND_WRITTEN: dict[str, dict[str, Any]] = {
    "get_weather": {
        "type": "object",
        "properties": {
            "location": {
                "type": "string",
                "description": "The city and state, e.g. San Francisco, CA",
            },
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
    "get_stock_price": {
        "type": "object",
        "properties": {"ticker": {"type": "string", "pattern": "^[A-Z]{1,5}$"}},
        "required": ["ticker"],
    },
    "book_meeting": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 3, "maxLength": 80},
            "start": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "at": {"type": "string", "format": "time"},
            "attendees": {
                "type": "array",
                "items": {"type": "string", "format": "email"},
                "minItems": 1,
                "maxItems": 5,
                "uniqueItems": True,
            },
            "duration_minutes": {
                "type": "integer",
                "minimum": 15,
                "maximum": 480,
                "multipleOf": 15,
            },
            "room_id": {"type": "string", "format": "uuid"},
        },
        "required": ["title", "start", "attendees", "duration_minutes", "room_id", "day", "at"],
        "additionalProperties": False,
    },
    "network_probe": {
        "type": "object",
        "properties": {
            "host": {"type": "string", "format": "hostname"},
            "v4": {"type": "string", "format": "ipv4"},
            "v6": {"type": "string", "format": "ipv6"},
            "url": {"type": "string", "format": "uri"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 2.5},
            "ratio": {"type": "number", "minimum": 0.1, "maximum": 0.2, "multipleOf": 0.05},
        },
        "required": ["host", "v4", "v6", "url", "timeout", "ratio"],
    },
    "file_edit": {  # Claude Code's Edit, as CLIENTS.md describes its shape
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The absolute path to the file"},
            "old_string": {"type": "string"},
            "new_string": {"type": "string"},
            "replace_all": {"type": "boolean", "default": False},
        },
        "required": ["file_path", "old_string", "new_string"],
        "additionalProperties": False,
    },
    "search": {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "filters": {
                "type": "object",
                "properties": {
                    "since": {"type": ["string", "null"], "format": "date"},
                    "kinds": {"type": "array", "items": {"enum": ["doc", "code", "issue"]}},
                },
                "additionalProperties": False,
            },
            "page": {"type": "integer", "minimum": 1},
        },
        "required": ["query", "filters"],
        "dependentRequired": {"page": ["query"]},
    },
    "shape": {  # a discriminated union
        "type": "object",
        "properties": {
            "shape": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "kind": {"const": "circle"},
                            "radius": {"type": "number", "exclusiveMinimum": 0},
                        },
                        "required": ["kind", "radius"],
                    },
                    {
                        "type": "object",
                        "properties": {
                            "kind": {"const": "rect"},
                            "w": {"type": "integer", "minimum": 1},
                            "h": {"type": "integer", "minimum": 1},
                        },
                        "required": ["kind", "w", "h"],
                    },
                ]
            }
        },
        "required": ["shape"],
    },
    "tree": {  # recursion through $defs
        "type": "object",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["label"],
            }
        },
        "properties": {"root": {"$ref": "#/$defs/node"}},
        "required": ["root"],
    },
    "headers": {
        "type": "object",
        "properties": {
            "headers": {
                "type": "object",
                "patternProperties": {"^x-[a-z]+$": {"type": "string"}},
                "propertyNames": {"pattern": "^x-[a-z]+$"},
                "additionalProperties": False,
                "minProperties": 2,
                "maxProperties": 4,
            },
            "pair": {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"type": "integer"}],
                "items": False,
                "minItems": 2,
            },
            "has_admin": {
                "type": "array",
                "contains": {"const": "admin"},
                "items": {"type": "string"},
            },
        },
        "required": ["headers", "pair", "has_admin"],
    },
    "conditional": {
        "type": "object",
        "properties": {"mode": {"enum": ["fast", "safe"]}, "retries": {"type": "integer"}},
        "required": ["mode"],
        "if": {"properties": {"mode": {"const": "safe"}}},
        "then": {"required": ["retries"], "properties": {"retries": {"minimum": 3}}},
        "else": {"not": {"required": ["retries"]}},
    },
    "draft4_style": {  # tuple items, boolean exclusiveMaximum, definitions
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "definitions": {"id": {"type": "string", "pattern": "^[a-f0-9]{8}$"}},
        "properties": {
            "ids": {
                "type": "array",
                "items": [{"$ref": "#/definitions/id"}],
                "additionalItems": False,
            },
            "count": {"type": "integer", "minimum": 0, "maximum": 10, "exclusiveMaximum": True},
        },
        "required": ["ids", "count"],
    },
    "all_of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {
                "properties": {"a": {"minimum": 100, "maximum": 200}, "b": {"type": "string"}},
                "required": ["b"],
            },
        ]
    },
}


class Unit(enum.Enum):
    c = "celsius"
    f = "fahrenheit"


class Address(pydantic.BaseModel):
    street: str
    city: str
    postcode: Annotated[str, pydantic.StringConstraints(pattern=r"^\d{5}$")]


class Person(pydantic.BaseModel):
    name: Annotated[str, pydantic.StringConstraints(min_length=1, max_length=40)]
    age: Annotated[int, pydantic.Field(ge=0, le=150)]
    nickname: str | None = None
    address: Address
    previous: list[Address] = []
    unit: Unit = Unit.c
    role: Literal["admin", "user"]
    scores: dict[str, float]
    born: dt.date
    seen: dt.datetime
    id: uuid.UUID
    ratio: Annotated[float, pydantic.Field(gt=0, lt=1)]


class Cat(pydantic.BaseModel):
    kind: Literal["cat"]
    lives: Annotated[int, pydantic.Field(ge=1, le=9)]


class Dog(pydantic.BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(pydantic.BaseModel):
    pet: Annotated[Cat | Dog, pydantic.Field(discriminator="kind")]
    tags: Annotated[list[str], pydantic.Field(min_length=1, max_length=3)]


class Folder(pydantic.BaseModel):
    name: str
    children: list[Folder] = []


MODELS: tuple[type[pydantic.BaseModel], ...] = (Address, Person, Pet, Folder)


def pydantic_schemas() -> dict[str, dict[str, Any]]:
    """Each model's schema as pydantic makes it, and as the Python SDK sends it."""
    from anthropic import transform_schema

    out: dict[str, dict[str, Any]] = {}
    for model in MODELS:
        schema = model.model_json_schema()
        out[f"pydantic:{model.__name__}"] = schema
        out[f"sdk:{model.__name__}"] = transform_schema(schema)
    return out


def corpus() -> dict[str, dict[str, Any]]:
    return {**HAND_WRITTEN, **pydantic_schemas()}
