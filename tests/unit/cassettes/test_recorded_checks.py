"""The recorder's checks of each recorded exchange (``cassettes.checks.contract_violations``):
a structured reply whose text the request's schema rejects is flagged, streamed or not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mockserver.cassettes import cassette as cas
from mockserver.cassettes.checks import contract_violations
from mockserver.wire import sse
from mockserver.wire.streaming import unfold

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
REQUEST = {
    "model": "deepseek-v3-anthropic",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "n please"}],
    "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
}


def recorded(text: str, stream: bool) -> cas.Interaction:
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "deepseek-v3-anthropic",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    request = cas.RecordedRequest("POST", "/v1/messages", {}, REQUEST)
    if stream:
        events = tuple(sse.Event(name, sse.dumps(data)) for name, data in unfold(message))
        response = cas.RecordedResponse(200, {}, events=events, at_ms=tuple(0.0 for _ in events))
    else:
        response = cas.RecordedResponse(200, {}, body=json.dumps(message).encode())
    return cas.Interaction(request, response)


@pytest.mark.parametrize("stream", [False, True])
def test_a_structured_reply_is_checked_against_the_requests_schema(stream: bool) -> None:
    assert contract_violations(recorded('{"n": 3}', stream)) == []
    found = contract_violations(recorded('{"n": "three"}', stream))
    assert [v.rule for v in found] == ["structured_output.schema"]
    assert (
        found[0].path.startswith("$.response")
        and "'three' is not of type 'integer'" in found[0].message
    )
