"""The stream grammar: a state machine over a whole event sequence.

    stream := message_start ping* block* message_delta+ message_stop     (pings anywhere after
    block  := content_block_start (ping | content_block_delta)* content_block_stop    the start)

with the exceptions real traffic shows: an ``error`` event may end the stream at any point
(even as its only event), a stream ending with ``stop_reason: max_tokens`` may leave its last
block open with incomplete tool input, and unknown event, block and delta types are
tolerated (forward compatibility).  Each event's data is also validated against
``schemas/stream_event.json``.  See :data:`mockserver.violations.RULES` for the rule ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ..wire import protocol as p
from ..wire.sse import Event
from . import violations as v
from .validation import schema_violations
from .violations import Violation

#: every delta type the protocol defines (others are tolerated as unknown)
KNOWN_DELTAS: Final[frozenset[str]] = frozenset().union(*p.DELTAS_FOR_BLOCK.values()) | {
    p.DELTA_CITATIONS
}
#: block types whose input arrives as input_json_delta fragments
JSON_INPUT_BLOCKS: Final[frozenset[str]] = frozenset(
    block for block, deltas in p.DELTAS_FOR_BLOCK.items() if p.DELTA_INPUT_JSON in deltas
)


class _NotJson:
    def __repr__(self) -> str:
        return "<not JSON>"


NOT_JSON: Final = _NotJson()


@dataclass(frozen=True, slots=True)
class Frame:
    """One event, normalized: its ``event:`` name and its data (parsed JSON or NOT_JSON)."""

    name: str | None
    data: Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str | bytes) -> Any:
    """Strict JSON (no NaN/Infinity); NOT_JSON when the text does not parse."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, TypeError, RecursionError):
        return NOT_JSON


def to_frame(item: Any) -> Frame | None:
    """An ``sse.Event``, a ``(name, data)`` pair (data parsed or JSON text) or a bare data dict
    (named after its type) as a Frame; None when ``item`` is none of these."""
    if isinstance(item, Event):
        return Frame(item.name, parse_json(item.data))
    if isinstance(item, tuple | list) and len(item) == 2:
        name, data = item
        if name is not None and not isinstance(name, str):
            return None
        if isinstance(data, str | bytes):
            data = parse_json(data)
        return Frame(name, data)
    if isinstance(item, dict):
        kind = item.get("type")
        return Frame(kind if isinstance(kind, str) else None, item)
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: the field each known delta type must carry, and its JSON type
_DELTA_FIELD: Final[dict[str, tuple[str, type]]] = {
    p.DELTA_TEXT: ("text", str),
    p.DELTA_INPUT_JSON: ("partial_json", str),
    p.DELTA_THINKING: ("thinking", str),
    p.DELTA_SIGNATURE: ("signature", str),
    p.DELTA_CITATIONS: ("citation", dict),
}
#: event type -> the schema of that event alone (skips the top-level dispatch)
_EVENT_SCHEMA: Final[dict[str, str]] = {
    name: f"stream_event#/$defs/{name}" for name in sorted(p.EVENT_NAMES)
}


def event_schema(data: dict[str, Any]) -> str:
    """The schema reference that validates ``data``: the event type's own definition when the
    type is known (same result as the top-level dispatch, a lot faster), else the top level."""
    kind = data.get("type")
    return _EVENT_SCHEMA.get(kind, "stream_event") if isinstance(kind, str) else "stream_event"


def fast_valid(data: dict[str, Any]) -> bool:
    """A sufficient condition for ``data`` to match ``schemas/stream_event.json``, for the
    frequent small events (ping, message_stop, content_block_stop, simple deltas).  False
    means "run the schema": it only saves time, it never decides a violation (jsonschema is
    about 100x slower on these)."""
    kind = data.get("type")
    if kind == p.PING or kind == p.MESSAGE_STOP:
        return True
    index = _int(data.get("index"))
    if index is None or index < 0:
        return False
    if kind == p.CONTENT_BLOCK_STOP:
        return True
    if kind != p.CONTENT_BLOCK_DELTA:
        return False
    delta = data.get("delta")
    if not isinstance(delta, dict):
        return False
    dtype = delta.get("type")
    spec = _DELTA_FIELD.get(dtype) if isinstance(dtype, str) else None
    return spec is not None and isinstance(delta.get(spec[0]), spec[1])


