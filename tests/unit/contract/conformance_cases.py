"""Helpers of the stream-rule tests (``test_conformance_*.py``): minimal streams built event
by event, and the real-traffic sample names."""

from __future__ import annotations

from typing import Any

from mockserver.contract import violations as v

Events = list[tuple[str, dict[str, Any]]]
#: sample -> the rules it must break (every other sample must be clean)
EXPECTED_FAILURES = {"023-sdkpy-opus47-refusal-stop-details.sse": {v.USAGE_DECREASED}}


def ev(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def start(output_tokens: int = 1, **usage: Any) -> tuple[str, dict[str, Any]]:
    message = {
        "id": "msg_01abc",
        "type": "message",
        "role": "assistant",
        "model": "deepseek-v3-anthropic",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": output_tokens, **usage},
    }
    return ev("message_start", message=message)


def text_block(index: int, *pieces: str) -> Events:
    return [
        ev("content_block_start", index=index, content_block={"type": "text", "text": ""}),
        *[
            ev("content_block_delta", index=index, delta={"type": "text_delta", "text": t})
            for t in pieces
        ],
        ev("content_block_stop", index=index),
    ]


def tool_block(index: int, *fragments: str, close: bool = True) -> Events:
    block = {"type": "tool_use", "id": f"toolu_0{index}", "name": "get_weather", "input": {}}
    events = [ev("content_block_start", index=index, content_block=block)]
    events += [
        ev(
            "content_block_delta",
            index=index,
            delta={"type": "input_json_delta", "partial_json": f},
        )
        for f in fragments
    ]
    if close:
        events.append(ev("content_block_stop", index=index))
    return events


def end(stop_reason: Any = "end_turn", output_tokens: int = 5) -> Events:
    delta = ev(
        "message_delta",
        delta={"stop_reason": stop_reason, "stop_sequence": None},
        usage={"output_tokens": output_tokens},
    )
    return [delta, ev("message_stop")]


def valid() -> Events:
    """message_start, ping, text, two parallel tool calls, message_delta, message_stop."""
    return [
        start(),
        ev("ping"),
        *text_block(0, "Checking", " both."),
        *tool_block(1, "", '{"city": "Pa', 'ris"}'),
        ev("ping"),
        *tool_block(2, "", '{"city": "Rome"}'),
        *end("tool_use", 40),
    ]


def rules(found: list[v.Violation]) -> set[str]:
    return {x.rule for x in found}
