"""``WrittenStream``: a stream reply as it was written, for the journal and the inspector."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .reply import Reply, message_reply
from .sse import Event


class WrittenStream:
    """A stream reply as written, kept by reference (no work on the hot path): its events,
    their recorded ``at_ms`` offsets (``None`` for a synthesized stream), the moments each
    was actually written (``sent_ms``, ms after the response headers, filled in by the writer
    as it goes; with ``--timing instant`` a replay's events go out at once whatever their
    recorded offsets), and the event index a disconnect cut it at.  ``to_json`` renders it
    when someone asks (the admin journal, the inspector).

    A synthesized stream keeps its message rather than its events: they are
    ``unfold(message)``, rebuilt when read (a journal of synthesized streams stays half the
    size); the event count tells which unfolding (with or without ``ping``) was written.
    """

    __slots__ = ("_count", "_events", "_message", "at_ms", "disconnect_at", "sent_ms")

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
        self.sent_ms: list[float] | None = None

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
        """``[{"event": name, "data": parsed JSON (or the text), "at_ms": recorded offset or
        None, "sent_ms": when it was written or None}]``."""
        at = self.at_ms or ()
        sent = self.sent_ms or ()
        out: list[dict[str, Any]] = []
        for i, event in enumerate(self.written()):
            try:
                data: Any = json.loads(event.data)
            except ValueError:
                data = event.data
            out.append(
                {
                    "event": event.name,
                    "data": data,
                    "at_ms": at[i] if i < len(at) else None,
                    "sent_ms": sent[i] if i < len(sent) else None,
                }
            )
        return out

    def to_record(self) -> dict[str, Any]:
        """What rebuilds this stream (``from_record``), as JSON: a synthesized stream's
        message, or the events' names and data; the offsets; the cut."""
        out: dict[str, Any] = {
            "at_ms": list(self.at_ms) if self.at_ms is not None else None,
            "sent_ms": self.sent_ms,
            "disconnect_at": self.disconnect_at,
            "count": self._count,
        }
        if self._message is not None:
            out["message"] = self._message
        else:
            out["events"] = [[e.name, e.data] for e in self._events]
        return out

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> WrittenStream:
        at = data.get("at_ms")
        stream = cls(
            tuple(Event(name, str(text)) for name, text in data.get("events") or ()),
            tuple(at) if at is not None else None,
            data.get("disconnect_at"),
        )
        if data.get("message") is not None:
            stream._message = data["message"]
            stream._count = int(data.get("count") or 0)
        stream.sent_ms = data.get("sent_ms")
        return stream
