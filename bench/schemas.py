"""Tool schemas of the kind agents send, for the schema-instance benchmark (``instances``):
Claude Code's shapes (CLIENTS.md §5), an SDK-example tool, one with formats and bounds, and what
pydantic makes of a nested model."""

from __future__ import annotations

from typing import Any

DRAFT = "https://json-schema.org/draft/2020-12/schema"

TYPICAL: dict[str, dict[str, Any]] = {
    "get_weather": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "City and state"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
    "Read": {
        "$schema": DRAFT,
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The absolute path to the file"},
            "offset": {"type": "integer"},
            "limit": {"type": "integer"},
            "pages": {"type": "string"},
        },
        "required": ["file_path"],
        "additionalProperties": False,
    },
    "Bash": {
        "$schema": DRAFT,
        "type": "object",
        "properties": {
            "command": {"type": "string"},
            "timeout": {"type": "number"},
            "description": {"type": "string"},
            "run_in_background": {"type": "boolean"},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
    "Agent": {
        "$schema": DRAFT,
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "prompt": {"type": "string"},
            "subagent_type": {"type": "string"},
            "model": {"type": "string", "enum": ["sonnet", "opus", "haiku"]},
            "run_in_background": {"type": "boolean"},
        },
        "required": ["description", "prompt", "subagent_type"],
        "additionalProperties": False,
    },
}
RICH: dict[str, dict[str, Any]] = {
    "book_meeting (formats, bounds, unique)": {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 3, "maxLength": 80},
            "start": {"type": "string", "format": "date-time"},
            "attendees": {
                "type": "array",
                "items": {"type": "string", "format": "email"},
                "minItems": 2,
                "uniqueItems": True,
            },
            "minutes": {"type": "integer", "minimum": 15, "maximum": 480, "multipleOf": 15},
            "room": {"type": "string", "format": "uuid"},
        },
        "required": ["title", "start", "attendees", "minutes", "room"],
        "additionalProperties": False,
    },
    "pydantic nested model ($defs, anyOf null)": {
        "$defs": {
            "Address": {
                "properties": {
                    "street": {"type": "string"},
                    "postcode": {"pattern": "^\\d{5}$", "type": "string"},
                },
                "required": ["street", "postcode"],
                "type": "object",
            }
        },
        "properties": {
            "name": {"type": "string"},
            "age": {"maximum": 150, "minimum": 0, "type": "integer"},
            "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            "address": {"$ref": "#/$defs/Address"},
        },
        "required": ["name", "age", "address"],
        "type": "object",
    },
}
