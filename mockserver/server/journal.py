"""The exchange log: every request the server saw and what it answered, secrets masked."""

from __future__ import annotations

import functools
import hashlib
import itertools
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..shared.seam import JOURNAL_MAX_BYTES, JOURNAL_MAX_ENTRIES
from ..wire import protocol as p
from ..wire.request import ApiRequest
from ..wire.written import WrittenStream


@functools.lru_cache(maxsize=1024)
def key_label(key: str | None) -> str:
    """A stable, non-reversible label for an API key (never the key itself)."""
    if not key:
        return "none"
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` (lower-case names, as ``ApiRequest`` has them) with every secret
    value replaced by ``***``."""
    out = dict(headers)
    for name in p.SECRET_HEADERS:
        if name in out:
            out[name] = "***"
    return out


@dataclass(slots=True)
class Exchange:
    id: int
    time: float
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    request_id: str
    status: int = 0
    source: str = "error"
    fault: str | None = None
    model: str | None = None
    stream: bool = False
    api_key: str = "none"
    response: Any = None
    events: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    cost_usd: str | None = None
    violations: list[dict[str, Any]] = field(default_factory=list)
    near_misses: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: float = 0.0
    #: the scripted-reply rule that answered (``source: rule``)
    rule: str | None = None
    #: the connection was dropped before the reply ended (a ``disconnect`` fault, the client
    #: leaving, the upstream hanging up); ``status`` 0: before any byte of the reply
    disconnected: bool = False
    #: a stream reply's events by reference; ``to_json`` renders them as ``events``
    written: WrittenStream | None = field(default=None, repr=False, compare=False)
    #: the request body's bytes and a JSON reply's, by reference (a shared journal's record
    #: reuses them rather than encoding the parsed values again)
    raw: bytes | None = field(default=None, repr=False, compare=False)
    reply_body: bytes | None = field(default=None, repr=False, compare=False)
    #: about how many bytes the entry holds (set when it ends; the journal's byte cap)
    size: int = field(default=0, repr=False, compare=False)

    def estimate_size(self) -> int:
        """About how many bytes of request and reply this entry keeps alive."""
        n = 512 + len(self.raw or b"") + len(self.reply_body or b"")
        written = self.written
        if written is not None:
            n += sum(len(e.raw) or len(e.data) for e in written._events) + 256 * written._count
        return n

    def to_json(self) -> dict[str, Any]:
        written = self.written
        out = asdict(replace(self, written=None, raw=None, reply_body=None))
        for name in ("written", "raw", "reply_body", "size"):
            del out[name]
        if written is not None and out["events"] is None:
            out["events"] = written.to_json()
        return out


@dataclass(frozen=True)
class Wanted:
    """Which exchanges a journal read wants: each given field must match; ``since_id``: ids
    above it."""

    path: str | None = None
    source: str | None = None
    status: int | None = None
    model: str | None = None
    since_id: int | None = None

    def keeps(self, ex: Exchange) -> bool:
        return (
            (self.path is None or ex.path == self.path)
            and (self.source is None or ex.source == self.source)
            and (self.status is None or ex.status == self.status)
            and (self.model is None or ex.model == self.model)
            and (self.since_id is None or ex.id > self.since_id)
        )


#: every exchange
EVERY = Wanted()


class Journal:
    """Bounded, thread-safe list of exchanges in arrival order: at most ``limit`` entries
    and about ``max_bytes`` of requests and replies (the oldest go first)."""

    def __init__(
        self, limit: int = JOURNAL_MAX_ENTRIES, max_bytes: int = JOURNAL_MAX_BYTES
    ) -> None:
        self._items: deque[Exchange] = deque()
        self.limit = limit
        self.max_bytes = max_bytes
        self._bytes = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(
        self,
        *,
        time: float,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: Any,
        request_id: str,
        model: str | None = None,
        stream: bool = False,
        api_key: str = "none",
        raw: bytes | None = None,
    ) -> Exchange:
        """Log a request as it arrives (its reply is filled in later); ``headers`` with
        lower-case names."""
        return self.arrived(
            ApiRequest(method, path, query, headers, body, 0, request_id, time),
            model=model,
            stream=stream,
            api_key=api_key,
            raw=raw,
        )

    def arrived(
        self,
        req: ApiRequest,
        *,
        model: str | None,
        stream: bool,
        api_key: str,
        raw: bytes | None,
    ) -> Exchange:
        """Log ``req`` as it arrives (its reply is filled in later)."""
        ex = Exchange(
            next(self._ids),
            req.received_at,
            req.method,
            req.path,
            req.query,
            mask_headers(req.headers),
            req.body,
            req.request_id,
            0,
            "error",
            None,
            model,
            stream,
            api_key,
            raw=raw,
        )
        with self._lock:
            self._keep(ex)
        return ex

    def _keep(self, ex: Exchange) -> None:
        """Hold ``ex`` from now on (with the lock held)."""
        self._items.append(ex)
        if len(self._items) > self.limit:
            self._bytes -= self._items.popleft().size

    def close(self, ex: Exchange) -> None:
        """``ex`` has ended (its reply written, or the connection dropped): its size counts
        against the byte cap from now on."""
        ex.size = ex.estimate_size()
        with self._lock:
            self._bytes += ex.size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                self._bytes -= self._items.popleft().size

    def all(self) -> list[Exchange]:
        with self._lock:
            return list(self._items)

    def filter(self, wanted: Wanted) -> list[Exchange]:
        return [ex for ex in self.all() if wanted.keeps(ex)]

    def clear(self) -> int:
        with self._lock:
            n = len(self._items)
            self._items.clear()
            self._bytes = 0
            return n

    def __len__(self) -> int:
        return len(self._items)
