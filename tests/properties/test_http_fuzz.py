"""HTTP fuzzing against a live server: whatever arrives, the answer is a success that passes the
contract checks or an error in the profile's envelope with a 4xx status.

One server per module (mode ``auto``: cassettes plus synthesis), one keep-alive connection.
Never allowed: a 5xx the request did not ask for (``x-mockserver-fault``), a traceback in a
body, a dead server.  Example budgets are explicit per test (the ``ci`` and ``dev`` profiles
run ``EXAMPLES`` in total, >= 2,000); the ``nightly`` profile (``make fuzz``) raises every
test to the profile's ``max_examples``.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from http_cases import (
    CONTENT_TYPES,
    FAULTS,
    KEY,
    METHODS,
    MODEL,
    SCHEMA_KEYS,
    dumps,
    header_text,
    hostile_fault_rules,
    hostile_queries,
    hostile_requests,
    json_docs,
    json_leaves,
    near_valid,
    query_text,
    requestish,
    routes,
    schemas,
    valid_requests,
)
from hypothesis import HealthCheck, given, settings, strategies as st

from mockserver.config import Settings
from mockserver.contract import conformance as c, strategies as ms
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

#: ci/dev budget; nightly raises each test to the profile's max_examples
_NIGHTLY = settings().max_examples  # the loaded profile's value


def budget(n: int) -> int:
    return max(n, _NIGHTLY) if _NIGHTLY > 1000 else n


BUDGETS = {
    "bytes": 350,
    "json": 350,
    "near_valid": 600,
    "kit": 100,
    "tool_schemas": 200,
    "count_tokens": 150,
    "methods": 250,
    "headers": 200,
    "admin": 250,
    "raw": 60,
    "hostile": 450,
    "hostile_admin": 80,
    "hostile_queries": 60,
}
EXAMPLES = sum(BUDGETS.values())
STATS: Counter[str] = Counter()


# --- the server and a keep-alive client -----------------------------------------------------


@dataclass
class Answer:
    status: int  # 0: the connection dropped before a status line
    headers: dict[str, str]
    body: bytes
    cut: bool


class Client:
    """One keep-alive ``http.client`` connection, reopened when the server closes it."""

    def __init__(self, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.conn: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
        return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> Answer:
        for attempt in (0, 1):
            conn = self._open()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionError) as exc:
                self.drop()
                # a keep-alive connection the server had closed: send once more
                if attempt == 0 and isinstance(exc, BrokenPipeError | ConnectionResetError):
                    continue
                return Answer(0, {}, b"", True)
            got = {k.lower(): v for k, v in resp.getheaders()}
            try:
                data, cut = resp.read(), False
            except http.client.IncompleteRead as exc:
                data, cut = bytes(exc.partial), True
            except ConnectionError:
                data, cut = b"", True
            if cut or resp.will_close:
                self.drop()
            return Answer(resp.status, got, data, cut)
        raise AssertionError("unreachable")


@dataclass
class Fuzz:
    server: ServerThread
    client: Client


@pytest.fixture(scope="module")
def fuzz() -> Iterator[Fuzz]:
    server = ServerThread(Settings(port=0, mode="auto")).start()
    client = Client(server.base_url)
    try:
        yield Fuzz(server, client)
    finally:
        client.drop()
        server.stop()


def _headers(content_type: str = "application/json", **extra: str) -> dict[str, str]:
    out = {"x-api-key": KEY, "anthropic-version": "2023-06-01", **extra}
    if content_type:
        out["content-type"] = content_type
    return out


# --- the property every answer must have ----------------------------------------------------


def _route(path: str) -> str:
    bare = path.split("?", 1)[0]
    if bare.startswith(p.ADMIN_PREFIX + "/"):
        return "admin"
    return {p.PATH_MESSAGES: "messages", p.PATH_COUNT_TOKENS: "count_tokens"}.get(bare, "other")


def check_answer(fz: Fuzz, method: str, path: str, headers: dict[str, str], ans: Answer) -> None:
    """The property: a conforming success, or a 4xx in the envelope; 5xx/drops only when asked."""
    fault = headers.get(p.H_FAULT, "")
    STATS[f"{ans.status // 100}xx"] += 1
    assert b"Traceback" not in ans.body and b'File "' not in ans.body, ans.body[:500]
    if ans.status == 0 or ans.cut:
        assert "disconnect" in fault, f"connection dropped, no disconnect asked: {ans}"
        return
    if ans.status >= 500:
        assert fault, f"{method} {path} -> {ans.status} without a fault asked: {ans.body[:500]!r}"
    if method == "HEAD":
        assert ans.body == b""
        return
    ctype = ans.headers.get("content-type", "")
    if ans.status >= 400:
        assert ctype.startswith(p.CT_JSON), (ans.status, ctype, ans.body[:300])
        body = json.loads(ans.body)
        assert c.check_error(body) == [], (body, c.check_error(body))
        assert c.error_dialect(body) == fz.server.settings.profile.dialect, body
        if path.split("?")[0] in (p.PATH_MESSAGES, p.PATH_COUNT_TOKENS) or not fault:
            assert "request_id" in body or fz.server.settings.profile.dialect != "anthropic"
        return
    assert ans.status == 200, ans
    route = _route(path)
    if ctype.startswith("text/event-stream"):
        assert route == "messages"
        complete = "error_event" not in fault
        violations = c.check_sse_bytes(ans.body, complete=complete)
        assert violations == [], (violations, ans.body[:1000])
        STATS["streams"] += 1
        return
    body = json.loads(ans.body)
    if route == "messages":
        assert c.check_message(body) == [], (c.check_message(body), body)
        STATS["messages"] += 1
    elif route == "count_tokens":
        assert c.check_count_tokens_response(body) == [], body
    elif route == "admin":
        assert isinstance(body, dict)
    else:
        assert c.check_models(body) == [], body


def send(fz: Fuzz, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
    ans = fz.client.request(method, path, body, headers)
    check_answer(fz, method, path, headers, ans)
    if _route(path) == "admin" and method not in ("GET", "HEAD"):
        # a fuzzed body may have been a valid fault rule: never let it leak into later examples
        cleanup = fz.client.request(
            "DELETE", f"{p.ADMIN_PREFIX}/faults", None, {"content-type": p.CT_JSON}
        )
        assert cleanup.status == 200
    return ans


# --- the fuzz tests ---------------------------------------------------------------------------


@settings(max_examples=budget(BUDGETS["bytes"]))
@given(
    route=routes,
    method=st.sampled_from(("POST", "POST", "POST", "GET", "PUT", "DELETE")),
    body=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=40).map(lambda b: b"{" + b),
        st.binary(max_size=40).map(lambda b: b'{"model":' + b),
        st.sampled_from((b"", b" ", b"\x00", b"\xff\xfe", b"null", b"[]", b"{}", b'"x"', b"1e999")),
    ),
    ctype=st.sampled_from(CONTENT_TYPES),
)
def test_arbitrary_bytes(fuzz: Fuzz, route: str, method: str, body: bytes, ctype: str) -> None:
    send(fuzz, method, route, body, _headers(ctype))


@settings(max_examples=budget(BUDGETS["json"]))
@given(
    route=st.sampled_from(
        (p.PATH_MESSAGES, p.PATH_MESSAGES, p.PATH_COUNT_TOKENS, f"{p.ADMIN_PREFIX}/faults")
    ),
    doc=st.one_of(json_docs, requestish),
    stream=st.booleans(),
)
def test_arbitrary_json(fuzz: Fuzz, route: str, doc: Any, stream: bool) -> None:
    if stream and isinstance(doc, dict):
        doc["stream"] = True
    send(fuzz, "POST", route, dumps(doc), _headers())


@settings(max_examples=budget(BUDGETS["near_valid"]))
@given(mutated=near_valid())
def test_near_valid_messages(fuzz: Fuzz, mutated: tuple[dict[str, Any], str]) -> None:
    body, _what = mutated
    send(fuzz, "POST", p.PATH_MESSAGES, dumps(body), _headers())


@settings(max_examples=budget(BUDGETS["kit"]))
@given(body=ms.message_requests(max_turns=2, max_text_len=20))
def test_contract_kit_requests_are_answered(fuzz: Fuzz, body: dict[str, Any]) -> None:
    """Valid requests from the contract kit (tool loops, tricky text): always a 200."""
    ans = send(fuzz, "POST", p.PATH_MESSAGES, dumps(body), _headers())
    assert ans.status == 200, ans.body[:500]


@settings(max_examples=budget(BUDGETS["tool_schemas"]))
@given(
    schema=st.dictionaries(st.sampled_from(SCHEMA_KEYS), schemas, max_size=4).map(
        lambda d: {**d, "type": "object"}  # (the request checks insist on this much)
    ),
    stream=st.booleans(),
    prompt=st.sampled_from(("hi", "read /tmp/x.txt")),
)
def test_fuzzed_tool_schemas(fuzz: Fuzz, schema: Any, stream: bool, prompt: str) -> None:
    """Arbitrary (often invalid) input schemas on a tool the model must call: the composer
    builds the tool's input from the schema, so it must cope with anything that gets past
    the request checks."""
    body = {
        "model": MODEL,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
        "tools": [{"name": "lookup", "input_schema": schema}],
        "tool_choice": {"type": "tool", "name": "lookup"},
    }
    send(fuzz, "POST", p.PATH_MESSAGES, dumps(body), _headers())


@settings(max_examples=budget(BUDGETS["count_tokens"]))
@given(mutated=near_valid())
def test_near_valid_count_tokens(fuzz: Fuzz, mutated: tuple[dict[str, Any], str]) -> None:
    body, _what = mutated
    body.pop("stream", None)
    send(fuzz, "POST", p.PATH_COUNT_TOKENS, dumps(body), _headers())


@settings(max_examples=budget(BUDGETS["methods"]))
@given(
    route=routes,
    method=st.sampled_from(METHODS),
    ctype=st.sampled_from(CONTENT_TYPES),
    body=st.one_of(st.none(), valid_requests().map(dumps)),
    query=st.one_of(st.just(""), query_text.map(lambda q: "?" + q)),
)
def test_wrong_content_types_and_methods(
    fuzz: Fuzz, route: str, method: str, ctype: str, body: bytes | None, query: str
) -> None:
    send(fuzz, method, route + query, body, _headers(ctype))


@settings(max_examples=budget(BUDGETS["headers"]))
@given(
    body=valid_requests(),
    auth=st.sampled_from(("x-api-key", "authorization", "both", "none")),
    key=st.one_of(st.just(KEY), header_text),
    scheme=st.sampled_from(("Bearer ", "bearer ", "Basic ", "", "Bearer")),
    version=st.one_of(st.sampled_from(("2023-06-01", "2026-10-21", "", "2020-01-01")), header_text),
    fault=st.one_of(st.none(), st.sampled_from(FAULTS), header_text),
    beta=st.one_of(st.none(), header_text),
    route=st.sampled_from((p.PATH_MESSAGES, p.PATH_COUNT_TOKENS, p.PATH_MODELS)),
)
def test_fuzzed_headers(
    fuzz: Fuzz,
    body: dict[str, Any],
    auth: str,
    key: str,
    scheme: str,
    version: str,
    fault: str | None,
    beta: str | None,
    route: str,
) -> None:
    headers = {"content-type": "application/json"}
    if auth in ("x-api-key", "both") and key:
        headers["x-api-key"] = key
    if auth in ("authorization", "both"):
        headers["authorization"] = (scheme + key).strip()
    if version:
        headers["anthropic-version"] = version
    if fault is not None and fault:
        headers[p.H_FAULT] = fault
    if beta:
        headers["anthropic-beta"] = beta
    if route == p.PATH_COUNT_TOKENS:
        body.pop("stream", None)
    method = "GET" if route == p.PATH_MODELS else "POST"
    send(fuzz, method, route, None if method == "GET" else dumps(body), headers)


@settings(max_examples=budget(BUDGETS["admin"]))
@given(
    name=st.one_of(
        st.sampled_from(("health", "journal", "faults", "cache", "usage", "reload")),
        st.text("abcdefghijklmnopqrstuvwxyz_/.%0123456789", max_size=12),
    ),
    method=st.sampled_from(METHODS),
    query=st.one_of(
        st.just(""),
        st.sampled_from(
            (
                "?limit=abc",
                "?limit=0",
                "?limit=-5",
                "?limit=1",
                "?status=x",
                "?status=200",
                "?since_id=-1",
                "?since_id=99999999999999999999999",
                "?source=synth&path=/v1/messages",
                "?token=wrong",
                "?model=%00",
            )
        ),
        query_text.map(lambda q: "?" + q),
    ),
    body=st.one_of(
        st.none(),
        st.binary(max_size=60),
        json_docs.map(dumps),
        st.fixed_dictionaries(
            {"fault": st.one_of(st.sampled_from(FAULTS), header_text)},
            optional={
                "times": st.one_of(st.integers(-3, 3), json_leaves),
                "probability": st.one_of(st.floats(-1, 2), json_leaves),
                "seed": json_leaves,
                "match": st.one_of(
                    json_docs,
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "path": st.one_of(st.text(max_size=10), json_leaves),
                            "model": st.one_of(st.text(max_size=10), json_leaves),
                            "body": st.one_of(
                                st.dictionaries(
                                    st.sampled_from(("$", "$.model", "$[", "$.a[0]", "x")),
                                    json_leaves,
                                    max_size=2,
                                ),
                                json_leaves,
                            ),
                        },
                    ),
                ),
            },
        ).map(dumps),
    ),
)
def test_admin_api(fuzz: Fuzz, name: str, method: str, query: str, body: bytes | None) -> None:
    send(fuzz, method, f"{p.ADMIN_PREFIX}/{name}{query}", body, _headers())


# --- hostile values at every path, on every route --------------------------------------------


@settings(max_examples=budget(BUDGETS["hostile"]))
@given(hostile=hostile_requests(), route=st.sampled_from((p.PATH_MESSAGES, p.PATH_COUNT_TOKENS)))
def test_hostile_values_at_every_path(
    fuzz: Fuzz, hostile: tuple[bytes, bool, str], route: str
) -> None:
    """Each JSON type, lone surrogates (escaped and raw), huge and non-finite numbers, deep
    nesting and invalid UTF-8, at any path of a valid request: never a 5xx; and a value no
    endpoint can take (a surrogate, NaN, 1e999, bytes that are not UTF-8, nesting past the
    limit) is a 400 wherever it sits."""
    raw, refuse, what = hostile
    ans = send(fuzz, "POST", route, raw, _headers())
    if refuse:
        assert ans.status == 400, (what, ans.status, ans.body[:300])
        STATS["hostile_refused"] += 1


@settings(max_examples=budget(BUDGETS["hostile_admin"]))
@given(rule=hostile_fault_rules())
def test_hostile_values_in_admin_bodies(fuzz: Fuzz, rule: tuple[bytes, bool]) -> None:
    raw, refuse = rule
    ans = send(fuzz, "POST", f"{p.ADMIN_PREFIX}/faults", raw, _headers())
    if refuse:
        assert ans.status == 400, (raw[:200], ans.status, ans.body[:300])


@settings(max_examples=budget(BUDGETS["hostile_queries"]))
@given(
    route=st.sampled_from(
        (
            p.PATH_MODELS,
            f"{p.PATH_MODELS}/{MODEL}",
            *(
                f"{p.ADMIN_PREFIX}/{n}"
                for n in ("journal", "usage", "health", "faults", "ui/api/exchanges")
            ),
        )
    ),
    query=hostile_queries,
)
def test_hostile_query_strings(fuzz: Fuzz, route: str, query: str) -> None:
    send(fuzz, "GET", route + query, None, _headers())


# --- bytes that are not HTTP at all ----------------------------------------------------------


def raw_exchange(base_url: str, data: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        out = bytearray()
        while chunk := sock.recv(65536):
            out += chunk
    return bytes(out)


@settings(max_examples=budget(BUDGETS["raw"]), suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(min_size=1, max_size=200),
        st.binary(max_size=80).map(lambda b: b"POST /v1/messages HTTP/1.1\r\n" + b + b"\r\n\r\n"),
        st.binary(max_size=80).map(
            lambda b: (
                b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: " + b + b"\r\n\r\n{}"
            )
        ),
        st.binary(max_size=80).map(lambda b: b"GET /" + b + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        st.sampled_from((b"FROB", b"CONNECT", b"get", b"PO ST")).map(
            lambda m: m + b" /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        ),
    )
)
def test_bytes_that_are_not_http(fuzz: Fuzz, data: bytes) -> None:
    """Garbage on the socket: a 4xx (aiohttp's own framing error, before our app sees a
    request, is plain text) or a closed connection; never a 5xx or a traceback."""
    out = raw_exchange(fuzz.server.base_url, data)
    STATS["raw"] += 1
    assert b"Traceback" not in out and b'File "' not in out, out[:500]
    for line in out.split(b"\r\n"):
        if line.startswith(b"HTTP/1."):
            status = int(line.split()[1])
            assert status < 500, out[:500]


def test_server_still_healthy_after_fuzzing(fuzz: Fuzz) -> None:
    t0 = time.monotonic()
    ans = fuzz.client.request("GET", f"{p.ADMIN_PREFIX}/health", None, {})
    assert ans.status == 200 and json.loads(ans.body)["status"] == "ok"
    assert time.monotonic() - t0 < 2
    fuzz.client.drop()  # a fresh connection works too
    body = dumps({"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    ans = fuzz.client.request("POST", p.PATH_MESSAGES, body, _headers())
    assert ans.status == 200 and c.check_message(json.loads(ans.body)) == []
    if STATS["2xx"] + STATS["4xx"] > 500:  # the fuzz tests ran in this session: coverage
        assert STATS["messages"] > 20 and STATS["streams"] > 20, STATS
        assert STATS["hostile_refused"] > 50, STATS
        assert STATS["4xx"] > 200, STATS
