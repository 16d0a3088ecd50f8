"""The exchange log: every request the server saw and what it answered, secrets masked."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..wire import protocol as p
from ..wire.sse import Event

if TYPE_CHECKING:
    from ..wire.reply import Reply


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


class WrittenStream:
    """A stream reply as written, kept by reference (no work on the hot path): its events,
    their ``at_ms`` offsets (recorded or replayed; ``None`` for a synthesized stream, all
    written at once) and the event index a disconnect cut it at.  ``to_json`` renders it
    when someone asks (the admin journal, the inspector).

    A synthesized stream keeps its message rather than its events: they are
    ``unfold(message)``, rebuilt when read (a journal of synthesized streams stays half the
    size); the event count tells which unfolding (with or without ``ping``) was written.
    """

    __slots__ = ("_count", "_events", "_message", "at_ms", "disconnect_at")

    def __init__(
        self,
        events: tuple[Event, ...],
        at_ms: tuple[float, ...] | None = None,
        disconnect_at: int | None = None,
    ) -> None:
        self._events = events
        self._message: Mapping[str, Any] | None = None
        self._count = len(events)
        self.at_ms = at_ms
        self.disconnect_at = disconnect_at

    @classmethod
    def of(cls, reply: Reply) -> WrittenStream:
        """The stream of ``reply`` (which has ``events``)."""
        events = reply.events or ()
        if reply.source == "synth" and reply.fault is None and reply.message is not None:
            stream = cls((), None, reply.disconnect_at)
            stream._message, stream._count = reply.message, len(events)
            return stream
        return cls(events, reply.at_ms, reply.disconnect_at)

    @property
    def events(self) -> tuple[Event, ...]:
        if self._message is None:
            return self._events
        from ..sources.synth import message_reply  # (sources -> synth: imported when read)

        for ping in (True, False):
            rebuilt = message_reply(dict(self._message), True, "synth", ping).events or ()
            if len(rebuilt) == self._count:
                return rebuilt
        return ()  # (cannot happen while synthesized streams are message_reply's)

    def written(self) -> tuple[Event, ...]:
        """The events that reached the wire (those before a disconnect)."""
        cut = self.disconnect_at
        return self.events if cut is None or cut < 0 else self.events[:cut]

    def to_json(self) -> list[dict[str, Any]]:
        """``[{"event": name, "data": parsed JSON (or the text), "at_ms": offset}]``."""
        at = self.at_ms or ()
        out: list[dict[str, Any]] = []
        for i, event in enumerate(self.written()):
            try:
                data: Any = json.loads(event.data)
            except ValueError:
                data = event.data
            out.append({"event": event.name, "data": data, "at_ms": at[i] if i < len(at) else 0.0})
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
