"""The official ``anthropic`` SDK against a live server: it cannot tell the mock from the real one."""

from __future__ import annotations

import asyncio
import http.client
import json
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import jsonschema
import pytest
import yaml

from mockserver.accounting.tokens import TokenCounter
from mockserver.profile import load_profile
from mockserver.server.running import ServerThread

MODEL = "deepseek-v3-anthropic"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 2},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
}
TIME = {
    "name": "get_time",
    "description": "Current time in a timezone",
    "input_schema": {
        "type": "object",
        "properties": {"tz": {"type": "string"}, "precise": {"type": "boolean"}},
        "required": ["tz"],
    },
}


def client(server: ServerThread, key: str = "sk-test") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key=key, max_retries=0)


def raw(server: ServerThread, method: str, path: str, body: Any = None, **headers: str) -> Any:
    parts = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), payload


def test_create_text_reply(server: ServerThread) -> None:
    msg = client(server).messages.create(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "Hello there"}]
    )
    assert msg.id.startswith("msg_")
    assert msg.type == "message" and msg.role == "assistant" and msg.model == MODEL
    assert msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text" and "Hello there" in msg.content[0].text
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert msg._request_id and msg._request_id.startswith("req_")


def test_replies_are_deterministic_and_seeded(make_server: Any) -> None:
    a, b, c = make_server(), make_server(), make_server(seed=7)
    req = {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": "Same?"}]}
    ma, mb, mc = (client(s).messages.create(**req) for s in (a, b, c))  # type: ignore[arg-type]
    assert ma.to_dict() == mb.to_dict()
    assert ma.to_dict() != mc.to_dict()


def test_async_client_and_count_tokens_agree(server: ServerThread) -> None:
    async def go() -> tuple[Any, Any]:
        async with anthropic.AsyncAnthropic(
            base_url=server.base_url, api_key="k", max_retries=0
        ) as ac:
            kwargs: dict[str, Any] = {
                "model": MODEL,
                "system": "You are terse.",
                "messages": [{"role": "user", "content": "Count me, please."}],
                "tools": [WEATHER],
            }
            count = await ac.messages.count_tokens(**kwargs)
            msg = await ac.messages.create(max_tokens=100, **kwargs)
            return count, msg

    count, msg = asyncio.run(go())
    u = msg.usage
    total = u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
    assert count.input_tokens == total > 10


def test_stream_folds_to_the_non_streaming_reply(server: ServerThread) -> None:
    c = client(server)
    req: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "Tell me about get_weather and get_time"}],
        "tools": [WEATHER, TIME],
    }
    plain = c.messages.create(**req)
    assert server.state is not None
    server.state.reset_cache()  # else the repeat reads the first request's prompt from the cache
    with c.messages.stream(**req) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == plain.content[0].text  # type: ignore[union-attr]
    assert final.to_dict() == plain.to_dict()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]


def test_forced_tool_input_validates(server: ServerThread) -> None:
    msg = client(server).messages.create(
        model=MODEL,
        max_tokens=300,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER, TIME],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1 and msg.stop_reason == "tool_use"
    assert uses[0].id.startswith("toolu_") and uses[0].name == "get_weather"
    jsonschema.validate(uses[0].input, WEATHER["input_schema"])


def test_parallel_tool_calls_and_round_trip(server: ServerThread) -> None:
    c = client(server)
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Use get_weather and get_time for Paris"}
    ]
    first = c.messages.create(
        model=MODEL,
        max_tokens=400,
        messages=messages,
        tools=[WEATHER, TIME],  # type: ignore[arg-type]
    )
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert len({u.id for u in uses}) == 2
    jsonschema.validate(uses[0].input, WEATHER["input_schema"])
    jsonschema.validate(uses[1].input, TIME["input_schema"])
    messages.append({"role": "assistant", "content": [b.to_dict() for b in first.content]})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": u.id, "content": "ok"} for u in uses
            ],
        }
    )
    second = c.messages.create(
        model=MODEL,
        max_tokens=400,
        messages=messages,
        tools=[WEATHER, TIME],  # type: ignore[arg-type]
    )
    assert second.stop_reason == "end_turn"
    assert all(b.type == "text" for b in second.content)


