"""The prompt as the cache simulation sees it: the rendered prompt's token ids with the
profile's chat-template overheads laid in as placeholder ids (``layout``), the block
boundaries ``cache_control`` breakpoints mark, and the digests of prefixes (see ``cache``)."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..wire import protocol as p
from ..wire.errors import ApiError
from .tokens import TokenCounter, render_segments

MAX_BREAKPOINTS = 4

# Placeholder ids for the chat-template tokens the tokenizer cannot see (outside its vocabulary).
_MARK = 0xFFFFFF00
MARK_REQUEST = _MARK | 0x01
MARK_TOOL = _MARK | 0x02
MARK_SYSTEM = _MARK | 0x03
MARK_ROLE = {"user": _MARK | 0x10, "assistant": _MARK | 0x11, "system": _MARK | 0x12}
MARK_OTHER_ROLE = _MARK | 0x1F


def max_breakpoints_message(found: int) -> str:
    return (
        f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
    )


# --- the prompt as the cache sees it ---------------------------------------------------------


@dataclass(frozen=True)
class Breakpoint:
    block: int  #: index into ``Layout.ends``
    ttl: str  #: ``5m`` | ``1h``
    loc: str  #: where the ``cache_control`` sits, e.g. ``messages.2.content.0``


@dataclass
class Layout:
    """Token ids of the rendered prompt with the template overheads laid in, block by block."""

    ids: array[int] = field(default_factory=lambda: array("I"))
    #: token position just after each block (tools, system blocks, message blocks), in order
    ends: list[int] = field(default_factory=list)
    breakpoints: list[Breakpoint] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.ids)


def _ttl(cc: Any, loc: str) -> str | None:
    """The TTL of a ``cache_control`` value, None when there is none."""
    if not isinstance(cc, Mapping):
        return None
    ttl = cc.get("ttl", p.CACHE_TTL_5M)
    if ttl not in (p.CACHE_TTL_5M, p.CACHE_TTL_1H):
        raise ApiError.invalid(
            f"{loc}.{p.CACHE_CONTROL}.ttl: Input should be '{p.CACHE_TTL_5M}' or '{p.CACHE_TTL_1H}'"
        )
    return str(ttl)


def _block_ttl(block: Any, loc: str) -> str | None:
    """A content block's breakpoint TTL; a tool_result's inner blocks mark the tool_result."""
    if not isinstance(block, Mapping):
        return None
    ttl = _ttl(block.get(p.CACHE_CONTROL), loc)
    inner = block.get("content") if block.get("type") == p.BLOCK_TOOL_RESULT else None
    if isinstance(inner, list):
        for j, sub in enumerate(inner):
            sub_ttl = _block_ttl(sub, f"{loc}.content.{j}")
            ttl = ttl or sub_ttl
    return ttl


def _no_ttl(value: Any, loc: str) -> str | None:
    return None


def _has_marker(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get(p.CACHE_CONTROL), Mapping)


def count_markers(body: Mapping[str, Any]) -> int:
    """``cache_control`` markers of a request: on tools, system blocks, message content
    blocks (and the blocks inside a tool_result), and at the top level."""
    n = 1 if isinstance(body.get(p.CACHE_CONTROL), Mapping) else 0
    for key in ("tools", "system"):
        items = body.get(key)
        if isinstance(items, list):
            n += sum(1 for item in items if _has_marker(item))
    messages = body.get("messages")
    for msg in messages if isinstance(messages, list) else ():
        content = msg.get("content") if isinstance(msg, Mapping) else None
        for blk in content if isinstance(content, list) else ():
            if not isinstance(blk, Mapping):
                continue
            n += _has_marker(blk)
            inner = blk.get("content")
            if blk.get("type") == p.BLOCK_TOOL_RESULT and isinstance(inner, list):
                n += sum(1 for sub in inner if _has_marker(sub))
    return n


def check_markers(body: Mapping[str, Any]) -> None:
    """At most 4 ``cache_control`` markers (breakpoints policy), else a 400."""
    found = count_markers(body)
    if found > MAX_BREAKPOINTS:
        raise ApiError.invalid(max_breakpoints_message(found))


class _Builder:
    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.out = Layout()

    def pad(self, mark: int, n: int) -> None:
        if n > 0:
            self.out.ids.extend([mark] * n)

    def block(self, segments: list[str], ttl: str | None, loc: str) -> None:
        for seg in segments:
            self.out.ids.extend(self.counter.ids(seg))
        self.out.ends.append(len(self.out.ids))
        if ttl is not None:
            self.out.breakpoints.append(Breakpoint(len(self.out.ends) - 1, ttl, loc))


def _role_mark(msg: Any) -> int:
    role = msg.get("role") if isinstance(msg, Mapping) else None
    return MARK_ROLE.get(role, MARK_OTHER_ROLE) if isinstance(role, str) else MARK_OTHER_ROLE


def layout(body: Mapping[str, Any], counter: TokenCounter, *, breakpoints: bool = True) -> Layout:
    """The prompt (tools -> system -> messages) as the cache sees it; with ``breakpoints``
    false, ``cache_control`` is ignored (never read, never validated).

    Each tool, system block and message content block is rendered by
    :func:`~mockserver.tokens.render_segments` on its own, so the ids without the placeholders
    are ``counter.prompt_ids(body)`` and the total is ``counter.request(body)``.  A tool's
    placeholders come before the tool, the system's before the system prompt, a message's
    (one id per role) before its content, and the per-request ones last, as the generation
    prompt that follows every block: so a fully cached prompt still reports those few
    ``input_tokens``, as the real API does (e.g. ``input_tokens: 3`` beside the cache).
    """
    b = _Builder(counter)
    ttl = _ttl if breakpoints else _no_ttl
    block_ttl = _block_ttl if breakpoints else _no_ttl
    over = counter.overheads
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        b.pad(MARK_TOOL, over.per_tool)
        cc = tool.get(p.CACHE_CONTROL) if isinstance(tool, Mapping) else None
        b.block(render_segments({"tools": [tool]}), ttl(cc, f"tools.{i}"), f"tools.{i}")
    system = body.get("system")
    if any(render_segments({"system": system})):
        b.pad(MARK_SYSTEM, over.per_system)
    if isinstance(system, str):
        b.block(render_segments({"system": system}), None, "system")
    elif isinstance(system, list):
        for j, blk in enumerate(system):
            cc = blk.get(p.CACHE_CONTROL) if isinstance(blk, Mapping) else None
            b.block(render_segments({"system": [blk]}), ttl(cc, f"system.{j}"), f"system.{j}")
    messages = body.get("messages")
    for i, msg in enumerate(messages if isinstance(messages, list) else ()):
        b.pad(_role_mark(msg), over.per_message)
        content = msg.get("content") if isinstance(msg, Mapping) else None
        if isinstance(content, str):
            b.block(render_segments({"messages": [{"content": content}]}), None, f"messages.{i}")
        elif isinstance(content, list):
            for j, blk in enumerate(content):
                loc = f"messages.{i}.content.{j}"
                segs = render_segments({"messages": [{"content": [blk]}]})
                b.block(segs, block_ttl(blk, loc), loc)
    b.pad(MARK_REQUEST, over.per_request)
    top = ttl(body.get(p.CACHE_CONTROL), "")
    if top is not None and b.out.ends:  # automatic caching: a breakpoint on the last block
        b.out.breakpoints.append(Breakpoint(len(b.out.ends) - 1, top, p.CACHE_CONTROL))
    return b.out


def boundary_digests(ids: array[int], positions: list[int]) -> list[bytes]:
    """One digest of ``ids[:pos]`` per position (positions ascending)."""
    raw = memoryview(ids).cast("B")
    size = ids.itemsize
    h = hashlib.blake2b(digest_size=16)
    prev = 0
    out: list[bytes] = []
    for pos in positions:
        if pos > prev:
            h.update(raw[prev * size : pos * size])
            prev = pos
        out.append(h.copy().digest())
    return out
