"""Each stream rule with a minimal violating stream, the edge cases real traffic shows, and
every real-traffic sample.

Decisions on the real samples (see ../shared/traffic/MANIFEST.md):
- 023 (handwritten SDK fixture) reports output_tokens 1 in message_start and 0 in
  message_delta: cumulative output_tokens went down.  It is the one expected failure.
- 029 (docs fragment: a lone ``event: error``) is accepted: an error event may end a stream
  at any point, also as its very first event (MANIFEST observation 9; the SDK raises on it
  wherever it comes).  A ``ping`` or any other event first is still a violation.
- 022 (max_tokens inside tool input) is accepted: the last block may stay open and its input
  stay invalid JSON when the stream stops for max_tokens.
- 028 (docs thinking example without any usage) is accepted: usage is optional, and so is
  the thinking block's signature in content_block_start.
- 030 (error mid-stream, blocks left open, no message_delta/stop) is accepted.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mockserver import conformance as c, sse, violations as v
from mockserver.grammar import fast_valid
from mockserver.streaming import fold
from mockserver.validation import is_valid

Events = list[tuple[str, dict[str, Any]]]
REPO = Path(__file__).resolve().parents[2]
#: sample -> the rules it must break (every other sample must be clean)
EXPECTED_FAILURES = {"023-sdkpy-opus47-refusal-stop-details.sse": {v.USAGE_DECREASED}}


def _sample_names() -> list[str]:
    default = REPO.parent / "shared" / "traffic"
    manifest = Path(os.environ.get("MOCKSERVER_TRAFFIC", default)) / "manifest.json"
    if not manifest.is_file():
        return ["<no traffic corpus>"]
    return [s["file"] for s in json.loads(manifest.read_text())["samples"]]


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


# --- input forms and robustness --------------------------------------------------------------


def test_accepts_sse_events_pairs_with_text_and_bare_dicts() -> None:
    events = valid()
    as_sse = [sse.Event(name, sse.dumps(data)) for name, data in events]
    as_text = [(name, json.dumps(data)) for name, data in events]
    as_dicts = [data for _, data in events]
    for form in (as_sse, as_text, as_dicts, tuple(events), iter(events)):
        assert c.check_stream(form) == []


@pytest.mark.parametrize(
    "junk",
    [
        None,
        5,
        "event: ping",
        [None],
        [1, 2],
        [("a", "b", "c")],
        [(5, {})],
        [object()],
        [("ping", [1])],
        [("ping", {"type": None})],
        [{"type": "content_block_start", "index": True}],
    ],
    ids=repr,
)
def test_check_stream_never_raises(junk: Any) -> None:
    found = c.check_stream(junk)
    assert isinstance(found, list) and found
    assert all(isinstance(x, v.Violation) for x in found)


@pytest.mark.parametrize(
    "junk", [None, 5, "x", [], {"type": None}, {"content": 5}, {"a": float("nan")}], ids=repr
)
def test_body_checks_never_raise(junk: Any) -> None:
    for check in (
        c.check_request,
        c.check_message,
        c.check_error,
        c.check_models,
        c.check_count_tokens_request,
    ):
        found = check(junk)
        assert found and all(isinstance(x, v.Violation) for x in found)


def test_an_internal_failure_becomes_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("kaput")

    monkeypatch.setattr(c, "stream_violations", boom)
    (found,) = c.check_stream(valid())
    assert found.rule == v.INTERNAL and "kaput" in found.message


def test_check_message_stop_reason_consistency() -> None:
    message = fold(valid())
    assert c.check_message(message) == []
    message["content"] = message["content"][:1]
    (found,) = c.check_message(message)
    assert (found.rule, found.path) == (v.STOP_REASON_INCONSISTENT, "$.stop_reason")


def test_check_sse_bytes() -> None:
    data = b"".join(sse.encode(name, d) for name, d in valid())
    assert c.check_sse_bytes(data) == []
    assert c.check_sse_bytes(b": keep-alive\n\n" + data.replace(b"\n", b"\r\n")) == []
    assert c.check_sse_bytes(data.rstrip(b"\n")) == []  # the last event lacks its blank line
    found = c.check_sse_bytes(data.replace(b"Checking", b"Check\xffing"))
    assert v.SSE_INVALID_UTF8 in rules(found)
    headless = data.replace(b"event: ping\n", b"", 1)
    assert rules(c.check_sse_bytes(headless)) == {v.EVENT_NAME_MISMATCH}


def test_route_dispatch() -> None:
    message = fold(valid())
    assert c.check_request_for("/v1/messages?beta=true", {}) != []
    assert (
        c.check_request_for(
            "/anthropic/v1/messages/count_tokens",
            {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        )
        == []
    )
    assert c.check_request_for("/v1/models", None) == []
    assert c.check_response("/v1/messages", 200, body=message) == []
    assert c.check_response("/v1/messages", 200, events=valid()) == []
    assert c.check_response("/v1/messages", 200, events=valid()[:3], complete=False) == []
    assert (
        c.check_response(
            "/v1/messages", 529, body={"error": {"type": "overloaded_error", "message": "x"}}
        )
        == []
    )
    assert c.check_response("/v1/messages", 400, body=message) != []
    assert c.check_response("/v1/messages/count_tokens", 200, body={"input_tokens": 3}) == []
    assert c.check_response("/v1/models/deepseek", 200, body={"type": "model"}) != []
    assert c.check_response("/elsewhere", 200, body=None) == []


def test_fast_path_never_accepts_what_the_schema_rejects() -> None:
    samples: list[dict[str, Any]] = [data for _, data in valid()]
    for data in list(samples):
        for key in data:
            for wrong in (None, -1, 1.0, True, "x", {}, []):
                samples.append({**data, key: wrong})
        if isinstance(data.get("delta"), dict):
            for key in data["delta"]:
                for wrong in (None, 1, {}, "x"):
                    samples.append({**data, "delta": {**data["delta"], key: wrong}})
    accepted = [d for d in samples if fast_valid(d)]
    assert len(accepted) >= 15
    assert len(samples) - len(accepted) > 100
    for data in accepted:
        assert is_valid("stream_event", data), data


def test_check_stream_is_fast() -> None:
    """100 events (two blocks, 60 text deltas, pings): well under 5 ms (measured ~0.4 ms)."""
    body = [*text_block(0, *("tok" for _ in range(60))), *tool_block(1, "", '{"a"', ': "b"}')]
    pings = [ev("ping")] * (100 - 3 - len(body))
    events = [start(), *body, *pings, *end("tool_use")]
    assert len(events) == 100 and c.check_stream(events) == []
    best = min(_timed(events) for _ in range(7))
    assert best < 0.005, f"check_stream took {best * 1000:.2f} ms for 100 events"


def _timed(events: Events) -> float:
    began = time.perf_counter()
    c.check_stream(events)
    return time.perf_counter() - began


# --- real traffic -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _sample_names())
def test_real_traffic(name: str, traffic_dir: Path, traffic_manifest: list[dict[str, Any]]) -> None:
    sample = next(s for s in traffic_manifest if s["file"] == name)
    raw = (traffic_dir / name).read_bytes()
    kind = sample["kind"]
    if kind == "sse_stream":
        found = c.check_sse_bytes(raw)
    else:
        body = json.loads(raw)
        check = {"request": c.check_request, "response": c.check_message, "error": c.check_error}[
            kind
        ]
        found = check(body)
    assert rules(found) == EXPECTED_FAILURES.get(name, set()), [str(x) for x in found]
    if kind == "sse_stream" and not found:
        events, _ = sse.decode_all(raw)
        pairs = [(e.name, e.json()) for e in events]
        if pairs[-1][0] == "message_stop":  # a valid complete stream folds to a valid message
            assert c.check_message(fold(pairs)) == []


def test_expected_failures_exist(traffic_manifest: list[dict[str, Any]]) -> None:
    names = {s["file"] for s in traffic_manifest}
    assert set(EXPECTED_FAILURES) <= names


def test_fold_of_real_max_tokens_stream(traffic_dir: Path) -> None:
    events, _ = sse.decode_all(
        (traffic_dir / "022-sdkpy-sonnet37-max-tokens-truncated-tool-json.sse").read_bytes()
    )
    message = fold((e.name, e.json()) for e in events)
    assert message["stop_reason"] == "max_tokens"
    assert message["content"][1]["input"] == {}
    assert c.check_message(copy.deepcopy(message)) == []