def test_any_with_one_call_when_parallel_disabled(server: ServerThread) -> None:
    msg = client(server).messages.create(
        model=MODEL,
        max_tokens=300,
        messages=[{"role": "user", "content": "get_weather and get_time please"}],
        tools=[WEATHER, TIME],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert [b.type for b in msg.content].count("tool_use") == 1


def test_stop_sequence_and_max_tokens_cut(server: ServerThread) -> None:
    c = client(server)
    msg = c.messages.create(
        model=MODEL,
        max_tokens=200,
        stop_sequences=["gamma", "STOP"],
        messages=[{"role": "user", "content": "Say: alpha STOP beta gamma"}],
    )
    # the text stops where it would contain a sequence, the earliest one
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == "STOP"
    assert msg.content[0].text == "Mock reply to: Say: alpha "  # type: ignore[union-attr]
    plain = c.messages.create(
        model=MODEL,
        max_tokens=200,
        stop_sequences=["STOP"],
        messages=[{"role": "user", "content": "talk"}],
    )
    assert plain.stop_reason == "end_turn" and plain.stop_sequence is None
    assert "STOP" not in plain.content[0].text  # type: ignore[union-attr]
    full = c.messages.create(
        model=MODEL, max_tokens=500, messages=[{"role": "user", "content": "a long answer"}]
    )
    cut = c.messages.create(
        model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "a long answer"}]
    )
    assert full.usage.output_tokens > 3
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3
    assert full.content[0].text.startswith(cut.content[0].text)  # type: ignore[union-attr]


def test_models_list_and_retrieve(server: ServerThread) -> None:
    c = client(server)
    models = list(c.models.list())
    assert [m.id for m in models] == [MODEL]
    assert c.models.retrieve(MODEL).display_name
    with pytest.raises(anthropic.NotFoundError):
        c.models.retrieve("gpt-4o")


@pytest.mark.parametrize(
    ("kwargs", "status", "needle"),
    [
        ({"max_tokens": 9000}, 400, "max_tokens: 9000 > 8192"),
        ({"extra_body": {"temperature": 5}}, 400, "temperature"),
        ({"model": "claude-nope"}, 404, "model: claude-nope"),
        (
            {"messages": [{"role": "robot", "content": "x"}]},
            400,
            "messages.0.role",
        ),
        (
            {"tools": [{"name": "bad name!", "input_schema": {"type": "object"}}]},
            400,
            "tools.0.custom.name",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "AA==",
                                },
                            }
                        ],
                    }
                ]
            },
            400,
            "image",
        ),
    ],
)
def test_bad_requests_raise_the_sdk_error(
    server: ServerThread, kwargs: dict[str, Any], status: int, needle: str
) -> None:
    req: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    req.update(kwargs)
    with pytest.raises(anthropic.APIStatusError) as info:
        client(server).messages.create(**req)
    err = info.value
    assert err.status_code == status
    assert type(err) is (anthropic.BadRequestError if status == 400 else anthropic.NotFoundError)
    assert needle in str(err.body)
    assert err.body["type"] == "error"  # type: ignore[index]
    assert err.request_id and err.request_id.startswith("req_")


def test_missing_fields_name_the_field(server: ServerThread) -> None:
    c = client(server)
    with pytest.raises(anthropic.BadRequestError) as info:
        c.post("/v1/messages", body={"model": MODEL, "messages": []}, cast_to=object)
    assert "max_tokens: Field required" in str(info.value.body)


