"""Checks of the request fields besides ``messages``: ``system``, ``tools`` (client tools
only), ``tool_choice``, ``thinking``, the sampling fields and the output format."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...profile import Profile
from ...sources.instances import validator
from ...sources.scalars import Unsatisfiable
from ...wire import protocol as p
from .wording import (
    NOT_BOOL,
    NOT_DICT,
    NOT_LIST,
    NOT_STR,
    NOT_UNION_DICT,
    as_int as _as_int,
    in_range as _range,
    invalid as _invalid,
    required as _required,
    str_field as _str_field,
    tag_error as _tag_error,
    union_tag as _union_tag,
)

TOOL_NAME_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
_TOOL_NAME = re.compile(TOOL_NAME_PATTERN[1:-1])

TOOL_CHOICES = ("auto", "any", "tool", "none")
THINKING_TYPES = ("enabled", "disabled", "adaptive")
CLIENT_TOOL = "custom"


def check_system(body: Mapping[str, Any]) -> None:
    system = body.get("system")
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _invalid("system", NOT_LIST)
    for k, block in enumerate(system):
        loc = f"system.{k}"
        if not isinstance(block, dict):
            raise _invalid(loc, NOT_DICT)
        if _required(block, "type", loc) != p.BLOCK_TEXT:
            raise _invalid(f"{loc}.type", "Input should be 'text'")
        _str_field(block, "text", loc)


def check_tools(body: Mapping[str, Any], profile: Profile) -> tuple[dict[str, Any], ...]:
    """Client tools only: name against the pattern, an object ``input_schema``, unique names."""
    tools = body.get("tools")
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise _invalid("tools", NOT_LIST)
    names: list[str] = []
    for i, tool in enumerate(tools):
        loc = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _invalid(loc, NOT_UNION_DICT)
        kind = tool.get("type") or CLIENT_TOOL
        if kind != CLIENT_TOOL:
            raise _tag_error(
                loc, kind, (CLIENT_TOOL,), " (server tools are not supported on this model)"
            )
        cloc = f"{loc}.{CLIENT_TOOL}"
        _str_field(tool, "name", cloc)
        if not _TOOL_NAME.fullmatch(tool["name"]):
            raise _invalid(f"{cloc}.name", f"String should match pattern '{TOOL_NAME_PATTERN}'")
        _str_field(tool, "description", cloc, optional=True)
        schema = _required(tool, "input_schema", cloc)
        if not isinstance(schema, dict):
            raise _invalid(f"{cloc}.input_schema", NOT_DICT)
        if _required(schema, "type", f"{cloc}.input_schema") != "object":
            raise _invalid(f"{cloc}.input_schema.type", "Input should be 'object'")
        names.append(tool["name"])
    if len(set(names)) != len(names):
        raise _invalid("tools", "Tool names must be unique.")
    if tools and not profile.tools:
        raise _invalid("tools", "this model does not support tool use")
    return tuple(tools)


def check_tool_choice(
    body: Mapping[str, Any], tools: tuple[Mapping[str, Any], ...]
) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    kind = _union_tag(choice, "tool_choice", TOOL_CHOICES)
    valid: dict[str, Any] = choice
    loc = f"tool_choice.{kind}"
    dptu = choice.get("disable_parallel_tool_use")
    if dptu is not None and not isinstance(dptu, bool):
        raise _invalid(f"{loc}.disable_parallel_tool_use", NOT_BOOL)
    if kind == "tool":
        _str_field(choice, "name", loc)
        if choice["name"] not in {t.get("name") for t in tools}:
            raise _invalid(f"{loc}.name", f"Tool '{choice['name']}' not found in `tools`")
    elif kind == "any" and not tools:
        raise _invalid("tool_choice", "tool_choice of type 'any' requires `tools`")
    return valid


def check_thinking(body: Mapping[str, Any], profile: Profile) -> None:
    """Shape of ``thinking``; under ``thinking: reject`` anything but ``disabled`` is a 400."""
    thinking = body.get("thinking")
    if thinking is None:
        return
    kind = _union_tag(thinking, "thinking", THINKING_TYPES)
    if kind == "enabled":
        _as_int(
            _required(thinking, "budget_tokens", "thinking.enabled"),
            "thinking.enabled.budget_tokens",
        )
    if kind != "disabled" and profile.thinking == "reject":
        what = "adaptive thinking" if kind == "adaptive" else "extended thinking"
        raise _invalid("thinking", f"{what} is not supported on this model")


def check_sampling(body: Mapping[str, Any], profile: Profile) -> None:
    """stop_sequences, stream, temperature, top_p, top_k, metadata (absent or null: fine)."""
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list):
            raise _invalid("stop_sequences", NOT_LIST)
        for k, s in enumerate(stops):
            if not isinstance(s, str):
                raise _invalid(f"stop_sequences.{k}", NOT_STR)
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _invalid("stream", NOT_BOOL)
    if body.get("temperature") is not None:
        _range(body["temperature"], "temperature", 0.0, profile.temperature_max)
    if body.get("top_p") is not None:
        _range(body["top_p"], "top_p", 0.0, 1.0)
    if body.get("top_k") is not None and _as_int(body["top_k"], "top_k") < 0:
        raise _invalid("top_k", "Input should be greater than or equal to 0")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _invalid("metadata", NOT_DICT)
        _str_field(metadata, "user_id", "metadata", optional=True)


OUTPUT_FORMATS = ("json_schema",)


def check_output_format(body: Mapping[str, Any], profile: Profile) -> Mapping[str, Any] | None:
    """The JSON Schema the reply must follow: ``output_config.format`` (or the older top-level
    ``output_format``) of type ``json_schema``; None when there is none, or when the profile's
    ``structured_output`` is ``ignore``.  ``reject``: a 400.  A schema that is not a valid JSON
    Schema is a 400 naming where."""
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise _invalid("output_config", NOT_DICT)
    loc, fmt = "output_config.format", (config or {}).get("format")
    if fmt is None:
        loc, fmt = "output_format", body.get("output_format")
    if fmt is None:
        return None
    kind = _union_tag(fmt, loc, OUTPUT_FORMATS)
    schema = _required(fmt, "schema", f"{loc}.{kind}")
    if not isinstance(schema, dict):
        raise _invalid(f"{loc}.{kind}.schema", NOT_DICT)
    if profile.structured_output == "reject":
        raise _invalid(loc, "structured outputs are not supported on this model")
    if profile.structured_output == "ignore":
        return None
    try:
        validator(schema)  # (cached by the schema: the synthesizer uses the same one)
    except Unsatisfiable as exc:
        raise _invalid(f"{loc}.{kind}.schema{exc.path.removeprefix('$')}", exc.reason) from None
    return schema
