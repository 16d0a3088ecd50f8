"""A journal entry as one JSON text (a shared journal's record) and back.

Made once per exchange behind the request, so it is cheap: the small fields are encoded, the
request body and a JSON reply are spliced in as the bytes that went over the wire, a
synthesized stream keeps its message (its events are rebuilt when read).  The store puts the
record's ``id`` in front (``{"id":N,...}``).
"""

from __future__ import annotations

import json
from typing import Any, Final

from ...shared.outbox import Outbox
from ...wire.written import WrittenStream
from ..journal import Exchange, Journal

#: the counter of requests served, in a shared store
SERVED: Final = ("served", "requests")
#: the fields encoded as they are (the rest: body, response, events, written)
_PLAIN: Final = (
    "time",
    "method",
    "path",
    "query",
    "headers",
    "request_id",
    "status",
    "source",
    "fault",
    "model",
    "stream",
    "api_key",
    "usage",
    "cost_usd",
    "violations",
    "near_misses",
    "duration_ms",
    "rule",
    "disconnected",
)
#: what a JSON text may start with (a BOM or anything else: encode the parsed value instead)
_JSON_START: Final = frozenset('{["-0123456789tfn \t\r\n')


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _wire_json(raw: bytes | None) -> str | None:
    """``raw`` as JSON text to splice in, when it is UTF-8 JSON text."""
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text[0] in _JSON_START else None


def record_of(ex: Exchange) -> str:
    """``ex`` as a record (a JSON object without ``id``)."""
    head = _dumps({name: getattr(ex, name) for name in _PLAIN})
    body = (_wire_json(ex.raw) if ex.body is not None else None) or _dumps(ex.body)
    response = None
    if ex.reply_body is not None and not isinstance(ex.response, str):
        response = _wire_json(ex.reply_body)
    written = _dumps(ex.written.to_record()) if ex.written is not None else "null"
    return (
        f'{head[:-1]},"body":{body},"response":{response or _dumps(ex.response)},'
        f'"events":{_dumps(ex.events)},"written":{written}}}'
    )


def exchange_of(text: str) -> Exchange:
    """The entry a record (with its ``id``) holds; ``ValueError`` when it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("id"), int):
        raise ValueError("not a journal record")
    written = data.get("written")
    ex = Exchange(
        data["id"],
        data.get("time", 0.0),
        data.get("method", ""),
        data.get("path", ""),
        data.get("query", ""),
        data.get("headers") or {},
        data.get("body"),
        data.get("request_id", ""),
    )
    for name in _PLAIN[5:]:
        if name in data:
            setattr(ex, name, data[name])
    ex.response = data.get("response")
    ex.events = data.get("events")
    ex.violations = list(ex.violations or [])
    ex.near_misses = list(ex.near_misses or [])
    if isinstance(written, dict):
        ex.written = WrittenStream.from_record(written)
    return ex


class SharedJournal(Journal):
    """The journal of processes sharing state.  A finished exchange waits here (held as the
    in-memory journal holds it, within the same caps: nothing is encoded on the request
    path) until someone reads the journal: then every process ``publish`` es what waits to
    the shared store, which numbers and keeps the records (read them through ``state.ops``)."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__()
        self.outbox = outbox

    def _keep(self, ex: Exchange) -> None:
        pass  # (held from its end on: see ``close``)

    def close(self, ex: Exchange) -> None:
        ex.size = ex.estimate_size()
        with self._lock:
            self._items.append(ex)
            self._bytes += ex.size
            while len(self._items) > 1 and (
                len(self._items) > self.limit or self._bytes > self.max_bytes
            ):
                self._bytes -= self._items.popleft().size
        self.outbox.count(*SERVED)

    def publish(self) -> int:
        """Hand the finished exchanges that wait to the outbox, as records; how many."""
        with self._lock:
            waiting = list(self._items)
            self._items.clear()
            self._bytes = 0
        for ex in waiting:
            self.outbox.record(record_of(ex))
        return len(waiting)
