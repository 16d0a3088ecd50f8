"""Counters the request path keeps: replay sequence positions, ``times=N`` of faults, the
scripted-reply rules' ``times`` and ``replies`` positions, fault rules' hits.

``LocalCounters`` is one process's (a dict); ``SharedCounters`` counts in the shared store
(one round trip per ``incr``) and, while the store is down (``Breaker`` open), in the
process itself: requests keep being answered, with this process's own view.  ``later``
counts behind the requests (the next batch), for counts nothing waits on.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from .outbox import Outbox
from .seam import SharedState, StoreDown


class Counters(Protocol):
    async def incr(self, kind: str, key: str) -> int:
        """Add one; the new value (the first call gives 1)."""
        ...

    def later(self, kind: str, key: str, n: int = 1) -> None: ...
    async def counts(self, kind: str) -> dict[str, int]: ...
    async def clear(self, *kinds: str) -> None: ...


class LocalCounters:
    """One process's counters (thread-safe)."""

    def __init__(self) -> None:
        self._n: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, key: str, n: int = 1) -> int:
        with self._lock:
            of_kind = self._n.setdefault(kind, {})
            value = of_kind[key] = of_kind.get(key, 0) + n
            return value

    async def incr(self, kind: str, key: str) -> int:
        return self.add(kind, key)

    def later(self, kind: str, key: str, n: int = 1) -> None:
        self.add(kind, key, n)

    def get(self, kind: str, key: str) -> int:
        with self._lock:
            return self._n.get(kind, {}).get(key, 0)

    def snapshot(self, kind: str) -> dict[str, int]:
        with self._lock:
            return dict(self._n.get(kind, {}))

    async def counts(self, kind: str) -> dict[str, int]:
        return self.snapshot(kind)

    def drop(self, *kinds: str) -> None:
        with self._lock:
            for kind in kinds:
                self._n.pop(kind, None)

    async def clear(self, *kinds: str) -> None:
        self.drop(*kinds)


class Breaker:
    """Whether the shared store is usable: open (down) after a failure, with the reason,
    until a probe succeeds (``close``).  While open, the request path does not wait on it."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.since = 0.0
        #: times the store went down since start
        self.trips = 0

    @property
    def open(self) -> bool:
        return self.reason is not None

    def trip(self, exc: BaseException) -> None:
        if self.reason is None:
            self.since = time.time()
            self.trips += 1
        self.reason = str(exc) or type(exc).__name__

    def close(self) -> None:
        self.reason = None


class SharedCounters:
    """Counters in the shared store (see the module docstring)."""

    def __init__(self, store: SharedState, outbox: Outbox, breaker: Breaker) -> None:
        self.store = store
        self.outbox = outbox
        self.breaker = breaker
        #: what was counted here while the store was down
        self.local = LocalCounters()

    async def incr(self, kind: str, key: str) -> int:
        if not self.breaker.open:
            try:
                return await self.store.incr(kind, key)
            except StoreDown as exc:
                self.breaker.trip(exc)
        return self.local.add(kind, key)

    def later(self, kind: str, key: str, n: int = 1) -> None:
        self.outbox.count(kind, key, n)

    async def counts(self, kind: str) -> dict[str, int]:
        return await self.store.counts(kind)

    async def clear(self, *kinds: str) -> None:
        self.local.drop(*kinds)
        await self.store.clear_counts(*kinds)
