"""The served path: API requests skip the app's router (``app.front_handler``), bytes checked
before reuse their checks (``memo.CheckedBodies``), and none of that changes an answer."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

MODEL = "deepseek-v3-anthropic"
KEY = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}


def _call(
    server: ServerThread, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    url = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body else None)
    try:
        conn.request("POST" if data is not None else "GET", path, body=data, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _body(text: str, **extra: Any) -> bytes:
    doc = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": text}]}
    return json.dumps({**doc, **extra}).encode()


def _state(server: ServerThread) -> Any:
    assert server.state is not None
    return server.state


def test_same_bytes_same_answer_and_checked_once(server: ServerThread) -> None:
    raw = _body("hello there")
    first = _call(server, p.PATH_MESSAGES, raw, KEY)
    assert _state(server).checked.get(raw) is not None  # kept after passing its checks
    second = _call(server, p.PATH_MESSAGES, raw, KEY)
    assert first[0] == second[0] == 200
    assert first[2] == second[2]  # synth is deterministic per request: the same message
    assert first[1][p.H_REQUEST_ID] != second[1][p.H_REQUEST_ID]


def test_header_checks_still_run_for_bytes_checked_before(server: ServerThread) -> None:
    raw = _body("checked once")
    assert _call(server, p.PATH_MESSAGES, raw, KEY)[0] == 200
    status, _, data = _call(server, p.PATH_MESSAGES, raw, {"anthropic-version": "2023-06-01"})
    assert status == 401 and json.loads(data)["error"]["type"] == p.AUTHENTICATION
    status, _, data = _call(server, p.PATH_MESSAGES, raw, {"x-api-key": "k"})
    assert status == 400 and "anthropic-version" in json.loads(data)["error"]["message"]


def test_a_failing_body_is_not_kept_and_fails_the_same_way_again(server: ServerThread) -> None:
    raw = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}).encode()
    answers = [_call(server, p.PATH_MESSAGES, raw, KEY) for _ in range(2)]
    assert [a[0] for a in answers] == [400, 400]
    assert json.loads(answers[0][2])["error"] == json.loads(answers[1][2])["error"]
    assert _state(server).checked.get(raw) is None


def test_admin_and_expect_continue_go_through_the_app(server: ServerThread) -> None:
    status, _, data = _call(server, p.ADMIN_PREFIX + "/health")
    assert status == 200 and json.loads(data)["status"] == "ok"
    status, _, data = _call(
        server, p.PATH_MESSAGES, _body("expecting"), {**KEY, "Expect": "100-continue"}
    )
    assert status == 200 and json.loads(data)["type"] == "message"
    status, _, data = _call(server, "/v1/nothing-here", b"{}", KEY)
    assert status == 404 and json.loads(data)["error"]["type"] == p.NOT_FOUND


def test_in_flight_is_zero_after_replies_streams_and_errors(server: ServerThread) -> None:
    assert _call(server, p.PATH_MESSAGES, _body("a"), KEY)[0] == 200
    assert _call(server, p.PATH_MESSAGES, _body("b", stream=True), KEY)[0] == 200
    assert _call(server, p.PATH_MESSAGES, b"not json", KEY)[0] == 400
    state = _state(server)
    assert state.in_flight == 0 and state.served >= 3


def test_an_unexpected_error_is_a_500_in_the_envelope(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _state(server)

    async def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(state.source, "reply", broken)
    status, headers, data = _call(server, p.PATH_MESSAGES, _body("crash"), KEY)
    assert status == 500
    err = json.loads(data)
    assert err["type"] == "error" and err["error"]["type"] == p.API_ERROR
    assert headers[p.H_REQUEST_ID] and "boom" not in data.decode()
    assert state.in_flight == 0
    monkeypatch.undo()
    assert _call(server, p.PATH_MESSAGES, _body("after"), KEY)[0] == 200  # still serving


def test_the_served_handler_is_the_front_handler(server: ServerThread) -> None:
    runner = server._runner
    assert runner is not None and runner.server is not None
    handler = runner.server.request_handler
    assert handler.__qualname__.startswith("front_handler.")  # not the app's router


def test_shared_parsed_bodies_are_never_changed_by_the_pipeline(make_server: Any) -> None:
    """Bytes sent again share one parsed body: no step (checks, synth, prompt cache, matching,
    journal) may change it, or the next request with those bytes would see another body."""
    server = make_server(mode="auto")
    tool = {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "cache_control": {"type": "ephemeral"},
    }
    bodies = [
        _body("plain"),
        _body("streamed", stream=True),
        _body("weather in Paris?", tools=[tool], tool_choice={"type": "any"}),
        _body(
            "cached",
            system=[
                {"type": "text", "text": "Be brief. " * 300, "cache_control": {"type": "ephemeral"}}
            ],
            stop_sequences=["\n\nHuman:"],
            metadata={"user_id": "u-1"},
        ),
        _body("with results", temperature=0.5, top_k=5),
    ]
    for _ in range(3):
        for raw in bodies:
            assert _call(server, p.PATH_MESSAGES, raw, KEY)[0] == 200
    state = _state(server)
    for raw in bodies:
        kept = state.checked.get(raw)
        assert kept is not None and kept.body == json.loads(raw)
