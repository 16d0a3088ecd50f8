"""``CycleCollector``: garbage collection of a serving process, kept off the request path.

CPython's automatic collector stops the whole process while it scans the younger
generations, and with thousands of open streams those hold every live connection's
objects: measured with 5,000 paced streams, 30-100 ms pauses several times a second and
150 ms full collections, which made every event due in the meantime late (p99 lateness
over 100 ms; with the collector off, 18 ms).  Almost everything a request allocates is
freed by reference counting; only reference cycles need the collector.

So ``mockserver serve`` turns automatic collection off and collects cycles here instead,
when the server is quiet (no request in flight and none since the last look): the young
generation, every tenth time the middle one, every hundredth time everything, as CPython
would, only never in the middle of a reply.  Traffic that never goes quiet gets the same
step at most every ``lull_s`` seconds, at a moment with no request in flight (a JSON reply
is handled in one go, so under load such moments come often; one short pause per
``lull_s`` does not reach a p99).  And once the objects that survived since the last
collection pass ``max_growth``, one full collection bounds the memory cycles can hold.
What exists when serving starts (modules, profile, cassettes) is frozen first: no
collection scans it again.

Only the serving process does this (``mockserver serve``); a server in a thread of a test
process (the pytest plugin) leaves that process's collector alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable

#: seconds between two looks at the server (idle? grown too much?)
INTERVAL_S = 0.25
#: net new tracked objects since the last collection that make a collection due even
#: while requests are in flight.  The count includes what open requests hold (5,000 open
#: streams: ~250,000), so it is well above that; past it, a full collection (~250 ms then)
#: bounds what cycles can pile up under load that never pauses (~100-200 MB).
MAX_GROWTH = 1_000_000
#: fewer new objects than this are not worth a collection, even when idle
IDLE_MIN_GROWTH = 2_000
#: seconds between collections for a server that is never quiet for a whole look
LULL_S = 30.0


class CycleCollector:
    """Collects reference cycles when the server is quiet (see the module), or after
    ``max_growth`` new objects."""

    #: every this many idle collections, the middle generation too; every ``FULL_EVERY``, all
    MIDDLE_EVERY = 10
    FULL_EVERY = 100

    def __init__(
        self,
        busy: Callable[[], bool],
        served: Callable[[], int] = lambda: 0,
        *,
        interval: float = INTERVAL_S,
        max_growth: int = MAX_GROWTH,
        idle_min_growth: int = IDLE_MIN_GROWTH,
        lull_s: float = LULL_S,
    ) -> None:
        """``busy()``: a request is in flight now; ``served()``: requests started so far."""
        self.busy = busy
        self.served = served
        self.interval = interval
        self.max_growth = max_growth
        self.idle_min_growth = idle_min_growth
        self.lull_s = lull_s
        self._last_served = served()
        self._last_at = time.monotonic()
        #: collections made (idle ones and forced ones)
        self.collections = 0
        self.idle = 0
        self.forced = 0
        self._task: asyncio.Task[None] | None = None
        self._was_enabled = True

    def start(self) -> None:
        """Freeze what exists, switch automatic collection off, watch (in the running loop)."""
        self._was_enabled = gc.isenabled()
        gc.collect()  # (startup garbage is not frozen for good)
        gc.freeze()
        gc.disable()
        self._task = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        """Stop watching; automatic collection as it was before ``start``."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.tick()

    def tick(self) -> bool:
        """Collect now if it is due; True when it did."""
        grown = gc.get_count()[0]  # tracked objects allocated minus freed since the last one
        served, self._last_served = self._last_served, self.served()
        quiet = served == self._last_served  # nothing started since the last look
        now = time.monotonic()
        if grown >= self.max_growth:
            self.forced += 1
            generation = 2
        elif grown < self.idle_min_growth or self.busy():
            return False
        elif not quiet and now - self._last_at < self.lull_s:
            return False  # busy lately: wait for a quiet look, or for the lull
        else:
            self.idle += 1
            generation = (
                2
                if self.idle % self.FULL_EVERY == 0
                else 1
                if self.idle % self.MIDDLE_EVERY == 0
                else 0
            )
        gc.collect(generation)
        self._last_at = time.monotonic()
        self.collections += 1
        return True
