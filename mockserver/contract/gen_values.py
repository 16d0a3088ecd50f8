"""Hypothesis strategies for the leaves of the protocol: tricky text, ids, tool names, JSON
values and tool inputs (the bricks of ``gen_messages``, ``gen_streams``, ``gen_requests``)."""

from __future__ import annotations

import functools
from typing import Any, Final

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mockserver.strategies needs hypothesis: pip install 'mockserver[test]'"
    ) from exc

from ..wire import protocol as p

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
STOP_NO_TOOL: Final = tuple(sorted(p.STOP_REASONS - {p.STOP_TOOL_USE, p.STOP_SEQUENCE}))
ID_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


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
def ids(prefix: str) -> st.SearchStrategy[str]:
    return st.text(ID_ALPHABET, min_size=1, max_size=24).map(lambda s: prefix + s)


@functools.cache
def tool_names() -> st.SearchStrategy[str]:
    """Names matching ``^[a-zA-Z0-9_-]{1,64}$``."""
    return st.text(ID_ALPHABET + "_-", min_size=1, max_size=24)


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