class StreamMachine:
    """Feed frames in order with :meth:`step`, then call :meth:`finish` for the violations."""

    def __init__(self, *, complete: bool = True) -> None:
        self.complete = complete
        self.out: list[Violation] = []
        self.deferred: list[Violation] = []  # dropped when the stream stops for max_tokens
        self.count = 0
        self.seen_start = False
        self.start_reported = False
        self.terminal: str | None = None
        self.open_index: int | None = None
        self.open_type: str | None = None
        self.next_index = 0
        self.block_types: list[str | None] = []
        self.partial: dict[int, list[str]] = {}
        self.saw_message_delta = False
        self.stop_reason: Any = None
        self.stop_event: int | None = None
        self.last_output: tuple[int, int] | None = None  # (output_tokens, event index)

    def _add(self, rule: str, path: str, message: str, event: int) -> None:
        self.out.append(Violation(rule, path, message, event))

    def step(self, frame: Frame | None) -> None:
        i = self.count
        self.count += 1
        if frame is None:
            self._add(v.EVENT_NOT_JSON, "$", "not an event (sse.Event or (name, data))", i)
            return
        data = frame.data
        kind: str | None = frame.name
        if data is NOT_JSON:
            self._add(v.EVENT_NOT_JSON, "$", f"data of event {frame.name!r} is not JSON", i)
            data = {}
        else:
            dtype = data.get("type") if isinstance(data, dict) else None
            if isinstance(data, dict) and frame.name != dtype:
                self._add(
                    v.EVENT_NAME_MISMATCH,
                    "$.type",
                    f"event name {frame.name!r} differs from data.type {dtype!r}",
                    i,
                )
            if isinstance(dtype, str):
                kind = dtype
            if not isinstance(data, dict):
                self.out.extend(schema_violations("stream_event", data, v.SCHEMA_EVENT, i))
                data = {}
            elif not fast_valid(data):
                self.out.extend(schema_violations(event_schema(data), data, v.SCHEMA_EVENT, i))
        self._grammar(i, kind, data)

    def _grammar(self, i: int, kind: str | None, data: dict[str, Any]) -> None:
        if self.terminal is not None:
            after = v.STREAM_AFTER_STOP if self.terminal == p.MESSAGE_STOP else v.STREAM_AFTER_ERROR
            self._add(after, "$", f"{kind} after {self.terminal}", i)
            return
        if kind == p.ERROR:
            self.terminal = p.ERROR
            return
        if kind == p.MESSAGE_START:
            if self.seen_start:
                self._add(v.STREAM_START_DUPLICATE, "$", "a second message_start", i)
                return
            self.seen_start = self.start_reported = True
            message = data.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self._output_tokens(usage.get("output_tokens"), "$.message.usage.output_tokens", i)
            return
        if not self.start_reported:
            self.start_reported = True
            self._add(v.STREAM_START_FIRST, "$", f"first event is {kind}, not message_start", i)
        if kind == p.CONTENT_BLOCK_START:
            self._block_start(i, data)
        elif kind == p.CONTENT_BLOCK_DELTA:
            self._block_delta(i, data)
        elif kind == p.CONTENT_BLOCK_STOP:
            self._block_stop(i, data)
        elif kind == p.MESSAGE_DELTA:
            self._message_delta(i, data)
        elif kind == p.MESSAGE_STOP:
            if not self.saw_message_delta:
                self._add(v.MESSAGE_DELTA_MISSING, "$", "message_stop before any message_delta", i)
            self._leave_open(i, "message_stop")
            self.terminal = p.MESSAGE_STOP
        # ping and unknown event types: nothing to check

    def _in_blocks(self, i: int, kind: str) -> None:
        if self.saw_message_delta:
            self._add(v.BLOCK_AFTER_MESSAGE_DELTA, "$", f"{kind} after message_delta", i)

    def _block_start(self, i: int, data: dict[str, Any]) -> None:
        self._in_blocks(i, p.CONTENT_BLOCK_START)
        index = _int(data.get("index"))
        if self.open_index is not None:
            self._add(
                v.BLOCK_NOT_CLOSED,
                "$.index",
                f"block {self.open_index} is still open when block {index} starts",
                i,
            )
        if index is None:
            self.open_index = None
            return
        if index != self.next_index:
            self._add(
                v.BLOCK_INDEX_ORDER, "$.index", f"expected index {self.next_index}, got {index}", i
            )
        block = data.get("content_block")
        btype = block.get("type") if isinstance(block, dict) else None
        self.open_index, self.open_type = index, btype if isinstance(btype, str) else None
        self.next_index = index + 1
        self.block_types.append(self.open_type)
        if self.open_type in JSON_INPUT_BLOCKS:
            self.partial[index] = []

    def _not_open(self, i: int, what: str, index: int | None) -> bool:
        if index is not None and index == self.open_index:
            return False
        state = (
            "no block is open" if self.open_index is None else f"block {self.open_index} is open"
        )
        self._add(v.BLOCK_NOT_OPEN, "$.index", f"{what} for block {index}, but {state}", i)
        return True

    def _block_delta(self, i: int, data: dict[str, Any]) -> None:
        self._in_blocks(i, p.CONTENT_BLOCK_DELTA)
        index = _int(data.get("index"))
        if self._not_open(i, "delta", index):
            return
        delta = data.get("delta")
        dtype = delta.get("type") if isinstance(delta, dict) else None
        allowed = p.DELTAS_FOR_BLOCK.get(self.open_type or "")
        if allowed is not None and dtype in KNOWN_DELTAS and dtype not in allowed:
            self._add(
                v.BLOCK_DELTA_TYPE,
                "$.delta.type",
                f"{dtype} in a {self.open_type} block (allowed: {', '.join(sorted(allowed)) or 'none'})",
                i,
            )
        if dtype == p.DELTA_INPUT_JSON and index in self.partial and isinstance(delta, dict):
            fragment = delta.get("partial_json")
            if isinstance(fragment, str):
                self.partial[index].append(fragment)

    def _block_stop(self, i: int, data: dict[str, Any]) -> None:
        self._in_blocks(i, p.CONTENT_BLOCK_STOP)
        index = _int(data.get("index"))
        if self._not_open(i, "stop", index):
            return
        self.open_index = self.open_type = None
        fragments = self.partial.pop(index, None) if index is not None else None
        if fragments is None:
            return
        text = "".join(fragments)
        if not text.strip():  # a tool without arguments: only "" fragments, input stays {}
            return
        parsed = parse_json(text)
        if parsed is NOT_JSON or not isinstance(parsed, dict):
            what = "is not JSON" if parsed is NOT_JSON else "is not a JSON object"
            self.deferred.append(
                Violation(
                    v.TOOL_INPUT_JSON, "$", f"tool input of block {index} {what}: {text[:80]!r}", i
                )
            )

    def _leave_open(self, i: int, where: str) -> None:
        if self.open_index is not None:
            self.deferred.append(
                Violation(
                    v.BLOCK_NOT_CLOSED,
                    "$",
                    f"block {self.open_index} is not closed before {where}",
                    i,
                )
            )
            self.partial.pop(self.open_index, None)
            self.open_index = self.open_type = None

    def _message_delta(self, i: int, data: dict[str, Any]) -> None:
        self._leave_open(i, "message_delta")
        self.saw_message_delta = True
        delta = data.get("delta")
        if isinstance(delta, dict) and "stop_reason" in delta:
            self.stop_reason, self.stop_event = delta["stop_reason"], i
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._output_tokens(usage.get("output_tokens"), "$.usage.output_tokens", i)

    def _output_tokens(self, value: Any, path: str, i: int) -> None:
        count = _int(value)
        if count is None:
            return
        if self.last_output is not None and count < self.last_output[0]:
            before, at = self.last_output
            self._add(v.USAGE_DECREASED, path, f"output_tokens {count} < {before} (event {at})", i)
        self.last_output = (count, i)

    def finish(self) -> list[Violation]:
        last = self.count - 1
        if self.count == 0:
            if self.complete:
                self._add(v.STREAM_EMPTY, "$", "no events", 0)
        elif self.complete and self.terminal is None:
            self._add(v.STREAM_INCOMPLETE, "$", "stream ends without message_stop or error", last)
        at = self.stop_event if self.stop_event is not None else last
        if self.terminal == p.MESSAGE_STOP and self.stop_reason is None:
            self._add(v.STOP_REASON_MISSING, "$.delta.stop_reason", "no stop_reason", at)
        if self.stop_reason == p.STOP_TOOL_USE and p.BLOCK_TOOL_USE not in self.block_types:
            self._add(
                v.STOP_REASON_INCONSISTENT,
                "$.delta.stop_reason",
                "stop_reason tool_use but the reply has no tool_use block",
                at,
            )
        if self.stop_reason != p.STOP_MAX_TOKENS:
            self.out.extend(self.deferred)
        self.deferred = []
        self.out.sort(key=lambda x: x.event if x.event is not None else -1)
        return self.out


def stream_violations(events: Iterable[Any], *, complete: bool = True) -> list[Violation]:
    """All violations of an event sequence (see the module docstring)."""
    machine = StreamMachine(complete=complete)
    for item in events:
        machine.step(to_frame(item))
    return machine.finish()
