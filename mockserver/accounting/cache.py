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

``SharedPromptCache`` is the same simulation on the processes' shared store
(``--workers N``, ``--state redis://``): a lookup is one read of the store, a commit one
write, both awaited (``alookup`` / ``acommit``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..profile import CachePolicy
from ..shared.counters import Breaker
from ..shared.seam import SharedState, StoreDown
from ..wire import protocol as p
from .cache_layout import (
    MARK_REQUEST,
    Layout,
    boundary_digests,
    check_markers,
    count_markers,
    layout,
    max_breakpoints_message,
)
from .tokens import TokenCounter, prefix_digests

__all__ = [
    "MARK_REQUEST",
    "CacheLookup",
    "PromptCache",
    "SharedPromptCache",
    "count_markers",
    "layout",
    "max_breakpoints_message",
]

#: block boundaries a breakpoint looks back over for an earlier cached prefix
LOOKBACK_BLOCKS = 20
#: lifetime of a ``1h`` entry in units of a ``5m`` entry
LONG_TTL_FACTOR = 12
MAX_ENTRIES = 500_000
POLICIES = ("automatic-prefix", "breakpoints", "none")


# --- the store ----------------------------------------------------------------------------------


class _Store:
    """``key -> (expires_at, lifetime)`` in least-recently-used order, bounded."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def lifetime(self, key: bytes, now: float) -> float | None:
        """The entry's lifetime while it is alive, else ``None``."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._data[key]
            return None
        return entry[1]

    def put(self, key: bytes, lifetime: float, now: float) -> None:
        self._data[key] = (now + lifetime, lifetime)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

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
    #: the entries read, with their lifetimes (a hit lives its lifetime again from now)
    hits: list[tuple[bytes, float]] = field(default_factory=list)
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

    async def acommit(self) -> None:
        """``commit``, awaited (a shared cache writes its store)."""
        if self.cache is not None and not self.committed:
            self.committed = True
            await self.cache.acommit(self)


#: ``key index -> its lifetime while alive, else None``: how a lookup sees the store
Alive = Callable[[int], float | None]


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

    def keys(self, body: Mapping[str, Any], model: str) -> tuple[Layout | None, list[bytes]]:
        """The request's layout and the keys a lookup reads (none for the ``none`` policy);
        ``ApiError`` (400) for bad ``cache_control`` under the breakpoints policy."""
        kind = self.policy.policy
        if kind == "breakpoints":
            check_markers(body)
            lay = layout(body, self.counter)
            if not lay.breakpoints:
                return lay, []
            return lay, [self._key(model, d) for d in boundary_digests(lay.ids, lay.ends)]
        if kind == "automatic-prefix":
            lay = layout(body, self.counter, breakpoints=False)
            unit = max(1, self.policy.unit_tokens)
            return lay, [self._key(model, d) for d in prefix_digests(lay.ids, unit)]
        return None, []

    def lookup(self, body: Mapping[str, Any], model: str = "") -> CacheLookup:
        """What ``body`` reads and would write; stores nothing (see :meth:`commit`).

        Raises ``ApiError`` (400) for more than 4 ``cache_control`` markers or a bad ``ttl``
        under the breakpoints policy.
        """
        lay, keys = self.keys(body, model)
        if lay is None:
            return CacheLookup(total=self.counter.request(body))
        with self._lock:
            now = self.clock()
            return self.decide(lay, keys, lambda i: self._store.lifetime(keys[i], now))

    def decide(self, lay: Layout, keys: list[bytes], alive: Alive) -> CacheLookup:
        """The lookup of ``lay`` given which of its ``keys`` are alive."""
        if self.policy.policy == "breakpoints":
            return self._breakpoints(lay, keys, alive)
        return self._prefix(lay, keys, alive)

    def _prefix(self, lay: Layout, keys: list[bytes], alive: Alive) -> CacheLookup:
        k = 0
        while k < len(keys) and alive(k) is not None:
            k += 1
        life = self.lifetime()
        unit = max(1, self.policy.unit_tokens)
        return CacheLookup(
            total=lay.total, read=k * unit, cache=self, writes=[(key, life) for key in keys]
        )

    def _breakpoints(self, lay: Layout, keys: list[bytes], alive: Alive) -> CacheLookup:
        out = CacheLookup(total=lay.total, breakdown=True, cache=self)
        if not lay.breakpoints:
            return out
        read, hit, hit_life = 0, -1, 0.0
        for bp in lay.breakpoints:
            for b in range(bp.block, max(-1, bp.block - LOOKBACK_BLOCKS - 1), -1):
                if lay.ends[b] <= read:
                    break
                life = alive(b)
                if life is not None:
                    read, hit, hit_life = lay.ends[b], b, life
                    break
        out.read = read
        if hit >= 0:
            out.hits.append((keys[hit], hit_life))
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
            for key, life in (*lookup.hits, *lookup.writes):
                self._store.put(key, life, now)

    async def alookup(self, body: Mapping[str, Any], model: str = "") -> CacheLookup:
        return self.lookup(body, model)

    async def acommit(self, lookup: CacheLookup) -> None:
        self.commit(lookup)


class SharedPromptCache(PromptCache):
    """The simulation on the processes' shared store.  A store that is down (``breaker``
    open, or failing now) reads as an empty cache and takes no writes."""

    def __init__(
        self, policy: CachePolicy, counter: TokenCounter, store: SharedState, breaker: Breaker
    ) -> None:
        super().__init__(policy, counter)
        self.store = store
        self.breaker = breaker

    async def alookup(self, body: Mapping[str, Any], model: str = "") -> CacheLookup:
        lay, keys = self.keys(body, model)
        if lay is None:
            return CacheLookup(total=self.counter.request(body))
        lives: Sequence[float | None] = [None] * len(keys)
        if keys and not self.breaker.open:
            try:
                lives = await self.store.cache_get(keys)
            except StoreDown as exc:
                self.breaker.trip(exc)
        return self.decide(lay, keys, lives.__getitem__)

    async def acommit(self, lookup: CacheLookup) -> None:
        if self.breaker.open:
            return
        try:
            await self.store.cache_put([*lookup.hits, *lookup.writes])
        except StoreDown as exc:
            self.breaker.trip(exc)
