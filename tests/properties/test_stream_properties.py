"""Properties of the contract kit: what the strategies generate conforms, the SSE codec
round-trips under any chunking, fold inverts unfold, and the stream checker flags every
mutation that breaks the grammar (judged by an independent reference: a regular expression
over the event sequence)."""

from __future__ import annotations

import copy
import itertools
import json
import re
from typing import Any

from hypothesis import given, strategies as st

from mockserver.contract import conformance as c, strategies as ms
from mockserver.contract.grammar import fast_valid
from mockserver.contract.validation import is_valid
from mockserver.wire import protocol as p, sse
from mockserver.wire.streaming import UnfoldPlan, fold, unfold

Events = list[tuple[Any, Any]]


# --- everything generated conforms ------------------------------------------------------------


@given(ms.message_requests())
def test_generated_requests_conform(body: dict[str, Any]) -> None:
    assert c.check_request(body) == []


@given(ms.streamed_messages(thinking=True))
def test_generated_streams_conform_and_fold_to_their_message(sm: ms.StreamedMessage) -> None:
    assert c.check_stream(sm.events) == []
    folded = fold(sm.events)
    assert folded == sm.message
    assert c.check_message(folded) == []  # the messages() strategy is checked here too


@given(ms.stream_events(max_blocks=1, max_text_len=4, tools=False, pings=False))
def test_bounds_are_honoured(events: Events) -> None:
    starts = [d for name, d in events if name == p.CONTENT_BLOCK_START]
    assert len(starts) <= 1
    assert all(d["content_block"]["type"] == p.BLOCK_TEXT for d in starts)
    assert all(name != p.PING for name, _ in events)
    text = "".join(
        d["delta"].get("text", "") for name, d in events if name == p.CONTENT_BLOCK_DELTA
    )
    assert len(text) <= 4


# --- the SSE codec ------------------------------------------------------------------------------


def _decode(chunks: list[bytes]) -> list[sse.Event]:
    decoder = sse.Decoder()
    out: list[sse.Event] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


@given(ms.chunked_streams())
def test_decoder_inverts_the_encoder_under_any_chunking(stream: ms.ChunkedStream) -> None:
    assert b"".join(stream.chunks) == stream.data
    decoded = _decode(stream.chunks)
    assert [(e.name, json.loads(e.data)) for e in decoded] == stream.events
    assert c.check_sse_bytes(stream.data) == []


@given(ms.stream_events(), st.data())
def test_canonical_encoding_round_trips_byte_for_byte(events: Events, data: st.DataObject) -> None:
    encoded = b"".join(sse.encode(name, payload) for name, payload in events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(encoded)), max_size=12)))
    points = [0, *cuts, len(encoded)]
    decoded = _decode([encoded[a:b] for a, b in itertools.pairwise(points)])
    assert [(e.name, e.json()) for e in decoded] == events
    assert b"".join(e.raw for e in decoded) == encoded
    assert b"".join(e.wire() for e in decoded) == encoded


# --- fold and unfold ------------------------------------------------------------------------------


@given(
    ms.messages(thinking=True),
    st.builds(
        UnfoldPlan,
        text_chunk=st.integers(0, 8),
        json_chunk=st.integers(0, 8),
        ping=st.booleans(),
        start_output_tokens=st.integers(0, 3),
    ),
)
def test_fold_inverts_unfold(message: dict[str, Any], plan: UnfoldPlan) -> None:
    events = unfold(copy.deepcopy(message), plan)
    assert fold(events) == message
    assert c.check_stream(events) == []


# --- mutations ---------------------------------------------------------------------------------------

_CODES = {
    p.MESSAGE_START: "S",
    p.PING: "P",
    p.MESSAGE_DELTA: "M",
    p.MESSAGE_STOP: "X",
    p.CONTENT_BLOCK_START: "B",
    p.CONTENT_BLOCK_DELTA: "D",
    p.CONTENT_BLOCK_STOP: "E",
}


def _token(name: Any, data: Any) -> str:
    kind = data.get("type") if isinstance(data, dict) else None
    if name != kind or kind not in _CODES:
        return "?"  # misnamed, error or unknown: never part of a complete valid stream
    code = _CODES[kind]
    return f"{code}{data.get('index')}" if code in "BDE" else code


def grammatical(events: Events) -> bool:
    """Reference grammar, written independently of the checker:

        S P* (B_k (P|D_k)* E_k P*){k = 0..n-1} (M P*)+ X

    where n is the number of content_block_start events and a stream whose (last)
    message_delta says max_tokens may leave its last block open."""
    tokens = [_token(n, d) for n, d in events]
    blocks = sum(t.startswith("B") for t in tokens)
    stops = [
        d["delta"].get("stop_reason")
        for n, d in events
        if n == p.MESSAGE_DELTA and isinstance(d.get("delta"), dict)
    ]
    cut_ok = bool(stops) and stops[-1] == p.STOP_MAX_TOKENS
    pattern = "S( P)*"
    for k in range(blocks):
        close = f" E{k}( P)*"
        pattern += f" B{k}( (P|D{k}))*" + (f"({close})?" if cut_ok and k == blocks - 1 else close)
    pattern += "( M( P)*)+ X"
    return re.fullmatch(pattern, " ".join(tokens)) is not None


