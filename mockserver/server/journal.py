"""The exchange log: every request the server saw and what it answered, secrets masked."""

from __future__ import annotations

import functools
import hashlib
import itertools
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..wire import protocol as p
from ..wire.written import WrittenStream

if TYPE_CHECKING:
    pass


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
    for name in p.SECRET_HEADERS.intersection(out):
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

    def to_json(self) -> dict[str, Any]:
        written = self.written
        out = asdict(self if written is None else replace(self, written=None))
        del out["written"]
        if written is not None and out["events"] is None:
            out["events"] = written.to_json()
        return out


class Journal:
    """Bounded, thread-safe list of exchanges in arrival order."""

    def __init__(self, limit: int = 10_000) -> None:
        self._items: deque[Exchange] = deque(maxlen=limit)
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
    ) -> Exchange:
        """Log a request as it arrives (its reply is filled in later); ``headers`` with
        lower-case names."""
        masked = mask_headers(headers)
        with self._lock:
            ex = Exchange(
                next(self._ids),
                time,
                method,
                path,
                query,
                masked,
                body,
                request_id,
                model=model,
                stream=stream,
                api_key=api_key,
            )
            self._items.append(ex)
        return ex

    def all(self) -> list[Exchange]:
        with self._lock:
            return list(self._items)

    def filter(
        self,
        *,
        path: str | None = None,
        source: str | None = None,
        status: int | None = None,
        model: str | None = None,
        since_id: int | None = None,
    ) -> list[Exchange]:
        def keep(ex: Exchange) -> bool:
            return (
                (path is None or ex.path == path)
                and (source is None or ex.source == source)
                and (status is None or ex.status == status)
                and (model is None or ex.model == model)
                and (since_id is None or ex.id > since_id)
            )

        return [ex for ex in self.all() if keep(ex)]

    def clear(self) -> int:
        with self._lock:
            n = len(self._items)
            self._items.clear()
            return n

    def __len__(self) -> int:
        return len(self._items)

    def extend(self, items: Iterable[Exchange]) -> None:
        with self._lock:
            self._items.extend(items)
