"""``Violation``: one broken protocol rule, as data.  Rule ids are defined here, once.

Every check in :mod:`mockserver.conformance` returns a list of these and never raises.
``path`` is a JSON path into the checked value (for a stream: into the event's data),
``event`` the position of the event in the stream when the value is one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

# --- rule ids -----------------------------------------------------------------------------
# schema rules: the value does not match schemas/<name>.json
SCHEMA_REQUEST: Final = "request.schema"
SCHEMA_MESSAGE: Final = "message.schema"
SCHEMA_EVENT: Final = "event.schema"
SCHEMA_ERROR: Final = "error.schema"
SCHEMA_COUNT_TOKENS: Final = "count_tokens.schema"
SCHEMA_MODELS: Final = "models.schema"
SCHEMA_CASSETTE: Final = "cassette.schema"
SCHEMA_RULES: Final = "rules.schema"
# event framing
EVENT_NOT_JSON: Final = "event.data_not_json"
EVENT_NAME_MISMATCH: Final = "event.name_mismatch"
SSE_INVALID_UTF8: Final = "sse.invalid_utf8"
# stream grammar
STREAM_EMPTY: Final = "stream.empty"
STREAM_START_FIRST: Final = "stream.message_start_first"
STREAM_START_DUPLICATE: Final = "stream.message_start_duplicate"
STREAM_AFTER_STOP: Final = "stream.event_after_message_stop"
STREAM_AFTER_ERROR: Final = "stream.event_after_error"
STREAM_INCOMPLETE: Final = "stream.incomplete"
BLOCK_INDEX_ORDER: Final = "block.index_order"
BLOCK_NOT_CLOSED: Final = "block.not_closed"
BLOCK_NOT_OPEN: Final = "block.not_open"
BLOCK_AFTER_MESSAGE_DELTA: Final = "block.after_message_delta"
BLOCK_DELTA_TYPE: Final = "block.delta_type"
TOOL_INPUT_JSON: Final = "tool_input.invalid_json"
MESSAGE_DELTA_MISSING: Final = "message_delta.missing"
USAGE_DECREASED: Final = "usage.output_tokens_decreased"
STOP_REASON_MISSING: Final = "stop_reason.missing"
STOP_REASON_INCONSISTENT: Final = "stop_reason.inconsistent"
# files and cassettes (mockserver check)
FILE_UNREADABLE: Final = "file.unreadable"
FILE_UNRECOGNIZED: Final = "file.unrecognized"
CASSETTE_RAW_MISMATCH: Final = "cassette.raw_mismatch"
RESPONSE_NOT_JSON: Final = "response.not_json"
# structured output: the reply's text against the request's output_config.format schema
STRUCTURED_OUTPUT: Final = "structured_output.schema"
# a reply against its request (scripted replies may break these on purpose)
TOOL_NOT_OFFERED: Final = "tool_use.not_offered"
TOOL_INPUT_SCHEMA: Final = "tool_use.input_schema"
# the checker itself failed (a bug; reported instead of raising)
INTERNAL: Final = "checker.internal_error"

#: rule id -> one-line description (for reports and documentation)
RULES: Final[dict[str, str]] = {
    SCHEMA_REQUEST: "request body does not match schemas/request.json",
    SCHEMA_MESSAGE: "message does not match schemas/message.json",
    SCHEMA_EVENT: "event data does not match schemas/stream_event.json",
    SCHEMA_ERROR: "error body does not match schemas/error.json",
    SCHEMA_COUNT_TOKENS: "count_tokens body does not match schemas/count_tokens.json",
    SCHEMA_MODELS: "models body does not match schemas/models.json",
    SCHEMA_CASSETTE: "cassette does not match schemas/cassette.json",
    SCHEMA_RULES: "rules file does not match schemas/rules.json",
    EVENT_NOT_JSON: "event data is not JSON",
    EVENT_NAME_MISMATCH: "the event: name differs from data.type",
    SSE_INVALID_UTF8: "stream bytes are not valid UTF-8",
    STREAM_EMPTY: "stream has no events",
    STREAM_START_FIRST: "the first event must be message_start (or an error)",
    STREAM_START_DUPLICATE: "more than one message_start",
    STREAM_AFTER_STOP: "event after message_stop",
    STREAM_AFTER_ERROR: "event after an error event",
    STREAM_INCOMPLETE: "stream ends without message_stop or error",
    BLOCK_INDEX_ORDER: "content blocks must start in index order from 0",
    BLOCK_NOT_CLOSED: "a content block is still open (only a max_tokens stop may leave the last open)",
    BLOCK_NOT_OPEN: "delta or stop for a content block that is not open",
    BLOCK_AFTER_MESSAGE_DELTA: "content block event after message_delta",
    BLOCK_DELTA_TYPE: "delta type does not fit the block type",
    TOOL_INPUT_JSON: "input_json_delta fragments do not form a JSON object",
    MESSAGE_DELTA_MISSING: "message_stop without a prior message_delta",
    USAGE_DECREASED: "cumulative output_tokens went down",
    STOP_REASON_MISSING: "the stream ends without a stop_reason",
    STOP_REASON_INCONSISTENT: "stop_reason does not fit the content",
    FILE_UNREADABLE: "file cannot be read or parsed",
    FILE_UNRECOGNIZED: "file is not a recognizable protocol body",
    CASSETTE_RAW_MISMATCH: "a cassette event's raw frame does not decode to its event and data",
    RESPONSE_NOT_JSON: "a recorded non-streaming body is not JSON",
    STRUCTURED_OUTPUT: "the reply's text is not JSON that validates against the request's output schema",
    TOOL_NOT_OFFERED: "the reply calls a tool the request did not offer",
    TOOL_INPUT_SCHEMA: "a tool call's input does not validate against the tool's input_schema",
    INTERNAL: "the checker failed on this input (a bug in mockserver)",
}


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: ``rule`` id, JSON ``path`` (``$.content[0].input``), ``message``, and
    ``event``, the index of the stream event it concerns (``None`` outside streams)."""

    rule: str
    path: str
    message: str
    event: int | None = None

    def __str__(self) -> str:
        where = f"event {self.event} " if self.event is not None else ""
        return f"{where}{self.rule} at {self.path}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "path": self.path, "message": self.message, "event": self.event}

    def at_event(self, event: int) -> Violation:
        return replace(self, event=event)

    def under(self, prefix: str) -> Violation:
        """The same violation with its path moved below ``prefix`` (a JSON path)."""
        return replace(self, path=prefix + self.path[1:] if self.path.startswith("$") else prefix)


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(parts: Iterable[str | int]) -> str:
    """``["content", 0, "input"]`` -> ``$.content[0].input``."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENT.match(part):
            out.append(f".{part}")
        else:
            out.append("[" + json.dumps(part, ensure_ascii=False) + "]")
    return "".join(out)


def short(value: Any, limit: int = 60) -> str:
    """A JSON rendering of ``value`` cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
