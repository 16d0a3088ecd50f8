"""What synth answers, over HTTP, JSON and stream alike: structured output (and its profile
switch), forced tool use, stop sequences, ``max_tokens`` cuts at token boundaries, tools whose
schema no value satisfies, and the models list's ``ModelInfo`` fields."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import anthropic
import jsonschema
import pytest

from mockserver.accounting.tokens import TokenCounter
from mockserver.config import Settings
from mockserver.contract import conformance as c
from mockserver.profile import load_profile
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p
from mockserver.wire.sse import decode_all
from mockserver.wire.streaming import fold

MODEL = "deepseek-v3-anthropic"
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "born": {"type": "string", "format": "date"},
        "id": {"type": "string", "format": "uuid"},
        "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    },
    "required": ["name", "born", "id", "score"],
    "additionalProperties": False,
}
WEATHER = {
    "name": "get_weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
NONE_FITS = {
    "name": "impossible",
    "input_schema": {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}},
        "required": ["n"],
    },
}


def start(**profile_settings: str) -> ServerThread:
    sets = tuple(f"{k}={v}" for k, v in profile_settings.items())
    return ServerThread(Settings(port=0, mode="synth", profile=load_profile(None, sets))).start()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    thread = start()
    try:
        yield thread
    finally:
        thread.stop()


def client(server: ServerThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="sk-fidelity", max_retries=0)


def post(server: ServerThread, body: dict[str, Any]) -> bytes:
    host, port = server.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {
        "x-api-key": "k",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }
    conn.request("POST", p.PATH_MESSAGES, json.dumps(body), headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    assert resp.status == 200, data
    return data


def both(server: ServerThread, **body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON reply and the folded stream of the same request (the stream's bytes checked)."""
    params = {"model": MODEL, "max_tokens": 512, **body}
    plain: dict[str, Any] = json.loads(post(server, params))
    assert c.check_message(plain) == []
    data = post(server, {**params, "stream": True})
    assert c.check_sse_bytes(data) == []
    events, _ = decode_all(data)
    streamed = fold((e.name, e.json()) for e in events)
    return plain, streamed


def same(plain: dict[str, Any], streamed: dict[str, Any]) -> None:
    keys = ("id", "content", "stop_reason", "stop_sequence")
    assert {k: plain[k] for k in keys} == {k: streamed[k] for k in keys}
    assert plain["usage"]["output_tokens"] == streamed["usage"]["output_tokens"]


def valid(schema: Any, value: Any) -> bool:
    cls = jsonschema.validators.validator_for(schema)
    return bool(cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid(value))


# --- structured output ---------------------------------------------------------------------


@pytest.mark.parametrize("where", ["output_config", "output_format"])
def test_structured_output_is_schema_valid_json_streamed_or_not(
    server: ServerThread, where: str
) -> None:
    fmt = {"type": "json_schema", "schema": PERSON}
    extra = {where: {"format": fmt} if where == "output_config" else fmt}
    plain, streamed = both(server, messages=[{"role": "user", "content": "a person"}], **extra)
    same(plain, streamed)
    (block,) = plain["content"]
    assert block["type"] == "text" and plain["stop_reason"] == "end_turn"
    assert valid(PERSON, json.loads(block["text"]))
    assert plain["usage"]["output_tokens"] == TokenCounter().text(block["text"])
    request = {"output_config": {"format": fmt}}
    assert c.check_structured_output(request, plain) == []


def test_structured_output_profile_switch() -> None:
    body = {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "a person"}],
        "output_config": {"format": {"type": "json_schema", "schema": PERSON}},
    }
    ignore, reject = start(structured_output="ignore"), start(structured_output="reject")
    try:
        with client(ignore) as cl:
            prose = cl.messages.create(**body)
        assert prose.content[0].text.startswith("Mock reply to: a person")  # type: ignore[union-attr]
        with client(reject) as cl, pytest.raises(anthropic.BadRequestError) as info:
            cl.messages.create(**body)
        assert info.value.body["error"]["message"] == (
            "output_config.format: structured outputs are not supported on this model"
        )
        with client(reject) as cl:  # the models list says so
            assert cl.models.retrieve(MODEL).capabilities.structured_outputs.supported is False  # type: ignore[union-attr]
    finally:
        ignore.stop()
        reject.stop()


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        (
            {
                "type": "object",
                "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 1}},
                "required": ["n"],
            },
            "schema.properties.n: no value",
        ),
        (
            {"type": "object", "properties": {"n": {"$ref": "#/$defs/none"}}, "required": ["n"]},
            "schema.properties.n.$ref: no value",
        ),
        ({"type": "object", "properties": 5}, "schema.properties: not a valid JSON Schema"),
        ({"type": "object", "allOf": [{"type": "string"}]}, "nothing in common"),
    ],
)
def test_a_schema_no_value_satisfies_is_a_400_naming_the_path(
    server: ServerThread, schema: Any, words: str
) -> None:
    with client(server) as cl, pytest.raises(anthropic.BadRequestError) as info:
        cl.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "x"}],
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
    message = info.value.body["error"]["message"]
    assert message.startswith("output_config.format.json_schema.schema") and words in message


