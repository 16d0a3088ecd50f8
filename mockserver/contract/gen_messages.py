"""Hypothesis strategies for complete messages (what a non-streaming reply holds)."""

from __future__ import annotations

from hypothesis import strategies as st

from ..wire import protocol as p
from .gen_values import (
    DEFAULT_MODEL,
    ID_ALPHABET,
    STOP_NO_TOOL,
    Json,
    ids,
    texts,
    tool_inputs,
    tool_names,
)


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
            "id": draw(ids(p.TOOL_USE_ID_PREFIX)),
            "name": draw(tool_names()),
            "input": draw(tool_inputs()),
        }
    if kind == p.BLOCK_THINKING:
        return {
            "type": p.BLOCK_THINKING,
            "thinking": draw(texts(max_size=max_text_len)),
            "signature": draw(st.text(ID_ALPHABET + "+/=", max_size=40)),
        }
    if kind == p.BLOCK_REDACTED_THINKING:
        return {"type": p.BLOCK_REDACTED_THINKING, "data": draw(st.text(ID_ALPHABET, max_size=40))}
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
        stop_reason = draw(st.sampled_from((*STOP_NO_TOOL, p.STOP_SEQUENCE)))
    stop_sequence = draw(texts(min_size=1, max_size=8)) if stop_reason == p.STOP_SEQUENCE else None
    message: Json = {
        "id": draw(ids(p.MESSAGE_ID_PREFIX)),
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
