"""Protocol checks: requests, messages, streams and error bodies against the wire contract.

One code path for the mock's own output, recorded real traffic (``mockserver check``) and
live endpoints.  Every ``check_*`` function returns a list of :class:`Violation` (empty when
the value conforms) and never raises, whatever it is given.

What is checked:

- ``check_request``: ``schemas/request.json`` — the protocol, not a profile (image blocks and
  thinking are valid protocol; the profile decides whether an endpoint serves them).
- ``check_message``: ``schemas/message.json`` plus ``stop_reason: tool_use`` only when the
  content holds a client ``tool_use`` block.
- ``check_stream``: the event grammar of :mod:`mockserver.grammar` (a state machine over the
  whole sequence) and each event's data against ``schemas/stream_event.json``.
- ``check_error``: ``schemas/error.json`` (Anthropic envelope or DeepSeek/OpenAI style).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import Any, Final, ParamSpec

import jsonschema

from ..wire import protocol as p
from ..wire.sse import decode_all
from . import violations as v
from .grammar import stream_violations
from .validation import is_valid, schema_violations
from .violations import Violation, json_path

__all__ = [
    "Violation",
    "check_count_tokens_request",
    "check_count_tokens_response",
    "check_error",
    "check_message",
    "check_models",
    "check_reply_for",
    "check_request",
    "check_request_for",
    "check_response",
    "check_sse_bytes",
    "check_stream",
    "check_structured_output",
    "error_dialect",
    "output_schema",
]

_P = ParamSpec("_P")

ANTHROPIC: Final = "anthropic"
DEEPSEEK: Final = "deepseek"


def _never_raises(func: Callable[_P, list[Violation]]) -> Callable[_P, list[Violation]]:
    """A failure inside a check becomes a ``checker.internal_error`` violation."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> list[Violation]:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            return [
                Violation(v.INTERNAL, "$", f"{func.__name__} failed: {type(exc).__name__}: {exc}")
            ]

    return wrapper


@_never_raises
def check_request(body: Any) -> list[Violation]:
    """Violations of a ``POST /v1/messages`` request body (parsed JSON)."""
    return list(schema_violations("request", body, v.SCHEMA_REQUEST))


@_never_raises
def check_message(message: Any) -> list[Violation]:
    """Violations of a complete (non-streaming, or folded) message."""
    out = list(schema_violations("message", message, v.SCHEMA_MESSAGE))
    if isinstance(message, dict) and message.get("stop_reason") == p.STOP_TOOL_USE:
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        if not any(isinstance(b, dict) and b.get("type") == p.BLOCK_TOOL_USE for b in blocks):
            out.append(
                Violation(
                    v.STOP_REASON_INCONSISTENT,
                    "$.stop_reason",
                    "stop_reason tool_use but the content has no tool_use block",
                )
            )
    return out


@_never_raises
def check_stream(events: Iterable[Any], *, complete: bool = True) -> list[Violation]:
    """Violations of a streamed reply.

    ``events`` is a sequence of :class:`mockserver.sse.Event` or of ``(name, data)`` pairs
    whose data is a parsed JSON value or JSON text (a bare data dict counts as an event named
    after its type).  With ``complete=False`` the sequence may be a prefix (a stream cut by a
    disconnect): the end-of-stream rules (message_stop, stop_reason, open blocks) are skipped.
    """
    return stream_violations(events, complete=complete)


@_never_raises
def check_sse_bytes(data: bytes, *, complete: bool = True) -> list[Violation]:
    """Violations of a raw ``text/event-stream`` body (decoded leniently: a final event
    without its blank line still counts, comments are ignored)."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    out: list[Violation] = []
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        out.append(Violation(v.SSE_INVALID_UTF8, "$", f"invalid UTF-8 at byte {exc.start}"))
    events, _tail = decode_all(raw)
    return out + check_stream(events, complete=complete)


@_never_raises
def check_error(body: Any) -> list[Violation]:
    """Violations of an error body, in either dialect (see :func:`error_dialect`)."""
    return list(schema_violations("error", body, v.SCHEMA_ERROR))


def error_dialect(body: Any) -> str | None:
    """``"anthropic"`` (``{type: error, error: {type, message}}``, also without the top-level
    type), ``"deepseek"`` (``{error: {message, type, param, code}}``) or None (neither)."""
    try:
        if is_valid("error#/$defs/deepseek", body):
            return DEEPSEEK
        if is_valid("error#/$defs/anthropic", body):
            return ANTHROPIC
    except Exception:
        return None
    return None


@_never_raises
def check_count_tokens_request(body: Any) -> list[Violation]:
    return list(schema_violations("count_tokens#/$defs/request", body, v.SCHEMA_COUNT_TOKENS))


@_never_raises
def check_count_tokens_response(body: Any) -> list[Violation]:
    return list(schema_violations("count_tokens#/$defs/response", body, v.SCHEMA_COUNT_TOKENS))


@_never_raises
def check_models(body: Any) -> list[Violation]:
    """A models list (``{data: [...]}``) or a single model, by shape."""
    ref = (
        "models#/$defs/list" if isinstance(body, dict) and "data" in body else "models#/$defs/model"
    )
    return list(schema_violations(ref, body, v.SCHEMA_MODELS))


def _route(path: str) -> str:
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith(p.PATH_COUNT_TOKENS):
        return "count_tokens"
    if path.endswith(p.PATH_MESSAGES):
        return "messages"
    if path.endswith(p.PATH_MODELS) or f"{p.PATH_MODELS}/" in path:
        return "models"
    return "other"


@_never_raises
def check_request_for(path: str, body: Any) -> list[Violation]:
    """The request check that fits the route (``/v1/messages``, ``.../count_tokens``); other
    routes have no body to check."""
    route = _route(path)
    if route == "messages":
        return check_request(body)
    if route == "count_tokens":
        return check_count_tokens_request(body)
    return []


@_never_raises
def check_response(
    path: str,
    status: int,
    *,
    body: Any = None,
    events: Iterable[Any] | None = None,
    complete: bool = True,
) -> list[Violation]:
    """The reply check that fits the route and status: an error body for status >= 400, a
    stream when ``events`` is given, else the route's JSON body."""
    if events is not None:
        return check_stream(events, complete=complete)
    if status >= 400:
        return check_error(body)
    route = _route(path)
    if route == "messages":
        return check_message(body)
    if route == "count_tokens":
        return check_count_tokens_response(body)
    if route == "models":
        return check_models(body)
    return []


