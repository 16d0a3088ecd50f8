"""What every client test shares: the five scenarios' inputs and the journal checks.

Each client runs the same scenarios against one synth-mode server on 127.0.0.1:

- ``plain``: one request, one text reply;
- ``stream``: the same with ``stream: true``;
- ``tools``: a prompt naming ``get_weather`` and ``get_time`` gets both called in one reply
  (parallel tool calls); the client sends both ``tool_result`` blocks back and gets text;
- ``context``: a prompt of ~315K characters (about 70K tokens) gets the real 400
  ``prompt is too long: N tokens > 65536 maximum``, which the client raises as its own error;
- ``retry``: the ``x-mockserver-fault: overloaded;times=1;retry_after_ms=1`` header makes the
  first attempt a 529; the client retries by itself and succeeds.

The checks read the server's journal, so they show what went over the wire, not only what
the client made of it.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pydantic
import pytest

from mockserver.server.journal import Exchange
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

MODEL = "deepseek-v3-anthropic"
API_KEY = "sk-test"
PLAIN_PROMPT = "Hello from the client suite"
STREAM_PROMPT = "Stream a short greeting please"
TOOLS_PROMPT = "Use get_weather and get_time for Paris"
TOOL_NAMES = ["get_weather", "get_time"]
#: ~315K characters, about 70K tokens: over the 65,536-token context window
BIG_PROMPT = "The quick brown fox jumps over the lazy dog. " * 7000
RETRY_PROMPT = "Retry after an overloaded answer"
#: first attempt 529, and a tiny retry-after so the client's backoff takes no time
FAULT_529 = "overloaded;times=1;retry_after_ms=1"
FAULT_HEADERS = {p.H_FAULT: FAULT_529}
#: the two tools as JSON Schema (clients that take raw tool definitions)
TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
    {
        "name": "get_time",
        "description": "Current time in a timezone",
        "input_schema": {
            "type": "object",
            "properties": {"tz": {"type": "string", "description": "IANA timezone"}},
            "required": ["tz"],
        },
    },
]


def tool_result_text(name: str, args: dict[str, Any]) -> str:
    """What our fake tools answer (the tests check these strings reach the server)."""
    return f"{name} result: " + ",".join(f"{k}={v}" for k, v in sorted(args.items()))


def require(module: str) -> Any:
    """Import a client library; in CI a missing one fails, elsewhere it skips with the fix."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(
        module, reason="install the clients extra: pip install -e '.[clients]'"
    )


def calls(server: ServerThread) -> list[Exchange]:
    """The ``POST /v1/messages`` exchanges, in arrival order."""
    assert server.state is not None
    return [ex for ex in server.state.journal.all() if ex.path == p.PATH_MESSAGES]


def reply_text(ex: Exchange) -> str:
    """Concatenated text blocks of the message the server answered."""
    assert isinstance(ex.response, dict), ex.response
    return "".join(b["text"] for b in ex.response["content"] if b["type"] == p.BLOCK_TEXT)


def check_plain(server: ServerThread, prompt: str, *, stream: bool) -> Exchange:
    """One request, answered 200 with the synthesized text for ``prompt``."""
    (ex,) = calls(server)
    assert ex.status == 200 and ex.stream is stream
    assert ex.response["stop_reason"] == p.STOP_END_TURN
    assert reply_text(ex).startswith(f"Mock reply to: {' '.join(prompt.split()[:8])}")
    return ex


def check_tool_round_trip(server: ServerThread) -> tuple[Exchange, Exchange]:
    """Two requests: the first answered with two parallel tool calls, the second carrying
    both ``tool_result`` blocks (ids matching) and answered with text that ends the turn."""
    first, second = calls(server)
    assert first.status == second.status == 200
    uses = [b for b in first.response["content"] if b["type"] == p.BLOCK_TOOL_USE]
    assert [u["name"] for u in uses] == TOOL_NAMES
    assert first.response["stop_reason"] == p.STOP_TOOL_USE
    assert {t["name"] for t in second.body["tools"]} >= set(TOOL_NAMES)
    sent = second.body["messages"]
    assert sent[-2]["role"] == p.ROLE_ASSISTANT
    echoed = [b for b in sent[-2]["content"] if b["type"] == p.BLOCK_TOOL_USE]
    assert [(b["id"], b["name"], b["input"]) for b in echoed] == [
        (u["id"], u["name"], u["input"]) for u in uses
    ]
    results = [b for b in _blocks(sent[-1]) if b.get("type") == p.BLOCK_TOOL_RESULT]
    assert sent[-1]["role"] == p.ROLE_USER
    assert sorted(r["tool_use_id"] for r in results) == sorted(u["id"] for u in uses)
    for use in uses:
        (result,) = [r for r in results if r["tool_use_id"] == use["id"]]
        assert tool_result_text(use["name"], use["input"]) in _text_of(result["content"])
    assert second.response["stop_reason"] == p.STOP_END_TURN
    assert reply_text(second).startswith("Thanks, I have the tool results.")
    return first, second


def check_context_400(server: ServerThread) -> Exchange:
    """One request (a 400 is not retried) answered with the context-window error."""
    (ex,) = calls(server)
    assert ex.status == 400
    error = ex.response["error"]
    assert error["type"] == p.INVALID_REQUEST
    assert error["message"].startswith("prompt is too long: ")
    assert error["message"].endswith(" tokens > 65536 maximum")
    return ex


def check_retried_529(server: ServerThread, *, retry_header: bool = True) -> Exchange:
    """Two attempts of the same request: 529, then 200. Clients built on the Stainless SDKs
    number their retries in ``x-stainless-retry-count``."""
    first, second = calls(server)
    assert (first.status, second.status) == (529, 200)
    assert first.response["error"]["type"] == p.OVERLOADED
    assert first.body == second.body
    if retry_header:
        assert first.headers.get(p.H_RETRY_COUNT) == "0"
        assert second.headers.get(p.H_RETRY_COUNT) == "1"
    return second


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))


# --- structured output -------------------------------------------------------------------

STRUCTURED_PROMPT = "Describe a fictional person as JSON"


class Person(pydantic.BaseModel):
    """The structured-output model (``PERSON_SCHEMA`` is the same, written out)."""

    name: str = pydantic.Field(min_length=1)
    age: int = pydantic.Field(ge=0, le=150)
    email: str
    tags: list[str]


#: the JSON Schema of ``Person``, for clients that take a schema
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["name", "age", "email", "tags"],
    "additionalProperties": False,
}


def check_structured(
    server: ServerThread, parsed: Any, *, key: str = "output_config", ex: Exchange | None = None
) -> Exchange:
    """The client sent its schema as ``output_config.format`` (or ``output_format``) and got
    one text block of JSON that validates against it (formats checked), which it parsed into
    ``parsed`` (a dict, or a model with ``model_dump``); ``ex``: that exchange, when the test
    made more than one."""
    import json

    import jsonschema

    if ex is None:
        (ex,) = calls(server)
    body = ex.body
    fmt = body["output_config"]["format"] if key == "output_config" else body["output_format"]
    assert fmt["type"] == "json_schema" and isinstance(fmt["schema"], dict)
    text_blocks = [b for b in ex.response["content"] if b["type"] == "text"]
    assert len(text_blocks) == 1 and ex.response["stop_reason"] == "end_turn"
    value = json.loads(text_blocks[0]["text"])
    cls = jsonschema.validators.validator_for(fmt["schema"])
    cls(fmt["schema"], format_checker=cls.FORMAT_CHECKER).validate(value)
    got = parsed.model_dump() if hasattr(parsed, "model_dump") else parsed
    assert got == value
    return ex
