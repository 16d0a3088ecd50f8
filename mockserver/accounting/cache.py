"""Prompt-cache simulation, one per server, following the profile's ``cache`` policy.

Policies (PROTOCOL.md §7):

- ``automatic-prefix`` (the default profile, as DeepSeek does it): ``cache_control`` is
  accepted and ignored.  The longest prefix of the prompt that an earlier *completed* request
  also had, counted in whole ``unit_tokens`` (64) units, is ``cache_read_input_tokens``;
  ``cache_creation_input_tokens`` is 0 and ``input_tokens`` is the rest.
- ``breakpoints`` (Anthropic's rules): a ``cache_control`` on a tool, a system block or a
  message content block (or at the top level: the last block) marks a breakpoint; at most 4
  (more is a 400).  A breakpoint caches the prompt up to and including its block.  For each
  breakpoint the cache looks back up to 20 block boundaries for the longest prefix already
  cached: that is ``cache_read_input_tokens``.  Breakpoints past it whose prefix is at least
  ``min_cacheable_tokens`` long are written: ``cache_creation_input_tokens`` is the tokens
  from the read prefix to the last written breakpoint, split by the breakpoints' ``ttl``
  into ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``.
- ``none``: everything is ``input_tokens``.

In every policy ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` is
the ``count_tokens`` figure of the request: the cache works on the rendered prompt with the
profile's chat-template overheads laid in as placeholder tokens (:func:`layout`), whose
length is exactly ``TokenCounter.request(body)``.

Deterministic: :meth:`PromptCache.lookup` stores nothing; only :meth:`PromptCache.commit`,
called once the reply exists, stores the request's prefixes, so a prefix counts only for
requests after one that completed (parallel cold requests all miss, as on the real APIs).
Nothing expires while ``cache.ttl_seconds`` is null (the default).  With
``ttl_seconds: N`` an entry lives N seconds after its last write or hit, measured on the
injected ``clock``; in ``breakpoints`` mode that is the life of a ``5m`` entry and a ``1h``
entry lives 12·N (``ttl_seconds: 300`` gives Anthropic's real TTLs).  Entries are keyed by
model; the store keeps at most ``max_entries`` prefixes (least recently used go first).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..profile import CachePolicy
from ..wire import protocol as p
from ..wire.errors import ApiError
from .tokens import TokenCounter, prefix_digests, render_segments

MAX_BREAKPOINTS = 4
#: block boundaries a breakpoint looks back over for an earlier cached prefix
LOOKBACK_BLOCKS = 20
#: lifetime of a ``1h`` entry in units of a ``5m`` entry
LONG_TTL_FACTOR = 12
MAX_ENTRIES = 500_000
POLICIES = ("automatic-prefix", "breakpoints", "none")

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


# --- the store -------------------------------------------------------------------------------


class _Store:
    """``key -> (expires_at, lifetime)`` in least-recently-used order, bounded."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def alive(self, key: bytes, now: float) -> bool:
        entry = self._data.get(key)
        if entry is None:
            return False
        if entry[0] <= now:
            del self._data[key]
            return False
        return True

    def put(self, key: bytes, lifetime: float, now: float) -> None:
        self._data[key] = (now + lifetime, lifetime)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def touch(self, key: bytes, now: float) -> None:
        """A hit: the entry lives its lifetime again from now."""
        entry = self._data.get(key)
        if entry is not None:
            self.put(key, entry[1], now)

    def clear(self) -> int:
        n = len(self._data)
        self._data.clear()
        return n

    def __len__(self) -> int:
        return len(self._data)


# --- lookups ---------------------------------------------------------------------------------


