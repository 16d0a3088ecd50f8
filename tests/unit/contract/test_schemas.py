"""The JSON Schemas of schemas/: well-formed, strict where the protocol is fixed, open where
real traffic carries more, and the fast (inlined) validators agree with the plain ones."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from traffic_cases import sample_names

from mockserver.contract import validation
from mockserver.contract.conformance import (
    check_count_tokens_request,
    check_count_tokens_response,
    check_error,
    check_message,
    check_models,
    check_request,
    error_dialect,
)
from mockserver.contract.grammar import KNOWN_DELTAS
from mockserver.contract.violations import Violation, json_path
from mockserver.wire import protocol as p
from mockserver.wire.errors import error_body
from mockserver.wire.sse import decode_all

REPO = Path(__file__).resolve().parents[3]


def paths(found: list[Violation]) -> set[str]:
    return {x.path for x in found}


# --- the schema documents ----------------------------------------------------------------


@pytest.mark.parametrize("name", validation.SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    doc = validation.schema(name)
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"{validation.BASE_URI}{name}.json"
    assert doc.get("description"), "every schema documents its shape"


def test_schema_files_on_disk_are_the_loaded_ones() -> None:
    on_disk = {f.stem for f in (REPO / "schemas").glob("*.json")}
    assert on_disk == set(validation.SCHEMA_NAMES)


def test_enums_match_protocol_vocabulary() -> None:
    message = validation.schema("message")["$defs"]
    assert set(message["stop_reason"]["enum"]) == p.STOP_REASONS
    events = validation.schema("stream_event")["$defs"]
    assert set(events) >= p.EVENT_NAMES
    assert set(events) >= KNOWN_DELTAS


def test_unknown_schema_reference_is_an_error() -> None:
    with pytest.raises(KeyError):
        validation.validator("nope")


# --- the fast validators give the same verdicts as the schemas as written ------------------


def _error_keys(validator: Draft202012Validator, instance: Any) -> set[tuple[str, str]]:
    """The distinct (instance path, keyword) pairs of the errors.  (For a non-object the
    plain if/then idiom repeats the same type error once per case; the set hides that.)"""
    return {(json_path(e.absolute_path), str(e.validator)) for e in validator.iter_errors(instance)}


def _shape(value: Any) -> Any:
    """The structure of a JSON value with its scalars erased (to keep one event per shape)."""
    if isinstance(value, dict):
        return tuple((k, value["type"] if k == "type" else _shape(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_shape(v) for v in value[:1])
    return type(value).__name__


def _corpus(traffic_dir: Path) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for f in sorted(traffic_dir.iterdir()):
        if f.suffix == ".sse":
            events, _ = decode_all(f.read_bytes())
            items += [("stream_event", json.loads(e.data)) for e in events]
        elif f.name.endswith(".error.json"):
            items.append(("error", json.loads(f.read_text())))
        elif f.suffix == ".json" and f.name != "manifest.json":
            body = json.loads(f.read_text())
            items.append(("request" if "messages" in body else "message", body))
    unique = {(ref, repr(_shape(value))): (ref, value) for ref, value in items}
    return list(unique.values())


def _break(value: Any, depth: int = 0) -> list[Any]:
    """Variants of ``value`` with one field set to a wrong type or removed."""
    out: list[Any] = []
    if isinstance(value, dict) and depth < 4:
        for key in list(value)[:6]:
            for wrong in (None, 7, "x", [], {}):
                changed = dict(value)
                changed[key] = wrong
                out.append(changed)
            removed = dict(value)
            del removed[key]
            out.append(removed)
            for sub in _break(value[key], depth + 1)[:6]:
                out.append({**value, key: sub})
    elif isinstance(value, list) and value and depth < 4:
        out += [[sub, *value[1:]] for sub in _break(value[0], depth + 1)[:6]]
    return out


def test_inlined_validators_agree_with_plain_schemas(traffic_dir: Path) -> None:
    checked = 0
    for ref, instance in _corpus(traffic_dir):
        fast, plain = validation.validator(ref), validation.plain_validator(ref)
        for variant in [instance, *_break(instance)[:30]]:
            assert _error_keys(fast, variant) == _error_keys(plain, variant), (ref, variant)
            checked += 1
    assert checked > 1000


def test_dispatch_is_compiled_for_discriminated_unions() -> None:
    text = json.dumps(validation.validator("stream_event").schema)
    assert validation.DISPATCH in text
    assert '"if"' not in text.split(validation.DISPATCH)[0][-200:]


# --- requests ------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "model": "deepseek-v3-anthropic",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}
TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}


def req(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    body.update(changes)
    return body


ACCEPTED_REQUESTS = {
    "minimal": req(),
    "system role turn (Claude Code)": req(
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "agent list"},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": "go"},
        ]
    ),
    "newer top-level fields": req(
        output_config={"effort": "high"},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        metadata={"user_id": json.dumps({"device_id": "x", "session_id": "y"})},
        thinking={"type": "adaptive"},
        cache_control={"type": "ephemeral", "ttl": "5m"},
        inference_geo="global",
        betas_unknown_future_field=True,
    ),
    "structured output": req(
        output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}}
    ),
    "thinking enabled and disabled": req(thinking={"type": "enabled", "budget_tokens": 1024}),
    "cache_control on blocks, system and tools": req(
        system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "x",
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    }
                ],
            }
        ],
        tools=[{**TOOL, "cache_control": {"type": "ephemeral"}}],
    ),
    "custom and strict tools, server tool": req(
        tools=[
            {**TOOL, "type": "custom", "strict": True, "description": ""},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        ],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    ),
    "tool loop with parallel results": req(
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}},
                    {
                        "type": "tool_use",
                        "id": "call_00_Xy-z",
                        "name": "get_weather",
                        "input": {"a": 1},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_00_Xy-z",
                        "is_error": True,
                        "content": [{"type": "text", "text": "failed"}],
                    },
                ],
            },
        ],
        tools=[TOOL],
    ),
    "image and unknown future block": req(
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    {"type": "some_future_block", "payload": 1},
                    {"type": "text", "text": "what is it?"},
                ],
            }
        ]
    ),
    "sampling bounds (protocol union)": req(
        temperature=2, top_p=0, top_k=0, stop_sequences=["\n\n"], stream=False
    ),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED_REQUESTS))
def test_request_accepts(name: str) -> None:
    assert check_request(ACCEPTED_REQUESTS[name]) == []


def _without(key: str) -> dict[str, Any]:
    body = req()
    del body[key]
    return body


REJECTED_REQUESTS: dict[str, tuple[dict[str, Any], str]] = {
    "missing model": (_without("model"), "$"),
    "missing max_tokens": (_without("max_tokens"), "$"),
    "missing messages": (_without("messages"), "$"),
    "model not a string": (req(model=3), "$.model"),
    "max_tokens zero": (req(max_tokens=0), "$.max_tokens"),
    "max_tokens a string": (req(max_tokens="64"), "$.max_tokens"),
    "empty messages": (req(messages=[]), "$.messages"),
    "bad role": (req(messages=[{"role": "bot", "content": "x"}]), "$.messages[0].role"),
    "content a number": (req(messages=[{"role": "user", "content": 5}]), "$.messages[0].content"),
    "text block without text": (
        req(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "$.messages[0].content[0]",
    ),
    "tool_use id with spaces": (
        req(
            messages=[
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "bad id", "name": "t", "input": {}}],
                }
            ]
        ),
        "$.messages[0].content[0].id",
    ),
    "bad image media type": (
        req(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": ""},
                        }
                    ],
                }
            ]
        ),
        "$.messages[0].content[0].source.media_type",
    ),
    "tool name with a space": (req(tools=[{**TOOL, "name": "get weather"}]), "$.tools[0].name"),
    "tool name too long": (req(tools=[{**TOOL, "name": "x" * 65}]), "$.tools[0].name"),
    "custom tool name invalid": (
        req(tools=[{**TOOL, "type": "custom", "name": "a.b"}]),
        "$.tools[0].name",
    ),
    "client tool without input_schema": (req(tools=[{"name": "t"}]), "$.tools[0]"),
    "input_schema without type": (
        req(tools=[{"name": "t", "input_schema": {"properties": {}}}]),
        "$.tools[0].input_schema",
    ),
    "input_schema not an object schema": (
        req(tools=[{"name": "t", "input_schema": {"type": "array"}}]),
        "$.tools[0].input_schema.type",
    ),
    "tool_choice tool without name": (req(tool_choice={"type": "tool"}), "$.tool_choice"),
    "tool_choice as a string": (req(tool_choice="auto"), "$.tool_choice"),
    "tool_choice OpenAI style": (
        req(tool_choice={"type": "function", "function": {"name": "t"}}),
        "$.tool_choice.type",
    ),
    "disable_parallel_tool_use not boolean": (
        req(tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}),
        "$.tool_choice.disable_parallel_tool_use",
    ),
    "temperature above 2": (req(temperature=2.5), "$.temperature"),
    "temperature negative": (req(temperature=-0.1), "$.temperature"),
    "top_p above 1": (req(top_p=1.5), "$.top_p"),
    "top_k negative": (req(top_k=-1), "$.top_k"),
    "thinking enabled without budget": (req(thinking={"type": "enabled"}), "$.thinking"),
    "thinking unknown type": (req(thinking={"type": "on"}), "$.thinking.type"),
    "cache_control unknown type": (req(cache_control={"type": "forever"}), "$.cache_control.type"),
    "cache_control bad ttl": (
        req(cache_control={"type": "ephemeral", "ttl": "2h"}),
        "$.cache_control.ttl",
    ),
    "stream not boolean": (req(stream="yes"), "$.stream"),
    "system a number": (req(system=5), "$.system"),
    "stop_sequences not strings": (req(stop_sequences=[1]), "$.stop_sequences[0]"),
    "metadata user_id a number": (req(metadata={"user_id": 5}), "$.metadata.user_id"),
    "body not an object": ([], "$"),
}


@pytest.mark.parametrize("name", sorted(REJECTED_REQUESTS))
def test_request_rejects(name: str) -> None:
    body, path = REJECTED_REQUESTS[name]
    found = check_request(body)
    assert found, f"{name} must be rejected"
    assert path in paths(found), [str(x) for x in found]
    assert all(x.rule == "request.schema" for x in found)


def test_request_violation_messages_are_short_and_named() -> None:
    huge = req(model={"x": "y" * 10_000})
    (found,) = check_request(huge)
    assert found.path == "$.model"
    assert found.message.startswith("expected string, got object")
    assert len(found.message) < 200
    (missing,) = check_request(_without("max_tokens"))
    assert "max_tokens" in missing.message


# --- messages --------------------------------------------------------------------------------

MESSAGE: dict[str, Any] = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "deepseek-v3-anthropic",
    "content": [
        {"type": "text", "text": "I'll check."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 412, "output_tokens": 71, "cache_read_input_tokens": 0},
}


def msg(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(MESSAGE)
    body.update(changes)
    return body


def test_message_accepts_newer_and_unknown_fields() -> None:
    m = msg(stop_details=None, container={"id": "c"})
    m["content"].insert(0, {"type": "compaction", "content": None})
    m["content"][2]["caller"] = {"type": "direct"}
    m["usage"].update(service_tier="standard", inference_geo="global", iterations=[])
    assert check_message(m) == []
    no_usage = msg()
    del no_usage["usage"]
    assert check_message(no_usage) == []


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"id": "chatcmpl-123"}, "$.id"),
        ({"type": "chat.completion"}, "$.type"),
        ({"role": "user"}, "$.role"),
        ({"stop_reason": "stop"}, "$.stop_reason"),
        ({"stop_reason": None}, "$.stop_reason"),
        ({"content": "text"}, "$.content"),
        ({"usage": {"input_tokens": 1}}, "$.usage"),
        ({"usage": {"input_tokens": 1, "output_tokens": -1}}, "$.usage.output_tokens"),
        ({"usage": {"input_tokens": None, "output_tokens": 1}}, "$.usage.input_tokens"),
    ],
)
def test_message_rejects(changes: dict[str, Any], path: str) -> None:
    assert path in paths(check_message(msg(**changes)))


def test_message_rejects_bad_blocks_and_missing_fields() -> None:
    m = msg()
    m["content"][1]["id"] = "call_00_abc"
    del m["content"][0]["text"]
    del m["stop_sequence"]
    assert paths(check_message(m)) == {"$", "$.content[0]", "$.content[1].id"}


# --- errors ------------------------------------------------------------------------------------


def test_error_bodies_of_both_dialects() -> None:
    anthropic = error_body("anthropic", p.OVERLOADED, "Overloaded", "req_1")
    deepseek = error_body("deepseek", p.AUTHENTICATION, "Authentication Fails", None)
    proxy = {"error": {"type": "request_too_large", "message": "Request exceeds the maximum size"}}
    for body in (anthropic, deepseek, proxy):
        assert check_error(body) == []
    assert error_dialect(anthropic) == "anthropic"
    assert error_dialect(proxy) == "anthropic"
    assert error_dialect(deepseek) == "deepseek"
    assert error_dialect({"detail": "x"}) is None
    assert error_dialect(None) is None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"type": "error"}, "$"),
        ({"error": "boom"}, "$.error"),
        ({"error": {"type": "api_error"}}, "$.error"),
        ({"type": "oops", "error": {"type": "api_error", "message": ""}}, "$.type"),
        ({"error": {"type": "", "message": "m"}}, "$.error.type"),
        ("Internal Server Error", "$"),
    ],
)
def test_error_rejects(body: Any, path: str) -> None:
    assert path in paths(check_error(body))


# --- count_tokens, models ----------------------------------------------------------------------


def test_count_tokens_shapes() -> None:
    body = req(system="s", tools=[TOOL])
    del body["max_tokens"]
    assert check_count_tokens_request(body) == []
    assert "$" in paths(check_count_tokens_request({"messages": []}))
    assert check_count_tokens_response({"input_tokens": 2095}) == []
    assert "$.input_tokens" in paths(check_count_tokens_response({"input_tokens": -1}))
    assert "$" in paths(check_count_tokens_response({}))


def test_models_shapes() -> None:
    model = {
        "type": "model",
        "id": "deepseek-v3-anthropic",
        "display_name": "DeepSeek V3.2 (Anthropic format)",
        "created_at": "2025-12-01T00:00:00Z",
    }
    listing = {"data": [model], "first_id": model["id"], "last_id": model["id"], "has_more": False}
    assert check_models(model) == []
    assert check_models(listing) == []
    assert check_models({**listing, "data": [], "first_id": None, "last_id": None}) == []
    assert "$.created_at" in paths(check_models({**model, "created_at": "yesterday"}))
    assert "$.type" in paths(check_models({**model, "type": "engine"}))
    assert "$.has_more" in paths(check_models({**listing, "has_more": "no"}))
    assert "$.data[0]" in paths(check_models({**listing, "data": [{"type": "model"}]}))


# --- real traffic ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sample_names())
def test_every_sample_matches_its_schema(
    name: str, traffic_dir: Path, traffic_manifest: list[dict[str, Any]]
) -> None:
    sample = next(s for s in traffic_manifest if s["file"] == name)
    raw = (traffic_dir / name).read_bytes()
    if sample["kind"] == "sse_stream":
        events, _ = decode_all(raw)
        found = [
            x
            for i, e in enumerate(events)
            for x in validation.schema_violations(
                "stream_event", json.loads(e.data), "event.schema", i
            )
        ]
    else:
        ref = {"request": "request", "response": "message", "error": "error"}[sample["kind"]]
        found = list(validation.schema_violations(ref, json.loads(raw), "schema"))
    assert found == [], [str(x) for x in found]


def test_json_path_rendering() -> None:
    assert json_path([]) == "$"
    assert json_path(["content", 0, "input"]) == "$.content[0].input"
    assert json_path(["weird key", "$ref"]) == '$["weird key"]["$ref"]'
    assert Violation("r", "$.model", "m").under("$.request.body").path == "$.request.body.model"
    assert Violation("r", "$", "m").under("$.x").path == "$.x"
