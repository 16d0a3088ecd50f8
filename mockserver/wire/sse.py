"""Sans-I/O codec for ``text/event-stream``.

``encode`` writes the canonical form the real endpoint uses (``event: NAME``, ``data: JSON``,
blank line).  ``Decoder.feed`` accepts bytes cut at any point (inside a line, inside a
UTF-8 character, between ``\\r`` and ``\\n``) and returns complete events; every event
keeps the exact bytes it was made of (``raw``), so that the concatenation of the raws of
all events plus ``Decoder.tail`` reproduces the input byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event.

    ``name`` is the ``event:`` field (``None`` when absent), ``data`` the joined ``data:``
    lines.  ``raw`` holds the bytes on the wire, including comment and blank lines that
    preceded it; empty when the event was built in memory.  ``terminated`` is false for a
    final event cut off without its blank line.
    """

    name: str | None
    data: str
    raw: bytes = b""
    terminated: bool = True
    comments: tuple[str, ...] = field(default=())

    def json(self) -> Any:
        return json.loads(self.data)

    def wire(self) -> bytes:
        """Bytes to put on the wire: the recorded bytes when known, else the canonical form."""
        return self.raw if self.raw else encode_raw(self.name, self.data)


def dumps(obj: Any) -> str:
    """Compact JSON as the real endpoint writes it (no spaces, UTF-8 kept as is)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def encode_raw(name: str | None, data: str) -> bytes:
    head = f"event: {name}\n" if name is not None else ""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}{lines}\n".encode()


def encode(name: str, payload: Any) -> bytes:
    """Canonical bytes of one named event whose data is ``payload`` as compact JSON."""
    return b"event: " + name.encode() + b"\ndata: " + dumps(payload).encode() + b"\n\n"


def comment(text: str) -> bytes:
    return b": " + text.encode() + b"\n\n"


class Decoder:
    """Incremental SSE parser following the WHATWG rules the SDKs implement."""

    __slots__ = ("_buf", "_comments", "_data", "_has_fields", "_name", "_raw")

    def __init__(self) -> None:
        self._buf = b""
        self._raw = bytearray()
        self._name: str | None = None
        self._data: list[str] = []
        self._comments: list[str] = []
        self._has_fields = False

    def feed(self, chunk: bytes) -> list[Event]:
        self._buf += chunk
        out: list[Event] = []
        buf = self._buf
        pos = 0
        n = len(buf)
        while pos < n:
            nl = buf.find(b"\n", pos)
            cr = buf.find(b"\r", pos)
            if nl < 0 and cr < 0:
                break
            if cr >= 0 and (nl < 0 or cr < nl):
                if cr + 1 >= n:  # a lone \r at the end may be the first half of \r\n
                    break
                end = cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1
                line = buf[pos:cr]
            else:
                end = nl + 1
                line = buf[pos:nl]
            self._raw += buf[pos:end]
            pos = end
            ev = self._line(line)
            if ev is not None:
                out.append(ev)
        self._buf = buf[pos:]
        return out

    def _line(self, line: bytes) -> Event | None:
        if not line:
            if not self._has_fields:
                return None
            ev = Event(
                self._name,
                "\n".join(self._data),
                bytes(self._raw),
                True,
                tuple(self._comments),
            )
            self._reset()
            return ev
        text = line.decode("utf-8", errors="replace")
        if text.startswith(":"):
            self._comments.append(text[1:].lstrip(" "))
            return None
        key, sep, value = text.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if key == "event":
            self._name = value
            self._has_fields = True
        elif key == "data":
            self._data.append(value)
            self._has_fields = True
        elif key in ("id", "retry"):
            self._has_fields = True
        return None

    def _reset(self) -> None:
        self._raw = bytearray()
        self._name = None
        self._data = []
        self._comments = []
        self._has_fields = False

    def close(self) -> list[Event]:
        """End of input: return a final event left without its blank line (lenient)."""
        pending = self._buf
        self._buf = b""
        out: list[Event] = []
        if pending:
            self._raw += pending
            line = pending.rstrip(b"\r\n")
            self._line(line)
        if self._has_fields:
            out.append(
                Event(
                    self._name,
                    "\n".join(self._data),
                    bytes(self._raw),
                    False,
                    tuple(self._comments),
                )
            )
            self._reset()
        return out

    @property
    def tail(self) -> bytes:
        """Bytes consumed after the last event that belong to no event (blank lines, comments)."""
        return bytes(self._raw) + self._buf if not self._has_fields else b""


def decode_all(data: bytes) -> tuple[list[Event], bytes]:
    """Decode a whole stream; returns the events and the trailing bytes that are no event."""
    dec = Decoder()
    events = dec.feed(data)
    tail = dec.tail
    events += dec.close()
    if events and not events[-1].terminated:
        tail = b""
    return events, tail