@dataclass
class CacheLookup:
    """What one request reads from and writes to the cache; :meth:`commit` stores it."""

    total: int
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0
    #: report ``usage.cache_creation`` (the breakpoints policy)
    breakdown: bool = False
    cache: PromptCache | None = None
    writes: list[tuple[bytes, float]] = field(default_factory=list)
    hits: list[bytes] = field(default_factory=list)
    committed: bool = False

    @property
    def creation(self) -> int:
        return self.write_5m + self.write_1h

    @property
    def input_tokens(self) -> int:
        return self.total - self.read - self.creation

    def usage(self) -> dict[str, Any]:
        """The input side of ``usage`` (field order as the real API sends it)."""
        out: dict[str, Any] = {
            p.USAGE_INPUT: self.input_tokens,
            p.USAGE_CACHE_CREATION: self.creation,
            p.USAGE_CACHE_READ: self.read,
        }
        if self.breakdown:
            out[p.USAGE_CACHE_BREAKDOWN] = {
                p.USAGE_EPHEMERAL_5M: self.write_5m,
                p.USAGE_EPHEMERAL_1H: self.write_1h,
            }
        return out

    def commit(self) -> None:
        """Store the prefixes (once the reply exists); later lookups may read them."""
        if self.cache is not None and not self.committed:
            self.committed = True
            self.cache.commit(self)


class PromptCache:
    """The cache simulation of one server (thread-safe; see the module docstring)."""

    def __init__(
        self,
        policy: CachePolicy,
        counter: TokenCounter,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        if policy.policy not in POLICIES:
            raise ValueError(f"unknown cache policy {policy.policy!r}")
        self.policy = policy
        self.counter = counter
        self.clock = clock
        self._store = _Store(max_entries)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    def reset(self) -> int:
        """Forget every entry; returns how many there were."""
        with self._lock:
            return self._store.clear()

    def lifetime(self, ttl: str = p.CACHE_TTL_5M) -> float:
        base = self.policy.ttl_seconds
        if base is None:
            return math.inf
        return base * (LONG_TTL_FACTOR if ttl == p.CACHE_TTL_1H else 1)

    @staticmethod
    def _key(model: str, digest: bytes) -> bytes:
        return model.encode() + b"\0" + digest

    def lookup(self, body: Mapping[str, Any], model: str = "") -> CacheLookup:
        """What ``body`` reads and would write; stores nothing (see :meth:`commit`).

        Raises ``ApiError`` (400) for more than 4 ``cache_control`` markers or a bad ``ttl``
        under the breakpoints policy.
        """
        kind = self.policy.policy
        if kind == "breakpoints":
            check_markers(body)
            return self._breakpoints(layout(body, self.counter), model)
        if kind == "automatic-prefix":
            return self._prefix(body, model)
        return CacheLookup(total=self.counter.request(body))

    def _prefix(self, body: Mapping[str, Any], model: str) -> CacheLookup:
        lay = layout(body, self.counter, breakpoints=False)
        unit = max(1, self.policy.unit_tokens)
        keys = [self._key(model, d) for d in prefix_digests(lay.ids, unit)]
        with self._lock:
            now = self.clock()
            k = 0
            while k < len(keys) and self._store.alive(keys[k], now):
                k += 1
        life = self.lifetime()
        return CacheLookup(
            total=lay.total, read=k * unit, cache=self, writes=[(key, life) for key in keys]
        )

    def _breakpoints(self, lay: Layout, model: str) -> CacheLookup:
        out = CacheLookup(total=lay.total, breakdown=True, cache=self)
        if not lay.breakpoints:
            return out
        keys = [self._key(model, d) for d in boundary_digests(lay.ids, lay.ends)]
        read, hit = 0, -1
        with self._lock:
            now = self.clock()
            for bp in lay.breakpoints:
                for b in range(bp.block, max(-1, bp.block - LOOKBACK_BLOCKS - 1), -1):
                    if lay.ends[b] <= read:
                        break
                    if self._store.alive(keys[b], now):
                        read, hit = lay.ends[b], b
                        break
        out.read = read
        if hit >= 0:
            out.hits.append(keys[hit])
        covered = read
        for bp in sorted(lay.breakpoints, key=lambda bp: bp.block):
            end = lay.ends[bp.block]
            if end <= covered or end < self.policy.min_cacheable_tokens:
                continue
            if bp.ttl == p.CACHE_TTL_1H:
                out.write_1h += end - covered
            else:
                out.write_5m += end - covered
            out.writes.append((keys[bp.block], self.lifetime(bp.ttl)))
            covered = end
        return out

    def commit(self, lookup: CacheLookup) -> None:
        """Store what ``lookup`` writes and refresh what it read."""
        with self._lock:
            now = self.clock()
            for key in lookup.hits:
                self._store.touch(key, now)
            for key, life in lookup.writes:
                self._store.put(key, life, now)
