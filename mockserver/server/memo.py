"""``CheckedBodies``: request bodies already parsed and checked, by their exact bytes.

A request body's checks (``checks.body.check_messages_body``) depend on nothing but its bytes
and the profile, so the same bytes sent again (a replayed test suite, a retry, a load
test) reuse the parsed body and its ``CheckedRequest`` instead of parsing and checking
them again.  Only bodies that passed are kept (an error is cheap to find again and is
rare); the header checks (key, version) still run on every request.

Bounded by size: small bodies only, and a byte budget over all of them; past it the
oldest entries go first.  The parsed bodies are shared by the requests that sent the
same bytes, so nothing downstream may change a request body (nothing does: it is the
request's, frozen in ``ApiRequest``).  The owner clears it when the profile changes.
"""

from __future__ import annotations

from ..wire.request import CheckedRequest

#: largest body kept (larger ones are parsed and checked every time)
MAX_ENTRY_BYTES = 64 * 1024
#: bytes of request bodies kept in all (their parsed form takes a few times more)
MAX_TOTAL_BYTES = 8 * 1024 * 1024


class CheckedBodies:
    """Exact request bytes -> the ``CheckedRequest`` they passed as (bounded, oldest out)."""

    __slots__ = ("_bytes", "_items", "max_entry", "max_total")

    def __init__(self, max_entry: int = MAX_ENTRY_BYTES, max_total: int = MAX_TOTAL_BYTES) -> None:
        self._items: dict[bytes, CheckedRequest] = {}
        self._bytes = 0
        self.max_entry = max_entry
        self.max_total = max_total

    def get(self, raw: bytes) -> CheckedRequest | None:
        return self._items.get(raw)

    def put(self, raw: bytes, checked: CheckedRequest) -> None:
        size = len(raw)
        if size > self.max_entry or raw in self._items:
            return
        items = self._items
        while items and self._bytes + size > self.max_total:
            oldest = next(iter(items))  # insertion order: the oldest first
            del items[oldest]
            self._bytes -= len(oldest)
        items[raw] = checked
        self._bytes += size

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)
