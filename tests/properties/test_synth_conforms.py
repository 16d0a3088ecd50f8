"""Every synthesized reply, for any generated request, conforms to the protocol."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings

from mockserver.config import Settings
from mockserver.contract import conformance, strategies as ms
from mockserver.server.running import ServerThread
from mockserver.wire.sse import decode_all
from mockserver.wire.streaming import fold

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}


@pytest.fixture(scope="module")
def conn() -> Iterator[http.client.HTTPConnection]:
    thread = ServerThread(Settings(port=0, mode="synth")).start()
    host, port = thread.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    yield connection
    connection.close()
    thread.stop()


def post(conn: http.client.HTTPConnection, body: dict[str, Any]) -> tuple[int, bytes]:
    conn.request("POST", "/v1/messages", body=json.dumps(body), headers=HEADERS)
    resp = conn.getresponse()
    return resp.status, resp.read()


@settings(max_examples=150)
@given(body=ms.message_requests())
def test_synthesized_replies_conform(
    conn: http.client.HTTPConnection, body: dict[str, Any]
) -> None:
    status, payload = post(conn, body)
    if status != 200:
        # the strategy produces protocol-valid requests; the endpoint may still refuse some
        # (e.g. over the context window); the refusal must be a well-formed error
        assert 400 <= status < 500, payload
        assert conformance.check_error(json.loads(payload)) == []
        return
    if body.get("stream"):
        events, _ = decode_all(payload)
        assert conformance.check_stream(events) == []
        message = fold((e.name, e.json()) for e in events)
    else:
        message = json.loads(payload)
    assert conformance.check_message(message) == []
    tools = {t["name"]: t for t in body.get("tools") or []}
    for block in message["content"]:
        if block["type"] == "tool_use":
            assert block["name"] in tools
            jsonschema.validate(block["input"], tools[block["name"]]["input_schema"])
    assert (
        message["usage"]["output_tokens"] <= body["max_tokens"]
        or message["stop_reason"] != "max_tokens"
    )
