"""Hypothesis strategies for streams: adversarial event sequences that fold into a message,
and their bytes cut at arbitrary points."""

from __future__ import annotations

import itertools
import json
from typing import Any, NamedTuple

from hypothesis import strategies as st

from ..wire import protocol as p, sse
from .gen_messages import messages
from .gen_values import DEFAULT_MODEL, Json

Events = list[tuple[str, Json]]


class StreamedMessage(NamedTuple):
    """A message and the event sequence that folds into it (``streaming.fold(events) ==
    message``)."""

    message: Json
    events: Events


class ChunkedStream(NamedTuple):
    """A stream's events, their encoded bytes ``data``, and ``chunks`` with
    ``b"".join(chunks) == data``."""

    events: Events
    data: bytes
    chunks: list[bytes]


@st.composite
def _split(draw: st.DrawFn, text: str, max_pieces: int) -> list[str]:
    """``text`` cut at arbitrary code-point positions (sometimes into single characters)."""
    if not text:
        return []
    if draw(st.integers(0, 4)) == 0:
        return list(text)
    cuts = draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=max_pieces, unique=True))
    points = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(points)]


def _event(name: str, **fields: Any) -> tuple[str, Json]:
    return name, {"type": name, **fields}


@st.composite
def _block_events(draw: st.DrawFn, index: int, block: Json) -> Events:
    kind = block["type"]
    delta_events: list[Json] = []
    if kind == p.BLOCK_TEXT:
        start: Json = {"type": kind, "text": ""}
        pieces = _split(block["text"], 12)
        delta_events = [{"type": p.DELTA_TEXT, "text": t} for t in draw(pieces)]
        if not block["text"] and draw(st.booleans()):
            delta_events = [{"type": p.DELTA_TEXT, "text": ""}]
    elif kind == p.BLOCK_TOOL_USE:
        start = {"type": kind, "id": block["id"], "name": block["name"], "input": {}}
        spaced = draw(st.booleans())
        text = json.dumps(
            block["input"],
            ensure_ascii=draw(st.booleans()),
            separators=(", ", ": ") if spaced else (",", ":"),
        )
        fragments = draw(_split(text, 12))
        if draw(st.integers(0, 3)) > 0:  # real traffic always starts with an empty fragment
            fragments = ["", *fragments]
        delta_events = [{"type": p.DELTA_INPUT_JSON, "partial_json": f} for f in fragments]
    elif kind == p.BLOCK_THINKING:
        start = {"type": kind, "thinking": "", "signature": ""}
        delta_events = [
            {"type": p.DELTA_THINKING, "thinking": t} for t in draw(_split(block["thinking"], 8))
        ]
        delta_events.append({"type": p.DELTA_SIGNATURE, "signature": block["signature"]})
    else:
        start = dict(block)
    events = [_event(p.CONTENT_BLOCK_START, index=index, content_block=start)]
    events += [_event(p.CONTENT_BLOCK_DELTA, index=index, delta=d) for d in delta_events]
    events.append(_event(p.CONTENT_BLOCK_STOP, index=index))
    return events


