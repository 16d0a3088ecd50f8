"""A shared journal shows exactly what a single server's shows: every kind of exchange,
turned into a record (``record_of``, the bytes on the wire spliced in) and read back
(``exchange_of``), gives the same admin JSON as the in-memory entry."""

from __future__ import annotations

import contextlib
import http.client
import json
from typing import Any

from mockserver.config import Settings
from mockserver.server.running import ServerThread
from mockserver.server.sharing.records import exchange_of, record_of
from mockserver.shared.sqlite_state import _with_id
from mockserver.wire import protocol as p

MODEL = "deepseek-v3-anthropic"
HEADERS = {p.H_API_KEY: "k", p.H_VERSION: "2023-06-01", p.H_CONTENT_TYPE: p.CT_JSON}


def send(url: str, body: Any, **headers: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        conn.request("POST", p.PATH_MESSAGES, data, {**HEADERS, **headers})
        with contextlib.suppress(http.client.HTTPException, ConnectionError):
            conn.getresponse().read()  # (a fault may drop the connection)
    finally:
        conn.close()


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def test_every_kind_of_exchange_reads_back_the_same() -> None:
    thread = ServerThread(Settings(port=0, mode="auto")).start()
    try:
        url = thread.base_url
        send(url, ask("Say hello in one short sentence."))  # replayed JSON
        send(url, ask("Say hello in one short sentence.", stream=True))  # replayed, as a stream
        send(url, ask("héllo wörld ✓ synth"))  # synthesized JSON, non-ASCII
        send(url, ask("a synthesized stream", stream=True))
        send(url, ask("a stream cut", stream=True), **{p.H_FAULT: "disconnect;at=3"})
        send(url, ask("an error event", stream=True), **{p.H_FAULT: "error_event;at=2"})
        send(url, ask("busy"), **{p.H_FAULT: "overloaded"})
        send(url, b"{not json")  # a body that does not parse
        send(url, {"model": MODEL, "messages": "x"})  # an invalid one
        send(url, "\ufeff".encode() + json.dumps(ask("with a BOM")).encode())
        assert thread.state is not None
        exchanges = thread.state.journal.all()
    finally:
        thread.stop()
    assert len(exchanges) == 10
    for ex in exchanges:
        record = record_of(ex)
        back = exchange_of(_with_id(ex.id, record))
        assert back.to_json() == ex.to_json(), (ex.id, ex.source, ex.fault)
        json.loads(record)  # (a record is JSON by itself, without its id too)
