"""Hypothesis strategies for valid ``POST /v1/messages`` bodies (tool loops included)."""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import strategies as st

from ..wire import protocol as p
from .gen_values import DEFAULT_MODEL, ID_ALPHABET, Json, ids, texts, tool_inputs, tool_names


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
                "id": draw(ids(p.TOOL_USE_ID_PREFIX)),
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
        body["metadata"] = {"user_id": draw(st.text(ID_ALPHABET, min_size=1, max_size=16))}
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
