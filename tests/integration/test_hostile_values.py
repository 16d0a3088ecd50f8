"""Values that reached a 500 once (lone surrogates, integers past the float range, non-finite
numbers, wrong types where the prompt-cache layout or the tokenizer read them, header bytes
that are not UTF-8): each is a 400 ``invalid_request_error`` in the endpoint's wording that
names where the bad value is, on ``/v1/messages`` and ``count_tokens``, and the journal and
the inspector still read afterwards."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from mockserver.config import Settings
from mockserver.contract import conformance as c
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

MODEL = "deepseek-v3-anthropic"
HEADERS = {"x-api-key": "sk-hostile", "anthropic-version": "2023-06-01", "content-type": p.CT_JSON}
ROUTES = (p.PATH_MESSAGES, p.PATH_COUNT_TOKENS)


@pytest.fixture(scope="module", params=["auto", "replay"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    thread = ServerThread(Settings(port=0, mode=request.param)).start()
    try:
        yield thread
    finally:
        thread.stop()


def send(server: ServerThread, method: str, path: str, body: bytes | None) -> tuple[int, Any]:
    host, port = server.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body, HEADERS)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(data)


def body_text(**fields: str) -> bytes:
    """A request body as JSON text, with ``fields`` spliced in raw (``"model": "x"`` etc.)."""
    parts = {
        "model": json.dumps(MODEL),
        "max_tokens": "16",
        "messages": '[{"role":"user","content":"hi"}]',
        **fields,
    }
    return ("{" + ",".join(f'"{k}":{v}' for k, v in parts.items()) + "}").encode(
        "utf-8", "surrogateescape"
    )


def assert_400(status: int, body: Any, *needles: str) -> str:
    assert status == 400, body
    assert c.check_error(body) == [] and body["error"]["type"] == p.INVALID_REQUEST, body
    message: str = body["error"]["message"]
    for needle in needles:
        assert needle in message, message
    return message


# --- lone surrogates, as JSON escapes and as raw bytes -------------------------------------

SURROGATE_ESCAPES = {
    "model": ({"model": '"\\ud800"'}, "model"),
    "message text": ({"messages": '[{"role":"user","content":"a\\udfffb"}]'}, "messages.0.content"),
    "text block": (
        {"messages": '[{"role":"user","content":[{"type":"text","text":"\\udc00"}]}]'},
        "messages.0.content.0.text",
    ),
    "system": ({"system": '"x\\ud83d"'}, "system"),
    "tool schema value": (
        {
            "tools": '[{"name":"t","input_schema":{"type":"object",'
            '"properties":{"a":{"type":"string","description":"\\ud800"}}}}]'
        },
        "tools.0.input_schema.properties.a.description",
    ),
    "tool schema key": (
        {"tools": '[{"name":"t","input_schema":{"type":"object","properties":{"\\ud800":{}}}}]'},
        "tools.0.input_schema.properties",
    ),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", sorted(SURROGATE_ESCAPES))
def test_lone_surrogate_escapes_are_a_400_naming_the_path(
    server: ServerThread, route: str, case: str
) -> None:
    fields, where = SURROGATE_ESCAPES[case]
    status, body = send(server, "POST", route, body_text(**fields))
    assert_400(status, body, "lone surrogate", where)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("where", ["model", "messages"])
def test_raw_surrogate_bytes_are_not_utf8(server: ServerThread, route: str, where: str) -> None:
    raw = body_text(model='"deepseek"', messages='[{"role":"user","content":"hi"}]')
    target = b'"deepseek"' if where == "model" else b'"hi"'
    raw = raw.replace(target, target[:-1] + b"\xed\xa0\x80" + b'"')
    status, body = send(server, "POST", route, raw)
    assert_400(status, body, "not valid UTF-8")


def test_a_valid_surrogate_pair_is_fine(server: ServerThread) -> None:
    raw = body_text(messages='[{"role":"user","content":"smile \\ud83d\\ude00"}]')
    status, body = send(server, "POST", p.PATH_COUNT_TOKENS, raw)
    assert status == 200 and body["input_tokens"] > 0, body


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["temperature", "top_p"])
@pytest.mark.parametrize("digits", [30, 400])
def test_integers_past_the_float_range_are_out_of_range(
    server: ServerThread, field: str, digits: int
) -> None:
    status, body = send(server, "POST", p.PATH_MESSAGES, body_text(**{field: "1" + "0" * digits}))
    assert_400(status, body, f"{field}: Input should be less than or equal to")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("temperature", "NaN", "NaN is not a JSON value"),
        ("metadata", '{"x": Infinity}', "Infinity is not a JSON value"),
        ("top_k", "-Infinity", "-Infinity is not a JSON value"),
        ("temperature", "1e999", "number 1e999 is out of range"),
        ("extra", "-1" + "0" * 400 + ".5", "is out of range"),
    ],
)
def test_non_finite_numbers_are_not_json(
    server: ServerThread, route: str, field: str, value: str, needle: str
) -> None:
    status, body = send(server, "POST", route, body_text(**{field: value}))
    assert_400(status, body, "not valid JSON", needle)


def test_huge_integers_where_any_json_goes_are_served(server: ServerThread) -> None:
    big = "1" + "0" * 400
    raw = body_text(metadata='{"user_id": "u"}', extra=f'{{"n": {big}}}', top_k=big)
    status, body = send(server, "POST", p.PATH_COUNT_TOKENS, raw)
    assert status == 200, body


# --- wrong types where the cache layout and the tokenizer look --------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"model": "5"}, "model: Input should be a valid string"),
        ({"model": '{"a": 1}'}, "model: Input should be a valid string"),
        ({"model": "null"}, "model: Input should be a valid string"),
        ({"messages": '[{"role":"user","content":5}]'}, "messages.0.content"),
        ({"messages": '[{"role":"user","content":[5]}]'}, "messages.0.content.0"),
        ({"messages": '[{"role":"user","content":[{"type":"text","text":5}]}]'}, "text"),
        ({"system": "5"}, "system"),
        ({"system": '[{"type":"text","text":{"a":1}}]'}, "system.0.text"),
        ({"tools": '[{"name":"t","input_schema":5}]'}, "tools.0.custom.input_schema"),
        ({"tools": '[{"name":5,"input_schema":{"type":"object"}}]'}, "tools.0.custom.name"),
    ],
)
def test_wrong_types_are_field_errors(
    server: ServerThread, route: str, fields: dict[str, str], needle: str
) -> None:
    status, body = send(server, "POST", route, body_text(**fields))
    assert_400(status, body, needle)


@pytest.mark.parametrize(
    "schema",
    [
        '{"type":"object","properties":5}',
        '{"type":"object","properties":{"a":5}}',
        '{"type":"object","properties":{"a":{"type":7}},"required":[1,null]}',
        '{"type":"object","$ref":"#/nope","properties":{"a":{"$ref":5}}}',
    ],
)
def test_odd_input_schemas_get_an_answer(server: ServerThread, schema: str) -> None:
    tools = f'[{{"name":"t","input_schema":{schema}}}]'
    for route in ROUTES:
        status, body = send(server, "POST", route, body_text(tools=tools))
        assert status in (200, 400, 404), body  # (replay mode: a miss is a 404)
        if status != 200:
            assert c.check_error(body) == []


# --- header bytes that are not UTF-8 -----------------------------------------------------------


def raw_request(server: ServerThread, head: bytes, body: bytes) -> bytes:
    host, port = server.base_url.removeprefix("http://").split(":")
    data = (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + head
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        out = bytearray()
        while chunk := sock.recv(65536):
            out += chunk
    return bytes(out)


@pytest.mark.parametrize(
    "header",
    [
        b"x-api-key: sk-\xff\xfe\r\nanthropic-version: 2023-06-01",
        b"x-api-key: k\r\nanthropic-version: 2023-06-01\r\nanthropic-beta: \xc3",
        b"x-api-key: k\r\nanthropic-version: \xed\xa0\x80",
        b"x-api-key: k\r\nanthropic-version: 2023-06-01\r\nx-mockserver-fault: \xff",
    ],
)
def test_header_bytes_that_are_not_utf8_leave_the_journal_readable(
    server: ServerThread, header: bytes
) -> None:
    out = raw_request(server, header, body_text())
    status = int(out.split(b" ", 2)[1])
    assert status in (200, 400, 404), out[:300]
    for path in (f"{p.ADMIN_PREFIX}/journal", f"{p.ADMIN_PREFIX}/ui/api/exchanges"):
        code, journal = send(server, "GET", path, None)
        assert code == 200 and journal["exchanges"], journal