def test_authentication(make_server: Any) -> None:
    srv = make_server(api_keys=("good-key",))
    with pytest.raises(anthropic.AuthenticationError):
        client(srv, "wrong").messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    ok = client(srv, "good-key").messages.create(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert ok.content
    status, headers, body = raw(
        srv, "POST", "/v1/messages", {"model": MODEL}, **{"anthropic-version": "2023-06-01"}
    )
    assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"
    assert headers["request-id"].startswith("req_")
    # Bearer form, as current SDKs send it
    status, _, _ = raw(
        srv,
        "POST",
        "/v1/messages",
        {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        **{"authorization": "Bearer good-key", "anthropic-version": "2026-10-21"},
    )
    assert status == 200


def test_anthropic_version_required(server: ServerThread) -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    status, _, payload = raw(server, "POST", "/v1/messages", body, **{"x-api-key": "k"})
    assert status == 400
    assert json.loads(payload)["error"]["message"] == "anthropic-version: header is required"


def test_unknown_routes_are_404(server: ServerThread) -> None:
    for method, path in [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/messages"),
        ("HEAD", "/"),
        ("DELETE", "/v1/models"),
    ]:
        status, headers, payload = raw(server, method, path, **{"x-api-key": "k"})
        assert status == 404, (method, path)
        assert "request-id" in headers
        if method != "HEAD":
            assert json.loads(payload)["error"]["type"] == "not_found_error"


def test_query_string_is_ignored_for_routing(server: ServerThread) -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    status, _, _ = raw(
        server,
        "POST",
        "/v1/messages?beta=true",
        body,
        **{"x-api-key": "k", "anthropic-version": "2023-06-01", "anthropic-beta": "a,b"},
    )
    assert status == 200


def test_body_not_json(server: ServerThread) -> None:
    status, _, payload = raw(
        server,
        "POST",
        "/v1/messages",
        b"{not json",
        **{"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert status == 400 and "not valid JSON" in json.loads(payload)["error"]["message"]


def test_oversize_body_refused_unread(make_server: Any, tmp_path: Path) -> None:
    srv = make_server()
    parts = urlsplit(srv.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("POST", "/v1/messages")
    conn.putheader("content-length", str(40 * 1024 * 1024))
    conn.putheader("x-api-key", "k")
    conn.putheader("anthropic-version", "2023-06-01")
    conn.endheaders()
    conn.send(b"{" * 1024)  # nothing more: the server must answer without waiting for the rest
    resp = conn.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read())["error"]["type"] == "request_too_large"
    conn.close()


def test_request_too_large_through_the_sdk(make_server: Any, tmp_path: Path) -> None:
    prof = tmp_path / "small.yaml"
    data = yaml.safe_load(
        (resources.files("mockserver.profiles") / "deepseek-v3-anthropic.yaml").read_text()
    )
    data["max_request_bytes"] = 4096
    prof.write_text(yaml.safe_dump(data))
    srv = make_server(profile=load_profile(str(prof)))
    with pytest.raises(anthropic.RequestTooLargeError):
        client(srv).messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x" * 10_000}]
        )


def test_context_limit_uses_real_token_count(server: ServerThread) -> None:
    words = " ".join(f"w{i % 977}x{i % 13}" for i in range(40_000))  # ~300K characters
    assert len(words) > 250_000
    body = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": words}]}
    n = TokenCounter(load_profile().overheads).request(body)
    assert n > 65536
    with pytest.raises(anthropic.BadRequestError) as info:
        client(server).messages.create(**body)  # type: ignore[arg-type]
    assert info.value.body["error"]["message"] == f"prompt is too long: {n} tokens > 65536 maximum"  # type: ignore[index]


def test_every_reply_carries_request_id_and_ratelimit_headers(server: ServerThread) -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    status, headers, _ = raw(
        server,
        "POST",
        "/v1/messages",
        body,
        **{"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert headers["request-id"].startswith("req_")
    assert "anthropic-ratelimit-requests-limit" in headers
    status, headers, payload = raw(
        server,
        "POST",
        "/v1/messages",
        {**body, "stream": True},
        **{"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert headers["content-type"] == "text/event-stream; charset=utf-8"
    assert payload.startswith(b"event: message_start\ndata: ")
