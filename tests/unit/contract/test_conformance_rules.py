"""Each stream rule with a minimal violating stream, and the edge cases real traffic shows
(input forms, robustness and every real-traffic sample: ``test_conformance_inputs.py``)."""

from __future__ import annotations

import pytest
from conformance_cases import (
    Events,
    end,
    ev,
    rules,
    start,
    text_block,
    tool_block,
    valid,
)

from mockserver.contract import conformance as c, violations as v
from mockserver.wire.streaming import fold


def test_the_base_stream_is_valid_and_folds_to_a_valid_message() -> None:
    events = valid()
    assert c.check_stream(events) == []
    message = fold(events)
    assert c.check_message(message) == []
    assert [b["input"] for b in message["content"][1:]] == [{"city": "Paris"}, {"city": "Rome"}]


# --- one minimal violating stream per rule --------------------------------------------------

VIOLATIONS: dict[str, tuple[Events, str, int]] = {
    "empty stream": ([], v.STREAM_EMPTY, 0),
    "first event not message_start": (valid()[1:], v.STREAM_START_FIRST, 0),
    "ping before message_start": ([ev("ping"), *valid()], v.STREAM_START_FIRST, 0),
    "two message_starts": ([start(), *valid()], v.STREAM_START_DUPLICATE, 1),
    "block index starts at 1": ([start(), *text_block(1, "x"), *end()], v.BLOCK_INDEX_ORDER, 1),
    "block index skips": (
        [start(), *text_block(0, "a"), *text_block(2, "b"), *end()],
        v.BLOCK_INDEX_ORDER,
        4,
    ),
    "block opened twice": (
        [start(), *text_block(0, "a"), *text_block(0, "b"), *end()],
        v.BLOCK_INDEX_ORDER,
        4,
    ),
    "next block before stop": (
        [start(), *text_block(0, "a")[:-1], *text_block(1, "b"), *end()],
        v.BLOCK_NOT_CLOSED,
        3,
    ),
    "block closed twice": (
        [start(), *text_block(0, "a"), ev("content_block_stop", index=0), *end()],
        v.BLOCK_NOT_OPEN,
        4,
    ),
    "delta for a closed block": (
        [
            start(),
            *text_block(0, "a"),
            ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "b"}),
            *end(),
        ],
        v.BLOCK_NOT_OPEN,
        4,
    ),
    "delta for another block": (
        [
            start(),
            *text_block(0, "a")[:2],
            ev("content_block_delta", index=1, delta={"type": "text_delta", "text": "b"}),
            ev("content_block_stop", index=0),
            *end(),
        ],
        v.BLOCK_NOT_OPEN,
        3,
    ),
    "text_delta in a tool_use block": (
        [
            start(),
            *tool_block(0, "{}")[:1],
            ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "x"}),
            ev("content_block_stop", index=0),
            *end("tool_use"),
        ],
        v.BLOCK_DELTA_TYPE,
        2,
    ),
    "input_json_delta in a text block": (
        [
            start(),
            *text_block(0)[:1],
            ev(
                "content_block_delta",
                index=0,
                delta={"type": "input_json_delta", "partial_json": "{}"},
            ),
            ev("content_block_stop", index=0),
            *end(),
        ],
        v.BLOCK_DELTA_TYPE,
        2,
    ),
    "tool input not JSON": (
        [start(), *tool_block(0, "", '{"city": '), *end("tool_use")],
        v.TOOL_INPUT_JSON,
        4,
    ),
    "tool input not an object": (
        [start(), *tool_block(0, "[1, 2]"), *end("tool_use")],
        v.TOOL_INPUT_JSON,
        3,
    ),
    "block left open at message_delta": (
        [start(), *text_block(0, "a")[:-1], *end()],
        v.BLOCK_NOT_CLOSED,
        3,
    ),
    "block after message_delta": (
        [start(), end()[0], *text_block(0, "late"), end()[1]],
        v.BLOCK_AFTER_MESSAGE_DELTA,
        2,
    ),
    "message_stop without message_delta": (
        [start(), *text_block(0, "a"), ev("message_stop")],
        v.MESSAGE_DELTA_MISSING,
        4,
    ),
    "output_tokens goes down": (
        [start(output_tokens=9), *text_block(0, "a"), *end(output_tokens=3)],
        v.USAGE_DECREASED,
        4,
    ),
    "output_tokens goes down between deltas": (
        [start(), *text_block(0, "a"), end(output_tokens=8)[0], *end(output_tokens=7)],
        v.USAGE_DECREASED,
        5,
    ),
    "stop_reason not in the enum": (
        [start(), *text_block(0, "a"), *end("stop")],
        v.SCHEMA_EVENT,
        4,
    ),
    "stop_reason never set": ([start(), *text_block(0, "a"), *end(None)], v.STOP_REASON_MISSING, 4),
    "tool_use without a tool_use block": (
        [start(), *text_block(0, "a"), *end("tool_use")],
        v.STOP_REASON_INCONSISTENT,
        4,
    ),
    "tool_use with only a server tool": (
        [
            start(),
            ev(
                "content_block_start",
                index=0,
                content_block={
                    "type": "server_tool_use",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "input": {},
                },
            ),
            ev("content_block_stop", index=0),
            *end("tool_use"),
        ],
        v.STOP_REASON_INCONSISTENT,
        3,
    ),
    "event after message_stop": ([*valid(), ev("ping")], v.STREAM_AFTER_STOP, len(valid())),
    "event after an error": (
        [
            start(),
            ev("error", error={"type": "overloaded_error", "message": "Overloaded"}),
            ev("message_stop"),
        ],
        v.STREAM_AFTER_ERROR,
        2,
    ),
    "stream cut without message_stop": (
        [start(), *text_block(0, "a"), end()[0]],
        v.STREAM_INCOMPLETE,
        4,
    ),
    "event name differs from data.type": (
        [start(), ("content_block_delta", {"type": "ping"}), *text_block(0, "a"), *end()],
        v.EVENT_NAME_MISMATCH,
        1,
    ),
    "event without a name": (
        [start(), (None, {"type": "ping"}), *text_block(0, "a"), *end()],
        v.EVENT_NAME_MISMATCH,
        1,
    ),  # type: ignore[list-item]
    "data not JSON": (
        [start(), ("ping", "{type: ping}"), *text_block(0, "a"), *end()],
        v.EVENT_NOT_JSON,
        1,
    ),  # type: ignore[list-item]
    "data NaN is not JSON": (
        [start(), ("ping", '{"type": "ping", "x": NaN}'), *end()],
        v.EVENT_NOT_JSON,
        1,
    ),  # type: ignore[list-item]
    "event payload breaks its schema": (
        [
            start(),
            ev("content_block_start", index=0, content_block={"type": "text"}),
            ev("content_block_stop", index=0),
            *end(),
        ],
        v.SCHEMA_EVENT,
        1,
    ),
    "message_start with content": (
        [
            (
                "message_start",
                {
                    **start()[1],
                    "message": {
                        **start()[1]["message"],
                        "content": [{"type": "text", "text": "x"}],
                    },
                },
            ),
            *end(),
        ],
        v.SCHEMA_EVENT,
        0,
    ),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_rule(name: str) -> None:
    events, rule, index = VIOLATIONS[name]
    found = c.check_stream(events)
    assert any(x.rule == rule and x.event == index for x in found), [str(x) for x in found]
    assert all(x.rule != v.INTERNAL for x in found)


