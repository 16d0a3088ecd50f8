"""``Reply``: what a source produced and the writer puts on the wire.

A reply is either a JSON body (``body``) or a stream (``events``).  Faults are pure
transforms that return a new ``Reply`` with some of the delivery fields set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from . import sse
from .sse import Event
from .streaming import UnfoldPlan, unfold


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    events: tuple[Event, ...] | None = None
    #: milliseconds since the start of the reply at which each event was recorded
    at_ms: tuple[float, ...] | None = None
    #: bytes after the last event (recorded trailing blank lines)
    tail: bytes = b""
    #: where it came from: synth | replay | record | error | unmatched
    source: str = "synth"
    #: the folded message (for usage, cost and the journal), when there is one
    message: Mapping[str, Any] | None = None
    #: record mode: a stream still arriving from the upstream, written chunk by chunk as it
    #: comes (the source tees it into the cassette); raising ``Disconnected`` from it
    #: drops the client's connection at that point
    live: AsyncIterator[bytes] | None = None
    # --- delivery (set by faults) --------------------------------------------------------
    preamble: bytes = b""
    disconnect_at: int | None = None  # before event K; -1 = before the headers
    stall_ms: Mapping[int, float] = field(default_factory=dict)  # before event K
    stall_all_ms: float = 0.0
    rechunk_seed: int | None = None
    fault: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_stream(self) -> bool:
        return self.events is not None or self.live is not None

    def with_(self, **changes: Any) -> Reply:
        """A copy with ``changes`` (what ``dataclasses.replace`` does, five times faster:
        this runs several times per request)."""
        new = object.__new__(Reply)
        for name in _FIELDS:
            _set(new, name, changes.pop(name) if name in changes else getattr(self, name))
        if changes:
            raise TypeError(f"Reply has no field(s) {', '.join(sorted(changes))}")
        return new


_FIELDS = tuple(f.name for f in fields(Reply))
_set = object.__setattr__


class Disconnected(Exception):
    """The reply asked for the connection to be dropped; nothing more may be written."""


def message_reply(message: dict[str, Any], stream: bool, source: str, ping: bool = True) -> Reply:
    """A 200 reply carrying ``message`` as JSON or as the stream that folds into it."""
    if stream:
        events = tuple(
            sse.Event(name, sse.dumps(data))
            for name, data in unfold(message, UnfoldPlan(ping=ping))
        )
        return Reply(status=200, events=events, source=source, message=message)
    return Reply(status=200, body=sse.dumps(message).encode(), source=source, message=message)
