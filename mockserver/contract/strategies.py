"""Hypothesis strategies for the Messages protocol, for property tests of servers and clients.

Importing this module needs ``hypothesis`` (the ``test`` extra: ``pip install
mockserver[test]``); it is the only module of the package that imports it.

- :func:`message_requests` — valid ``POST /v1/messages`` bodies (tool loops included);
- :func:`messages` — valid complete messages (non-streaming replies);
- :func:`streamed_messages` — a message and an adversarial event sequence that folds into it;
- :func:`stream_events` — just the events: one-character deltas, empty text blocks, tool input
  split inside keys, strings and ``\\uXXXX`` escapes (also between the halves of a surrogate
  pair), pings anywhere after ``message_start``, parallel tool calls;
- :func:`chunked_streams` — the encoded bytes of such a stream cut at arbitrary points
  (inside lines, inside UTF-8 characters, between ``\\r`` and ``\\n``).

Every bound is a keyword argument.  Everything generated passes
:mod:`mockserver.conformance`.  Example::

    from hypothesis import given
    from mockserver import strategies as ms

    @given(ms.chunked_streams(max_blocks=3, tools=True))
    def test_my_client_parses_any_chunking(stream): ...
"""

from __future__ import annotations

import functools
import itertools
import json
from typing import Any, Final, NamedTuple

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mockserver.strategies needs hypothesis: pip install 'mockserver[test]'"
    ) from exc

from ..wire import protocol as p, sse

Json = dict[str, Any]
Events = list[tuple[str, Json]]

DEFAULT_MODEL: Final = "deepseek-v3-anthropic"
#: characters that break naive stream handling: quotes, escapes, newlines, multi-byte and
#: astral characters, combining marks, zero-width joiners, variation selectors
TRICKY_CHARS: Final = (
    '"',
    "\\",
    "\n",
    "\r",
    "\t",
    "\x00",
    "é",
    "中",
    "😀",
    "\u0301",
    "\u200d",
    "\ufe0f",
    "1\ufe0f\u20e3",
    "\u2028",
    "}",
    "{",
    ":",
    ",",
)
_STOP_NO_TOOL: Final = tuple(sorted(p.STOP_REASONS - {p.STOP_TOOL_USE, p.STOP_SEQUENCE}))
_ID_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


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


@functools.cache
def texts(*, min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Text of ``min_size``..``max_size`` code points mixing tricky characters with runs of
    any encodable code point (no lone surrogates)."""
    pieces = st.one_of(
        st.sampled_from(TRICKY_CHARS),
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=6),
    )
    return (
        st.lists(pieces, max_size=max(1, max_size // 3))
        .map(lambda parts: "".join(parts)[:max_size])
        .filter(lambda text: len(text) >= min_size)
    )


@functools.cache
def _ids(prefix: str) -> st.SearchStrategy[str]:
    return st.text(_ID_ALPHABET, min_size=1, max_size=24).map(lambda s: prefix + s)


@functools.cache
def tool_names() -> st.SearchStrategy[str]:
    """Names matching ``^[a-zA-Z0-9_-]{1,64}$``."""
    return st.text(_ID_ALPHABET + "_-", min_size=1, max_size=24)


@functools.cache
def json_values() -> st.SearchStrategy[Any]:
    """JSON values up to two levels deep (finite floats only) with tricky strings."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        texts(max_size=12),
    )
    keys = texts(max_size=8)
    containers = st.one_of(st.lists(leaves, max_size=3), st.dictionaries(keys, leaves, max_size=3))
    return st.one_of(leaves, containers)


@functools.cache
def tool_inputs() -> st.SearchStrategy[Json]:
    """Tool input objects (what input_json_delta fragments concatenate to)."""
    return st.dictionaries(texts(max_size=10), json_values(), max_size=4)


@st.composite
def _usage(draw: st.DrawFn, output_tokens: int) -> Json:
    usage: Json = {"input_tokens": draw(st.integers(0, 70_000))}
    if draw(st.booleans()):
        usage["cache_creation_input_tokens"] = 0
        usage["cache_read_input_tokens"] = draw(st.integers(0, 64_000))
    usage["output_tokens"] = output_tokens
    if draw(st.booleans()):
        usage["service_tier"] = "standard"
    return usage


