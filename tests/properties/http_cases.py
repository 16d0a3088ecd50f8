"""What the HTTP fuzz tests (``test_http_fuzz.py``) send: routes, methods, content types,
fault specs, and the Hypothesis strategies that build requests from them."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from mockserver.contract import strategies as ms
from mockserver.wire import protocol as p

KEY = "sk-fuzz-0123456789"
MODEL = ms.DEFAULT_MODEL
ROUTES = (
    p.PATH_MESSAGES,
    p.PATH_COUNT_TOKENS,
    p.PATH_MODELS,
    f"{p.PATH_MODELS}/{MODEL}",
    f"{p.PATH_MODELS}/no-such-model",
    "/v1/chat/completions",
    "/",
    *(
        f"{p.ADMIN_PREFIX}/{name}"
        for name in ("health", "journal", "faults", "cache", "usage", "reload", "nope")
    ),
)
#: every method aiohttp's HTTP parser accepts (others are framing errors: test_bytes_...)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND")
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "text/event-stream",
    "",
)
#: fault specs: valid ones (small parameters, so nothing stalls long) and malformed ones
FAULTS = (
    "rate_limit",
    "overloaded;times=1",
    "api_error",
    "status;code=418",
    "status;code=503",
    "error_event;at=1",
    "disconnect;at=2",
    "stall;ms=5",
    "keepalive;n=2",
    "rechunk;seed=3",
    "disconnect;at=headers",
    "bogus",
    "stall",
    "stall;ms=-1",
    "error_event;at=x",
    "status;code=99",
    "rate_limit;retry_after=abc",
    ";;;",
    "rate_limit,",
)


# --- strategies -------------------------------------------------------------------------------

routes = st.sampled_from(ROUTES)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_docs = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
#: keys of real requests, so arbitrary JSON objects often look almost like one
request_keys = st.sampled_from(
    (
        "model",
        "max_tokens",
        "messages",
        "stream",
        "system",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "metadata",
        "thinking",
        "role",
        "content",
        "type",
        "text",
    )
)
requestish = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(request_keys, st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=25,
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)
query_text = st.text("abcdefghijklmnopqrstuvwxyz0123456789_=&%-+.~", max_size=30)


Path = tuple[str | int, ...]


def _paths(doc: Any, prefix: Path = ()) -> Iterator[Path]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


def _retype(value: Any) -> list[Any]:
    """Values of another JSON type than ``value`` (and edge values of its own type)."""
    out: list[Any] = [None, True, 0, -1, 2**64, 1.5, "", "x", [], {}]
    if isinstance(value, str):
        out += [value * 50, value + "\x00", value.upper(), " "]
    if isinstance(value, int) and not isinstance(value, bool):
        out += [value + 1, -value, str(value), float(value)]
    if isinstance(value, list):
        out += [value * 3, value[:1], [value]]
    if isinstance(value, dict):
        out += [list(value.values()), {**value, "unexpected_field": 1}]
    return out


TRICKY = ("a", "b", "z", " ", "é", "中", "😀", '"', "\\", "\n", "\x00", "\u2028", "{", "\ufe0f")
words = st.text(st.sampled_from(TRICKY), min_size=1, max_size=12).map(
    lambda s: s if s.strip() else s + "x"
)


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request, cheap to draw (``ms.message_requests`` is richer but ~10x slower; the
    contract kit's own properties cover it): optional tool loop, system, sampling, stream."""
    tools = draw(st.booleans())
    turns: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 2))):
        turns.append({"role": "user", "content": draw(words)})
        reply: list[dict[str, Any]] = [{"type": "text", "text": draw(words)}]
        if tools and draw(st.booleans()):
            call = {"type": "tool_use", "id": f"toolu_{i}", "name": "lookup", "input": {"q": "x"}}
            reply.append(call)
            turns.append({"role": "assistant", "content": reply})
            result = {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": draw(words)}
            turns.append({"role": "user", "content": [result]})
            turns.append({"role": "assistant", "content": draw(words)})
        else:
            turns.append({"role": "assistant", "content": reply})
    turns.append({"role": "user", "content": [{"type": "text", "text": draw(words)}]})
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": draw(st.integers(1, 8192)),
        "messages": turns,
    }
    extras = draw(st.integers(0, 63))
    if extras & 1:
        body["system"] = draw(words)
    if extras & 2:
        body["stream"] = True
    if extras & 4:
        body["temperature"] = 0.5
    if extras & 8:
        body["stop_sequences"] = ["zz"]
    if extras & 16:
        body["metadata"] = {"user_id": "u1"}
    if tools:
        schema = {"type": "object", "properties": {"q": {"type": "string"}}}
        body["tools"] = [{"name": "lookup", "description": "find", "input_schema": schema}]
        if extras & 32:
            body["tool_choice"] = {"type": "tool", "name": "lookup"}
    return body


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid request with exactly one field mutated (the mutation, described)."""
    body = draw(valid_requests())
    paths = list(_paths(body))
    where = draw(st.sampled_from(paths))
    parent: Any = body
    for step in where[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(("delete", "retype", "arbitrary", "add_key", "duplicate")))
    if not where:  # the whole body
        if action == "add_key":
            body[draw(st.text(max_size=8))] = draw(json_leaves)
            return body, "add top-level key"
        return body, "unchanged"
    last = where[-1]
    current = parent[last]
    if action == "delete":
        del parent[last]
    elif action == "retype":
        parent[last] = draw(st.sampled_from(_retype(current)))
    elif action == "arbitrary":
        parent[last] = draw(json_docs)
    elif action == "add_key" and isinstance(current, dict):
        current[draw(st.one_of(request_keys, st.text(max_size=8)))] = draw(json_leaves)
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(int(last), copy.deepcopy(current))
    else:
        parent[last] = None
    return body, f"{action} at {where}"


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


#: JSON Schema keywords, for arbitrary (often invalid) tool schemas
SCHEMA_KEYS = (
    "type",
    "properties",
    "required",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "enum",
    "const",
    "$ref",
    "$defs",
    "anyOf",
    "oneOf",
    "allOf",
    "pattern",
    "format",
    "additionalProperties",
    "minProperties",
)
schema_leaves = st.one_of(
    json_leaves,
    st.sampled_from(("object", "string", "integer", "number", "array", "boolean", "null")),
    st.sampled_from(("#", "#/$defs/a", "#/nope", "http://example.invalid/s", "(", "date")),
    st.lists(st.sampled_from(("a", "b", "path")), max_size=3),
)
schemas = st.recursive(
    schema_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(SCHEMA_KEYS), st.sampled_from("abp")), inner, max_size=5
        ),
    ),
    max_leaves=15,
)


# --- hostile values: what a fuzzer from outside sends ------------------------------------------


class Raw:
    """Bytes spliced into the encoded body as they are (not a JSON value of Python's):
    ``NaN``, ``1e999``, invalid UTF-8 inside a string."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Raw({self.data!r})"


#: values every JSON path may get: each JSON type, lone surrogates, huge and non-finite
#: numbers, deep nesting, invalid UTF-8; with whether the endpoint must refuse the body
#: wherever the value sits (True) or may accept it at some paths (False)
HOSTILE: tuple[tuple[Any, bool], ...] = (
    (None, False),
    (True, False),
    (0, False),
    (-1, False),
    (1.5, False),
    ("", False),
    ("x", False),
    ([], False),
    ({}, False),
    ([{"type": "text", "text": "x"}], False),
    ({"type": "text", "text": "x"}, False),
    ("\ud800", True),
    ("a\udfffb", True),
    ("\udc80", True),
    ("\ud83d", True),
    (10**30, False),
    (-(10**30), False),
    (10**400, False),
    (2**64, False),
    (Raw(b"NaN"), True),
    (Raw(b"Infinity"), True),
    (Raw(b"-Infinity"), True),
    (Raw(b"1e999"), True),
    (Raw(b"-1" + b"0" * 400 + b".5"), True),
    (Raw(b'"\xff\xfe"'), True),
    (Raw(b'"a\xc3"'), True),
    (Raw(b'"\xed\xa0\x80"'), True),
    (Raw(b"[" * 200 + b"]" * 200), True),
    (Raw(b'{"a":' * 150 + b"1" + b"}" * 150), True),
    (Raw(b"[" * 100 + b"]" * 100), False),
)


def hostile_dumps(doc: Any, ascii_only: bool) -> bytes:
    """``doc`` as JSON bytes with every ``Raw`` spliced in; lone surrogates as ``\\uXXXX``
    escapes (``ascii_only``) or as the raw surrogate bytes."""
    raws: list[bytes] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.data)
            return f"\x00RAW{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(doc), ensure_ascii=ascii_only)
    data = text.encode("utf-8", "surrogatepass")
    for i, raw in enumerate(raws):
        data = data.replace(f'"\\u0000RAW{i}\\u0000"'.encode(), raw)
    return data


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[bytes, bool, str]:
    """A valid request (plain, tools, tool loop, streaming) with one path given a hostile
    value, or one key added with it: ``(body bytes, must be refused, what was done)``."""
    body = draw(valid_requests())
    value, refuse = draw(st.sampled_from(HOSTILE))
    paths = list(_paths(body))
    where = draw(st.sampled_from(paths))
    if not where or draw(st.integers(0, 4)) == 0:  # a new key in an object on the way
        parent: Any = body
        for step in where:
            parent = parent[step]
        if not isinstance(parent, dict):
            parent = body
        parent[draw(st.sampled_from(("extra", "model", "text", "\ud800", "input")))] = value
        what = f"key added under {where}"
    else:
        parent = body
        for step in where[:-1]:
            parent = parent[step]
        parent[where[-1]] = value
        what = f"value at {where}"
    return hostile_dumps(body, draw(st.booleans())), refuse, f"{what}: {value!r}"[:200]


@st.composite
def hostile_fault_rules(draw: st.DrawFn) -> tuple[bytes, bool]:
    """An admin fault rule with one field (or a ``match.body`` value) hostile."""
    value, refuse = draw(st.sampled_from(HOSTILE))
    rule: dict[str, Any] = {"fault": "overloaded", "match": {"body": {"$.model": "m"}}}
    where = draw(st.sampled_from(("fault", "times", "match", "path", "model", "body", "extra")))
    if where in ("path", "model"):
        rule["match"][where] = value
    elif where == "body":
        rule["match"]["body"]["$.model"] = value
    else:
        rule[where] = value
    return hostile_dumps(rule, draw(st.booleans())), refuse


#: query strings with hostile percent-encodings and numbers, for every GET route
hostile_queries = st.sampled_from(
    (
        "?limit=%ED%A0%80",
        "?limit=1" + "0" * 400,
        "?limit=1e999",
        "?limit=NaN",
        "?after_id=%FF%FE",
        "?before_id=%ED%A0%80",
        "?since_id=" + "9" * 400,
        "?model=%ED%A0%80&path=%FF",
        "?status=1" + "0" * 30,
        "?%ED%A0%80=%C3",
    )
)
