"""What a test asks about the requests its app sent: ``mockserver.journal`` in the pytest plugin.

A live view of one server's journal (every call reads the journal afresh), with helpers
for the common questions: which requests reached ``/v1/messages``, in order; which tools
they offered; which ``tool_result`` blocks the app sent back; how many retries happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..server.journal import Exchange, Journal
from ..wire import protocol as p

#: request header the official SDKs send with every attempt ("0" first, then 1, 2, ...)
H_RETRY_COUNT = "x-stainless-retry-count"


class JournalView:
    """The exchanges of one server, read live; ``requests`` are the ``/v1/messages`` ones."""

    def __init__(self, journal: Callable[[], Journal]) -> None:
        self._journal = journal

    # --- the exchanges ------------------------------------------------------------------------

    @property
    def all(self) -> list[Exchange]:
        """Every exchange (any path), in arrival order."""
        return self._journal().all()

    @property
    def requests(self) -> list[Exchange]:
        """The ``POST /v1/messages`` exchanges, in arrival order."""
        return [ex for ex in self.all if ex.path == p.PATH_MESSAGES and ex.method == "POST"]

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of ``requests``."""
        return [ex.body for ex in self.requests]

    @property
    def headers(self) -> list[dict[str, str]]:
        """The headers of ``requests`` (names lower-cased, secrets masked as ``***``)."""
        return [ex.headers for ex in self.requests]

    @property
    def count(self) -> int:
        """How many ``/v1/messages`` requests arrived."""
        return len(self.requests)

    @property
    def last(self) -> Exchange:
        """The last ``/v1/messages`` exchange (``LookupError`` when there is none)."""
        found = self.requests
        if not found:
            raise LookupError("no /v1/messages request reached the mock server")
        return found[-1]

    @property
    def unmatched(self) -> list[Exchange]:
        """Exchanges that no recorded interaction matched (``replay`` mode misses)."""
        return [ex for ex in self.all if ex.source == "unmatched"]

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Exchange]:
        return iter(self.requests)

    def __getitem__(self, i: int) -> Exchange:
        return self.requests[i]

    def clear(self) -> int:
        """Forget every exchange so far; returns how many there were."""
        return self._journal().clear()

    # --- questions about one request ----------------------------------------------------------

    def tools_offered(self, i: int = -1) -> list[str]:
        """Names of the tools request ``i`` offered, in order."""
        tools = _body(self[i]).get("tools") or []
        return [t.get("name", "") for t in tools if isinstance(t, dict)]

    def tool_results(self, i: int = -1) -> list[dict[str, Any]]:
        """The ``tool_result`` blocks request ``i`` sent back (its last user turn)."""
        messages = _body(self[i]).get("messages") or []
        if not messages or not isinstance(messages[-1], dict):
            return []
        last = messages[-1]
        content = last.get("content")
        if last.get("role") != "user" or not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, dict) and b.get("type") == p.BLOCK_TOOL_RESULT]

    def tool_calls(self, i: int = -1) -> list[dict[str, Any]]:
        """The ``tool_use`` blocks of the reply to request ``i``."""
        response = self[i].response
        content = response.get("content") if isinstance(response, dict) else None
        if not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, dict) and b.get("type") == p.BLOCK_TOOL_USE]

    def messages(self, i: int = -1) -> list[dict[str, Any]]:
        """The ``messages`` of request ``i``."""
        found = _body(self[i]).get("messages") or []
        return [m for m in found if isinstance(m, dict)]

    # --- retries --------------------------------------------------------------------------------

    def retries(self) -> int:
        """How many ``/v1/messages`` requests were retries: the SDKs' own count
        (``x-stainless-retry-count`` > 0) or, for clients that do not send it, a request
        identical to the one just before it."""
        n = 0
        previous: Exchange | None = None
        for ex in self.requests:
            count = ex.headers.get(H_RETRY_COUNT, "").strip()
            if count.isdigit():
                n += int(count) > 0
            elif previous is not None and previous.body == ex.body:
                n += 1
            previous = ex
        return n


def _body(ex: Exchange) -> dict[str, Any]:
    return ex.body if isinstance(ex.body, dict) else {}