@st.composite
def _block(draw: st.DrawFn, kind: str, max_text_len: int) -> Json:
    if kind == p.BLOCK_TOOL_USE:
        return {
            "type": p.BLOCK_TOOL_USE,
            "id": draw(_ids(p.TOOL_USE_ID_PREFIX)),
            "name": draw(tool_names()),
            "input": draw(tool_inputs()),
        }
    if kind == p.BLOCK_THINKING:
        return {
            "type": p.BLOCK_THINKING,
            "thinking": draw(texts(max_size=max_text_len)),
            "signature": draw(st.text(_ID_ALPHABET + "+/=", max_size=40)),
        }
    if kind == p.BLOCK_REDACTED_THINKING:
        return {"type": p.BLOCK_REDACTED_THINKING, "data": draw(st.text(_ID_ALPHABET, max_size=40))}
    return {"type": p.BLOCK_TEXT, "text": draw(texts(max_size=max_text_len))}


@st.composite
def _message(
    draw: st.DrawFn,
    max_blocks: int,
    max_text_len: int,
    tools: bool,
    thinking: bool,
    usage: bool | None,
    model: str,
) -> Json:
    kinds = [p.BLOCK_TEXT] + ([p.BLOCK_TOOL_USE] if tools else [])
    content_kinds: list[str] = []
    if thinking and max_blocks > 0:
        leading = draw(
            st.lists(st.sampled_from([p.BLOCK_THINKING, p.BLOCK_REDACTED_THINKING]), max_size=2)
        )
        content_kinds += leading[:max_blocks]
    content_kinds += draw(
        st.lists(st.sampled_from(kinds), max_size=max_blocks - len(content_kinds))
    )
    content = [draw(_block(kind, max_text_len)) for kind in content_kinds]
    has_tool = p.BLOCK_TOOL_USE in content_kinds
    if has_tool:
        stop_reason = draw(st.sampled_from([p.STOP_TOOL_USE, p.STOP_MAX_TOKENS]))
    else:
        stop_reason = draw(st.sampled_from((*_STOP_NO_TOOL, p.STOP_SEQUENCE)))
    stop_sequence = draw(texts(min_size=1, max_size=8)) if stop_reason == p.STOP_SEQUENCE else None
    message: Json = {
        "id": draw(_ids(p.MESSAGE_ID_PREFIX)),
        "type": "message",
        "role": p.ROLE_ASSISTANT,
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
    }
    if usage is True or (usage is None and draw(st.booleans())):
        message["usage"] = draw(_usage(draw(st.integers(0, 4096))))
    return message


def messages(
    *,
    max_blocks: int = 4,
    max_text_len: int = 40,
    tools: bool = True,
    thinking: bool = False,
    usage: bool | None = None,
    model: str = DEFAULT_MODEL,
) -> st.SearchStrategy[Json]:
    """Complete messages (what a non-streaming ``POST /v1/messages`` returns).

    ``max_blocks`` bounds the content blocks (0 allowed: an empty reply), ``max_text_len``
    the characters of each text; ``tools`` allows (parallel) ``tool_use`` blocks, then
    ``stop_reason`` is ``tool_use`` (or ``max_tokens``); ``thinking`` allows leading
    ``thinking``/``redacted_thinking`` blocks; ``usage`` True/False forces usage in or out
    (None: either)."""
    return _message(max_blocks, max_text_len, tools, thinking, usage, model)


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


# --- requests -------------------------------------------------------------------------------


@functools.cache
def _nonblank_texts(max_size: int) -> st.SearchStrategy[str]:
    return texts(min_size=1, max_size=max_size).filter(lambda s: s.strip() != "")


@st.composite
def _tool(draw: st.DrawFn, name: str) -> Json:
    props = draw(
        st.dictionaries(
            st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10),
            st.sampled_from([{"type": "string"}, {"type": "integer"}, {"type": "boolean"}]),
            max_size=3,
        )
    )
    tool: Json = {"name": name, "input_schema": {"type": "object", "properties": props}}
    if draw(st.booleans()):
        tool["description"] = draw(texts(max_size=30))
    if draw(st.integers(0, 3)) == 0:
        tool["type"] = "custom"
    if draw(st.integers(0, 3)) == 0:
        tool["cache_control"] = {"type": "ephemeral"}
    return tool