@st.composite
def _streamed(draw: st.DrawFn, message: Json, pings: bool, truncate: bool) -> StreamedMessage:
    expected = json.loads(json.dumps(message))
    head = {
        k: v for k, v in message.items() if k not in ("content", "stop_reason", "stop_sequence")
    }
    head.update(content=[], stop_reason=None, stop_sequence=None)
    usage = message.get("usage")
    if usage is not None:
        head["usage"] = {**usage, "output_tokens": draw(st.integers(0, usage["output_tokens"]))}
    events: Events = [_event(p.MESSAGE_START, message=head)]
    content = message["content"]
    for index, block in enumerate(content):
        events += draw(_block_events(index, block))
    if truncate and content and message["stop_reason"] == p.STOP_MAX_TOKENS and draw(st.booleans()):
        events.pop()  # the last block is left open: a max_tokens stop inside it
        last = content[-1]
        if last["type"] == p.BLOCK_TOOL_USE:
            start = max(i for i, (name, _) in enumerate(events) if name == p.CONTENT_BLOCK_START)
            keep = (
                draw(st.integers(start + 1, len(events) - 1))
                if len(events) > start + 1
                else start + 1
            )
            del events[keep:]  # incomplete tool input: it never parses, fold leaves input {}
            expected["content"][-1]["input"] = {}
    delta: Json = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    final: Json = {"delta": delta}
    if usage is not None:
        final["usage"] = {"output_tokens": usage["output_tokens"]}
        if draw(st.booleans()):  # newer streams repeat the input-side counters
            final["usage"] = {k: v for k, v in usage.items() if k != "service_tier"}
    events.append(_event(p.MESSAGE_DELTA, **final))
    if pings:
        for _ in range(draw(st.integers(0, 3))):
            events.insert(draw(st.integers(1, len(events))), _event(p.PING))
    events.append(_event(p.MESSAGE_STOP))
    return StreamedMessage(expected, events)


def streamed_messages(
    *,
    max_blocks: int = 4,
    max_text_len: int = 40,
    tools: bool = True,
    thinking: bool = False,
    usage: bool | None = None,
    pings: bool = True,
    truncate: bool = True,
    model: str = DEFAULT_MODEL,
) -> st.SearchStrategy[StreamedMessage]:
    """A message (as :func:`messages`, same bounds) and an adversarial stream of it.

    ``pings`` inserts up to three pings anywhere after ``message_start``; ``truncate`` lets a
    ``max_tokens`` stream leave its last block open with incomplete tool input (then the
    message holds what a client folds: that tool's input is ``{}``)."""
    base = messages(
        max_blocks=max_blocks,
        max_text_len=max_text_len,
        tools=tools,
        thinking=thinking,
        usage=usage,
        model=model,
    )
    return base.flatmap(lambda m: _streamed(m, pings, truncate))


def stream_events(**bounds: Any) -> st.SearchStrategy[Events]:
    """Valid, adversarial ``(event name, data)`` sequences; keyword bounds as
    :func:`streamed_messages`."""
    return streamed_messages(**bounds).map(lambda sm: sm.events)


@st.composite
def _encode(draw: st.DrawFn, events: Events, padding: bool, keepalive: bool) -> bytes:
    out = bytearray()
    for index, (name, data) in enumerate(events):
        if keepalive and draw(st.integers(0, 9)) == 0:
            out += sse.comment("keep-alive")
        text = sse.dumps(data)
        if padding and name != p.PING:
            text = text[:-1] + " " * draw(st.integers(0, 15)) + text[-1:]
        out += sse.encode_raw(name, text)
        if index == 0 and keepalive and draw(st.booleans()):
            out += b"\n"  # a stray blank line between events
    return bytes(out)


def chunked_streams(
    *,
    max_chunks: int = 16,
    padding: bool = True,
    keepalive: bool = True,
    **bounds: Any,
) -> st.SearchStrategy[ChunkedStream]:
    """The bytes of a :func:`stream_events` stream cut into at most ``max_chunks`` + 1 pieces
    at arbitrary byte offsets (or into single bytes).  ``padding`` adds the spaces real
    traffic puts before a data line's closing brace; ``keepalive`` adds ``: keep-alive``
    comments and stray blank lines.  Other keywords bound the stream (see
    :func:`streamed_messages`)."""

    @st.composite
    def build(draw: st.DrawFn) -> ChunkedStream:
        events = draw(stream_events(**bounds))
        data = draw(_encode(events, padding, keepalive))
        if draw(st.integers(0, 9)) == 0:
            return ChunkedStream(events, data, [data[i : i + 1] for i in range(len(data))])
        cuts = draw(st.lists(st.integers(0, len(data)), max_size=max_chunks))
        points = [0, *sorted(cuts), len(data)]
        return ChunkedStream(events, data, [data[a:b] for a, b in itertools.pairwise(points)])

    return build()