#: stop reasons whose reply is not a finished answer (a cut text need not parse)
_UNFINISHED = frozenset(
    {p.STOP_MAX_TOKENS, p.STOP_SEQUENCE, p.STOP_TOOL_USE, "refusal", "pause_turn"}
)


def output_schema(request: Any) -> Any:
    """The JSON Schema a request asks its reply to follow (``output_config.format``, or the
    older top-level ``output_format``, of type ``json_schema``), or None."""
    if not isinstance(request, dict):
        return None
    config = request.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    fmt = fmt if fmt is not None else request.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return fmt.get("schema")
    return None


@_never_raises
def check_structured_output(request: Any, message: Any) -> list[Violation]:
    """A finished reply to a structured-output request is one text block of JSON that
    validates against the request's schema (formats checked)."""
    schema = output_schema(request)
    if not isinstance(schema, dict | bool) or not isinstance(message, dict):
        return []
    if message.get("stop_reason") in _UNFINISHED:
        return []
    content = message.get("content")
    texts = [
        (i, b.get("text"))
        for i, b in enumerate(content if isinstance(content, list) else [])
        if isinstance(b, dict) and b.get("type") == p.BLOCK_TEXT
    ]
    if len(texts) != 1 or not isinstance(texts[0][1], str):
        return [
            Violation(
                v.STRUCTURED_OUTPUT,
                "$.content",
                f"{len(texts)} text blocks, expected one holding the JSON",
            )
        ]
    i, text = texts[0]
    where = f"$.content[{i}].text"
    try:
        value = json.loads(str(text))
    except ValueError as exc:
        return [Violation(v.STRUCTURED_OUTPUT, where, f"not JSON: {exc}")]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        errors = list(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(value))
    except jsonschema.exceptions.SchemaError as exc:
        return [
            Violation(
                v.STRUCTURED_OUTPUT, where, f"the request's schema is not valid: {exc.message}"
            )
        ]
    return [
        Violation(v.STRUCTURED_OUTPUT, where, f"{json_path(e.absolute_path)}: {e.message}")
        for e in errors[:5]
    ]


@_never_raises
def check_reply_for(request: Any, message: Any) -> list[Violation]:
    """A reply against its request: every ``tool_use`` calls an offered tool with an input its
    ``input_schema`` accepts, and a structured reply validates (``check_structured_output``)."""
    out = check_structured_output(request, message)
    tools = {
        t.get("name"): t
        for t in (request.get("tools") or [] if isinstance(request, dict) else [])
        if isinstance(t, dict)
    }
    content = message.get("content") if isinstance(message, dict) else None
    for i, block in enumerate(content if isinstance(content, list) else []):
        if not isinstance(block, dict) or block.get("type") != p.BLOCK_TOOL_USE:
            continue
        tool = tools.get(block.get("name"))
        if tool is None:
            out.append(
                Violation(
                    v.TOOL_NOT_OFFERED,
                    f"$.content[{i}].name",
                    f"{block.get('name')!r} is not among the tools offered",
                )
            )
            continue
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            continue
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            errors = list(
                cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(block.get("input"))
            )
        except (jsonschema.exceptions.SchemaError, ValueError, LookupError):
            continue  # (a schema the validator cannot use says nothing about the input)
        out += [
            Violation(
                v.TOOL_INPUT_SCHEMA,
                f"$.content[{i}].input{json_path(e.absolute_path)[1:]}",
                e.message,
            )
            for e in errors[:5]
        ]
    return out