# --- tools --------------------------------------------------------------------------------


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}])
def test_a_forced_call_is_the_first_block(server: ServerThread, choice: dict[str, Any]) -> None:
    plain, streamed = both(
        server, messages=[{"role": "user", "content": "hello"}], tools=[WEATHER], tool_choice=choice
    )
    same(plain, streamed)
    assert [b["type"] for b in plain["content"]] == ["tool_use"] and plain[
        "stop_reason"
    ] == "tool_use"


def test_under_auto_a_short_text_precedes_the_calls(server: ServerThread) -> None:
    plain, _ = both(
        server, messages=[{"role": "user", "content": "use get_weather"}], tools=[WEATHER]
    )
    assert [b["type"] for b in plain["content"]] == ["text", "tool_use"]


def test_an_unsatisfiable_tool_is_a_400_when_forced_and_not_called_otherwise(
    server: ServerThread,
) -> None:
    with client(server) as cl:
        with pytest.raises(anthropic.BadRequestError) as info:
            cl.messages.create(
                model=MODEL,
                max_tokens=64,
                messages=[{"role": "user", "content": "x"}],
                tools=[WEATHER, NONE_FITS],  # type: ignore[list-item]
                tool_choice={"type": "tool", "name": "impossible"},
            )
        message = info.value.body["error"]["message"]
        assert message.startswith(
            "tools.1.custom.input_schema.properties.n: no input for tool 'impossible'"
        )
        named = cl.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "use impossible and get_weather"}],
            tools=[WEATHER, NONE_FITS],  # type: ignore[list-item]
        )
    assert [b.name for b in named.content if b.type == "tool_use"] == ["get_weather"]


# --- stop sequences and max_tokens ----------------------------------------------------------


def test_stop_sequences_only_where_the_text_has_them(server: ServerThread) -> None:
    ask = [{"role": "user", "content": "Repeat: one two three four"}]
    plain, streamed = both(server, messages=ask, stop_sequences=["four", " two"])
    same(plain, streamed)
    assert plain["stop_reason"] == "stop_sequence" and plain["stop_sequence"] == " two"
    assert plain["content"][0]["text"] == "Mock reply to: Repeat: one"
    absent, _ = both(server, messages=ask, stop_sequences=["zebra"])
    assert absent["stop_reason"] == "end_turn" and absent["stop_sequence"] is None


@pytest.mark.parametrize("budget", [1, 2, 3, 7, 12])
def test_max_tokens_cuts_at_a_token_boundary(server: ServerThread, budget: int) -> None:
    ask = [{"role": "user", "content": "Tell me about the sea, héllo wörld 中文 😀"}]
    full, _ = both(server, messages=ask)
    plain, streamed = both(server, messages=ask, max_tokens=budget)
    same(plain, streamed)
    assert plain["stop_reason"] == "max_tokens" and plain["usage"]["output_tokens"] == budget
    text = plain["content"][0]["text"] if plain["content"] else ""
    assert full["content"][0]["text"].startswith(text)
    assert 0 < TokenCounter().text(text) <= budget


# --- models ------------------------------------------------------------------------------------


def test_models_carry_the_sdk_model_info_fields(server: ServerThread) -> None:
    with client(server) as cl:
        info = cl.models.retrieve(MODEL)
        listed = list(cl.models.list())
    assert listed == [info]
    assert info.max_input_tokens == 65536 and info.max_tokens == 8192 and info.lifecycle == "active"
    caps = info.capabilities
    assert caps is not None and caps.structured_outputs.supported is True
    assert caps.image_input.supported is False and caps.thinking.supported is False
    assert caps.thinking.types.disabled.supported is True
    strict = replace(Settings(), port=0)
    assert strict.profile.thinking == "ignore" and caps.thinking.types.enabled.supported is True
    assert p.PATH_MODELS == "/v1/models"