def _non_pings(events: Events) -> Events:
    return [(n, d) for n, d in events if not (n == p.PING and d == {"type": p.PING})]


@st.composite
def mutations(draw: st.DrawFn, events: Events) -> tuple[str, Events]:
    kinds = ["drop", "duplicate", "swap", "move", "truncate", "retype", "rename", "reindex"]
    kind = draw(st.sampled_from(kinds))
    out = list(events)
    indexed = [i for i, (_, d) in enumerate(out) if "index" in d]
    if kind == "reindex" and not indexed:
        kind = "drop"
    structural = [i for i, (n, _) in enumerate(out) if n not in (p.CONTENT_BLOCK_DELTA, p.PING)]
    if kind == "reindex":
        i = draw(st.sampled_from(indexed))
    else:  # half of the time an event that shapes the grammar (not a delta or ping)
        i = draw(st.sampled_from(structural) | st.integers(0, len(out) - 1))
    name, data = out[i]
    if kind == "drop":
        del out[i]
    elif kind == "duplicate":
        out.insert(i + 1, (name, data))
    elif kind == "swap":
        j = i + 1 if i + 1 < len(out) else i - 1
        out[i], out[j] = out[j], out[i]
    elif kind == "move":
        out.insert(draw(st.integers(0, len(out) - 1)), out.pop(i))
    elif kind == "truncate":
        del out[i:]
    elif kind == "retype":
        new = draw(st.sampled_from(sorted(p.EVENT_NAMES - {name})))
        out[i] = (new, {**data, "type": new})
    elif kind == "rename":
        out[i] = (draw(st.sampled_from(sorted(p.EVENT_NAMES - {name}))), data)
    else:
        new_index = draw(st.integers(0, len(out)).filter(lambda k: k != data["index"]))
        out[i] = (name, {**data, "index": new_index})
    return kind, out


@given(ms.streamed_messages(max_blocks=3, max_text_len=6, thinking=True), st.data())
def test_checker_flags_every_mutation_that_breaks_the_grammar(
    sm: ms.StreamedMessage, data: st.DataObject
) -> None:
    assert grammatical(sm.events), "the reference grammar accepts every generated stream"
    kind, mutated = data.draw(mutations(sm.events))
    found = c.check_stream(mutated)
    if not grammatical(mutated):
        assert found, f"{kind} broke the grammar but nothing was flagged"
    elif _non_pings(mutated) == _non_pings(sm.events):
        assert found == [], f"{kind} only moved pings, yet: {[str(x) for x in found]}"


def test_reference_grammar_sanity() -> None:
    text = [
        (p.CONTENT_BLOCK_START, {"type": p.CONTENT_BLOCK_START, "index": 0, "content_block": {}}),
        (p.CONTENT_BLOCK_STOP, {"type": p.CONTENT_BLOCK_STOP, "index": 0}),
    ]
    head = [(p.MESSAGE_START, {"type": p.MESSAGE_START})]
    tail = [
        (p.MESSAGE_DELTA, {"type": p.MESSAGE_DELTA, "delta": {"stop_reason": "end_turn"}}),
        (p.MESSAGE_STOP, {"type": p.MESSAGE_STOP}),
    ]
    assert grammatical(head + text + tail)
    assert not grammatical(head + text[:1] + tail)
    assert not grammatical(text + tail)
    assert not grammatical(head + text)
    cut = [
        (p.MESSAGE_DELTA, {"type": p.MESSAGE_DELTA, "delta": {"stop_reason": "max_tokens"}}),
        tail[1],
    ]
    assert grammatical(head + text[:1] + cut)
    assert grammatical(head + tail)
    assert not grammatical(head + text + text + tail)


# --- robustness and the fast path ------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.lists(st.tuples(st.sampled_from([*sorted(p.EVENT_NAMES), None, "x"]), _JSON), max_size=6))
def test_checks_never_raise_on_arbitrary_json(events: Events) -> None:
    for found in (
        c.check_stream(events),
        c.check_request(events),
        c.check_message(dict(enumerate(events))),
        c.check_error(events[0][1] if events else None),
    ):
        assert all(x.rule != "checker.internal_error" for x in found)


@given(ms.stream_events(thinking=True), st.data())
def test_fast_path_agrees_with_the_schema(events: Events, data: st.DataObject) -> None:
    _, payload = data.draw(st.sampled_from(events))
    variant = copy.deepcopy(payload)
    if data.draw(st.booleans()):
        target = variant.get("delta") if isinstance(variant.get("delta"), dict) else variant
        key = data.draw(st.sampled_from(sorted(target)))
        target[key] = data.draw(_JSON)
    if fast_valid(variant):
        assert is_valid("stream_event", variant)