@st.composite
def _request(
    draw: st.DrawFn,
    max_turns: int,
    max_text_len: int,
    tools: bool,
    stream: bool | None,
    max_tokens: int,
    model: str,
) -> Json:
    names = draw(st.lists(tool_names(), min_size=1, max_size=3, unique=True)) if tools else []
    turns: list[Json] = []
    for _ in range(draw(st.integers(0, max(0, max_turns - 1)))):
        calls = draw(st.lists(st.sampled_from(names), max_size=2)) if names else []
        tool_uses = [
            {
                "type": p.BLOCK_TOOL_USE,
                "id": draw(_ids(p.TOOL_USE_ID_PREFIX)),
                "name": name,
                "input": draw(tool_inputs()),
            }
            for name in calls
        ]
        turns.append({"role": p.ROLE_USER, "content": draw(_user_content(max_text_len, turns))})
        reply: list[Json] = [{"type": p.BLOCK_TEXT, "text": draw(_nonblank_texts(max_text_len))}]
        turns.append({"role": p.ROLE_ASSISTANT, "content": reply + tool_uses})
    turns.append({"role": p.ROLE_USER, "content": draw(_user_content(max_text_len, turns))})
    body: Json = {"model": model, "max_tokens": draw(st.integers(1, max_tokens)), "messages": turns}
    if draw(st.booleans()):
        body["system"] = draw(
            st.one_of(
                _nonblank_texts(max_text_len),
                st.lists(
                    _nonblank_texts(max_text_len).map(lambda t: {"type": p.BLOCK_TEXT, "text": t}),
                    min_size=1,
                    max_size=2,
                ),
            )
        )
    if names:
        body["tools"] = [draw(_tool(name)) for name in names]
        choice = draw(st.sampled_from(["auto", "any", "tool", "none", None]))
        if choice == "tool":
            body["tool_choice"] = {"type": "tool", "name": draw(st.sampled_from(names))}
        elif choice is not None:
            body["tool_choice"] = {"type": choice}
    flag = draw(st.booleans()) if stream is None else stream
    if flag or draw(st.booleans()):
        body["stream"] = flag
    if draw(st.booleans()):
        body["temperature"] = draw(st.floats(0, 1))
    if draw(st.integers(0, 3)) == 0:
        body["stop_sequences"] = draw(st.lists(_nonblank_texts(6), min_size=1, max_size=2))
    if draw(st.integers(0, 3)) == 0:
        body["metadata"] = {"user_id": draw(st.text(_ID_ALPHABET, min_size=1, max_size=16))}
    return body


@st.composite
def _user_content(draw: st.DrawFn, max_text_len: int, turns: list[Json]) -> Any:
    """A user turn: tool results for the previous assistant turn's tool_use blocks first."""
    previous = turns[-1]["content"] if turns else []
    results = [
        {
            "type": p.BLOCK_TOOL_RESULT,
            "tool_use_id": block["id"],
            "content": draw(_nonblank_texts(max_text_len)),
        }
        for block in previous
        if isinstance(block, dict) and block.get("type") == p.BLOCK_TOOL_USE
    ]
    if not results and draw(st.booleans()):
        return draw(_nonblank_texts(max_text_len))
    texts_ = [{"type": p.BLOCK_TEXT, "text": draw(_nonblank_texts(max_text_len))}]
    return results + (texts_ if not results or draw(st.booleans()) else [])


def message_requests(
    *,
    max_turns: int = 3,
    max_text_len: int = 40,
    tools: bool = True,
    stream: bool | None = None,
    max_tokens: int = 8192,
    model: str = DEFAULT_MODEL,
) -> st.SearchStrategy[Json]:
    """Valid ``POST /v1/messages`` bodies that also pass the endpoint's semantic rules.

    ``max_turns`` bounds the user turns (a conversation alternates user/assistant and ends
    with a user turn); with ``tools`` the request declares 1-3 tools, assistant turns may
    call them (in parallel) and the next user turn answers every call with ``tool_result``
    blocks first; ``stream`` True/False fixes the flag (None: either); ``max_tokens`` is the
    upper bound of the drawn ``max_tokens``.  No images and no thinking (the default
    profile rejects images)."""
    return _request(max_turns, max_text_len, tools, stream, max_tokens, model)