def test_schema_violation_points_into_the_event() -> None:
    found = c.check_stream([start(), *text_block(0, "a"), *end("stop")])
    (bad,) = found
    assert (bad.rule, bad.event, bad.path) == (v.SCHEMA_EVENT, 4, "$.delta.stop_reason")
    assert str(bad).startswith("event 4 event.schema at $.delta.stop_reason: ")


def test_violations_come_out_in_event_order() -> None:
    events = [
        start(),
        ev("ping"),
        *text_block(1, "a")[:-1],
        end()[0],
        ev("message_stop"),
        ev("ping"),
    ]
    found = c.check_stream(events)
    assert [x.event for x in found] == sorted(x.event for x in found if x.event is not None)
    assert rules(found) == {v.BLOCK_INDEX_ORDER, v.BLOCK_NOT_CLOSED, v.STREAM_AFTER_STOP}


# --- what is accepted -------------------------------------------------------------------------

ACCEPTED: dict[str, Events] = {
    "pings anywhere after message_start": [
        start(),
        ev("ping"),
        ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        ev("ping"),
        ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "x"}),
        ev("ping"),
        ev("content_block_stop", index=0),
        ev("ping"),
        end()[0],
        ev("ping"),
        end()[1],
    ],
    "no content at all": [start(), *end()],
    "empty text block without deltas": [start(), *text_block(0), *end()],
    "one-character and empty deltas": [start(), *text_block(0, "", "a", "", "b"), *end()],
    "tool without arguments: only an empty fragment": [
        start(),
        *tool_block(0, ""),
        *end("tool_use"),
    ],
    "tool without any fragment": [start(), *tool_block(0), *end("tool_use")],
    "tool input split mid-key and mid-escape": [
        start(),
        *tool_block(0, '{"ci', 'ty": "\\u00', "e9\\ud83d", '\\ude00"}'),
        *end("tool_use"),
    ],
    "max_tokens leaves the last block open with broken JSON": [
        start(),
        *tool_block(0, "", '{"a": [1, ', close=False),
        *end("max_tokens"),
    ],
    "max_tokens with a closed broken tool input": [
        start(),
        *tool_block(0, '{"a"'),
        *end("max_tokens"),
    ],
    "error as the only event": [
        ev("error", error={"type": "overloaded_error", "message": "Overloaded"})
    ],
    "error mid-block": [
        start(),
        *text_block(0, "a")[:2],
        ev("error", error={"type": "api_error", "message": "x", "details": None}),
    ],
    "several message_deltas": [start(), *text_block(0, "a"), end(None, 2)[0], *end("end_turn", 2)],
    "no usage anywhere (docs example)": [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {k: v for k, v in start()[1]["message"].items() if k != "usage"},
            },
        ),
        *text_block(0, "a"),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}},
        ),
        ev("message_stop"),
    ],
    "unknown event, block and delta types": [
        start(),
        ev("some_future_event", anything=1),
        ev("content_block_start", index=0, content_block={"type": "compaction", "content": None}),
        ev(
            "content_block_delta", index=0, delta={"type": "compaction_delta", "content": "summary"}
        ),
        ev(
            "content_block_delta",
            index=0,
            delta={"type": "text_delta", "text": "known delta, unknown block"},
        ),
        ev("content_block_stop", index=0),
        ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
        ev("content_block_delta", index=1, delta={"type": "future_delta", "x": 1}),
        ev("content_block_stop", index=1),
        *end(),
    ],
    "thinking block, signature only in the delta": [
        start(),
        ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
        ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hmm"}),
        ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "sig"}),
        ev("content_block_stop", index=0),
        *end(),
    ],
    "redacted thinking and citations": [
        start(),
        ev(
            "content_block_start",
            index=0,
            content_block={"type": "redacted_thinking", "data": "opaque"},
        ),
        ev("content_block_stop", index=0),
        ev(
            "content_block_start",
            index=1,
            content_block={"citations": [], "type": "text", "text": ""},
        ),
        ev(
            "content_block_delta",
            index=1,
            delta={
                "type": "citations_delta",
                "citation": {"type": "web_search_result_location", "url": "u"},
            },
        ),
        ev("content_block_stop", index=1),
        *end(),
    ],
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted(name: str) -> None:
    assert c.check_stream(ACCEPTED[name]) == []


def test_a_cut_stream_is_a_valid_prefix_when_not_complete() -> None:
    events = valid()
    for cut in range(1, len(events)):
        assert c.check_stream(events[:cut], complete=False) == [], cut
    assert rules(c.check_stream(events[:5])) == {v.STREAM_INCOMPLETE}
    assert c.check_stream([], complete=False) == []
    assert rules(c.check_stream(events[1:5], complete=False)) == {v.STREAM_START_FIRST}
