"""The inspector's routes without a browser: the page and its files, the list summaries, one
exchange with its stream events, and an exchange downloaded as a cassette interaction."""

from __future__ import annotations

import dataclasses
import http.client as httpc
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mockserver.cassettes import cassette as cas
from mockserver.cassettes.checks import lint_file
from mockserver.config import Settings, default_cassettes_dir
from mockserver.profile import load_profile
from mockserver.server.admin.inspector import ASSETS, CSP
from mockserver.server.journal import Exchange
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p
from mockserver.wire.sse import Event
from mockserver.wire.written import WrittenStream

MODEL = "deepseek-v3-anthropic"
API = {p.H_API_KEY: "sk-inspector-api", p.H_VERSION: "2023-06-01"}
TOKEN = "t0ken-for-the-inspector"


class Http:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def __call__(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = httpc.HTTPConnection(self.host, self.port, timeout=10)
        try:
            data = None if body is None else json.dumps(body).encode()
            hdrs = {"content-type": p.CT_JSON, **(headers or {})}
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw

    def get_json(self, path: str, **headers: str) -> Any:
        status, _, raw = self("GET", path, headers=headers)
        assert status == 200, raw
        return json.loads(raw)

    def message(self, text: str, *, fault: str | None = None, **extra: Any) -> int:
        body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
        headers = {**API, **({p.H_FAULT: fault} if fault else {})}
        try:
            status, _, _ = self("POST", p.PATH_MESSAGES, {**body, **extra}, headers)
        except (httpc.RemoteDisconnected, httpc.IncompleteRead, ConnectionError):
            return -1  # a disconnect fault
        return status


@pytest.fixture(scope="module")
def server() -> Any:
    thread = ServerThread(Settings(port=0, mode="auto")).start()
    yield thread
    thread.stop()


@pytest.fixture
def http(server: ServerThread) -> Http:
    return Http(server.base_url)


def journal(server: ServerThread) -> list[Exchange]:
    assert server.state is not None
    return server.state.journal.all()


def test_the_page_and_its_files_are_served_with_a_strict_policy(http: Http) -> None:
    for path in ("/_mockserver/ui", "/_mockserver/ui/"):
        status, headers, raw = http("GET", path)
        assert status == 200
        assert headers["content-type"].startswith("text/html")
        assert headers["content-security-policy"] == CSP and "script-src 'self'" in CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert b'<script src="/_mockserver/ui/app.js" defer></script>' in raw
        assert b"<script>" not in raw and b"style=" not in raw  # nothing inline
    for name, content_type in ASSETS.items():
        status, headers, raw = http("GET", f"/_mockserver/ui/{name}")
        assert status == 200 and raw and headers["content-type"] == content_type
    assert http("GET", "/_mockserver/ui/secrets.txt")[0] == 404
    assert http("GET", "/_mockserver/ui/..%2Fadmin.py")[0] == 404


def test_summaries_follow_the_journal(server: ServerThread, http: Http) -> None:
    http("DELETE", "/_mockserver/journal")
    assert http.get_json("/_mockserver/ui/api/exchanges") == {
        "exchanges": [],
        "oldest_id": None,
        "count": 0,
    }
    assert http.message("<b>bold</b> question about get_weather") == 200
    assert http.message("second", fault="overloaded") == 529
    first, second = journal(server)[-2:]
    data = http.get_json("/_mockserver/ui/api/exchanges")
    assert data["oldest_id"] == first.id and data["count"] == 2
    row = data["exchanges"][0]
    assert row["id"] == first.id and row["source"] == "synth" and row["status"] == 200
    assert row["prompt"] == "<b>bold</b> question about get_weather"  # as text: the page escapes
    answer = " ".join(first.response["content"][0]["text"].split())
    assert row["reply"] and answer.startswith(row["reply"].removesuffix("…"))
    usage = first.usage or {}
    assert (row["input_tokens"], row["output_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert row["cost_usd"] == first.cost_usd and not row["pending"]
    err = data["exchanges"][1]
    assert (err["status"], err["fault"], err["cost_usd"]) == (529, "overloaded", None)
    assert err["reply"].startswith("overloaded_error: ")
    since = http.get_json(f"/_mockserver/ui/api/exchanges?since_id={first.id}")
    assert [x["id"] for x in since["exchanges"]] == [second.id]
    assert http("GET", "/_mockserver/ui/api/exchanges?since_id=x")[0] == 400


def test_one_exchange_carries_its_stream_events(server: ServerThread, http: Http) -> None:
    # the shipped stream cassette, replayed: the events with their recorded at_ms
    body = {
        "model": MODEL,
        "max_tokens": 256,
        "stream": True,
        "messages": [{"role": "user", "content": "Write a haiku about the sea."}],
    }
    assert http("POST", p.PATH_MESSAGES, body, API)[0] == 200
    ex = journal(server)[-1]
    assert ex.source == "replay"
    one = http.get_json(f"/_mockserver/journal/{ex.id}")
    recorded = cas.load(default_cassettes_dir() / "stream.yaml")
    events = recorded.interactions[0].response
    assert events.events is not None and events.at_ms is not None
    assert [(e["event"], e["at_ms"]) for e in one["events"]] == list(
        zip((e.name for e in events.events), events.at_ms, strict=True)
    )
    assert one["events"][0]["data"]["type"] == "message_start"
    # the journal listing has the same
    listed = http.get_json(f"/_mockserver/journal?since_id={ex.id - 1}&limit=1")
    assert listed["exchanges"][0]["events"] == one["events"]
    assert "written" not in one
    # a JSON reply has none
    assert http.message("no stream here") == 200
    assert http.get_json(f"/_mockserver/journal/{journal(server)[-1].id}")["events"] is None
    status, _, raw = http("GET", "/_mockserver/journal/999999")
    assert status == 404 and json.loads(raw)["error"]["type"] == p.NOT_FOUND


def test_written_stream_renders_what_reached_the_wire() -> None:
    events = (
        Event("message_start", '{"type":"message_start"}'),
        Event("ping", '{"type":"ping"}'),
        Event(None, "not json"),
    )
    stream = WrittenStream(events, (1.0, 2.5, 3.0))
    stream.sent_ms = [0.1, 0.2, 0.3]
    assert stream.to_json() == [
        {"event": "message_start", "data": {"type": "message_start"}, "at_ms": 1.0, "sent_ms": 0.1},
        {"event": "ping", "data": {"type": "ping"}, "at_ms": 2.5, "sent_ms": 0.2},
        {"event": None, "data": "not json", "at_ms": 3.0, "sent_ms": 0.3},
    ]
    cut = WrittenStream(events, None, disconnect_at=1)  # synthesized: nothing recorded
    assert cut.to_json() == [
        {
            "event": "message_start",
            "data": {"type": "message_start"},
            "at_ms": None,
            "sent_ms": None,
        }
    ]


@pytest.mark.parametrize(
    ("stream", "fault", "status"),
    [
        (False, None, 200),
        (True, None, 200),
        (True, "disconnect;at=3", -1),
        (True, "error_event;at=4", 200),
        (False, "overloaded", 529),
    ],
)
def test_download_is_a_loadable_lint_clean_interaction(
    server: ServerThread, http: Http, tmp_path: Path, stream: bool, fault: str | None, status: int
) -> None:
    text = f"freeze me ({stream}, {fault})"
    assert http.message(text, fault=fault, stream=stream) == status
    ex = journal(server)[-1]
    code, headers, raw = http("GET", f"/_mockserver/journal/{ex.id}/interaction")
    assert code == 200
    assert headers["content-type"].startswith("application/yaml")
    assert headers["content-disposition"] == f'attachment; filename="exchange-{ex.id}.yaml"'
    path = tmp_path / "frozen.yaml"
    path.write_bytes(raw)
    frozen = cas.loads(raw, str(path))
    assert lint_file(path) == []
    (inter,) = frozen.interactions
    assert inter.request.body == ex.body and inter.request.path == p.PATH_MESSAGES
    assert set(inter.request.headers) <= set(cas.REQUEST_HEADERS)
    resp = inter.response
    assert resp.status == ex.status and resp.headers[p.H_REQUEST_ID] == ex.request_id
    if stream and fault != "overloaded":
        assert ex.written is not None and resp.events is not None
        assert [e.wire() for e in resp.events] == [e.wire() for e in ex.written.written()]
        assert resp.disconnected is (fault is not None and fault.startswith("disconnect"))
    else:
        assert resp.json_body() == ex.response
    # a replay-only server answers the same request from the file as the exchange was answered
    replay = ServerThread(Settings(port=0, mode="replay", cassettes=path)).start()
    try:
        again = Http(replay.base_url)
        assert again.message(text, stream=stream) == status
        assert replay.state is not None
        (seen,) = replay.state.journal.all()
        assert seen.source == "replay" and seen.status == ex.status
        if ex.written is not None and seen.written is not None:
            assert [e.wire() for e in seen.written.written()] == [
                e.wire() for e in ex.written.written()
            ]
        else:
            assert seen.response == ex.response
    finally:
        replay.stop()


def test_admin_token_guards_the_data_but_not_the_page() -> None:
    thread = ServerThread(Settings(port=0, mode="synth", admin_token=TOKEN)).start()
    try:
        http = Http(thread.base_url)
        assert http("GET", "/_mockserver/ui")[0] == 200  # static, no data: the page explains
        assert http("GET", "/_mockserver/ui/app.js")[0] == 200
        assert http.message("guarded") == 200
        for path in (
            "/_mockserver/ui/api/exchanges",
            "/_mockserver/journal/1",
            "/_mockserver/journal/1/interaction",
        ):
            status, _, raw = http("GET", path)
            assert status == 401 and json.loads(raw)["error"]["type"] == p.AUTHENTICATION
            assert http("GET", path, headers={p.H_ADMIN_TOKEN: TOKEN})[0] == 200
            sep = "&" if "?" in path else "?"
            assert http("GET", f"{path}{sep}token={TOKEN}")[0] == 200
            assert http("GET", f"{path}{sep}token=wrong")[0] == 401
    finally:
        thread.stop()


@pytest.mark.parametrize("ping", [True, False])
def test_a_synthesized_stream_is_rebuilt_exactly_as_it_was_written(ping: bool) -> None:
    """The journal keeps a synthesized stream's message, not its events; rebuilt, they are
    byte for byte what the client received."""
    profile = dataclasses.replace(load_profile(), ping=ping)
    thread = ServerThread(Settings(port=0, mode="synth", profile=profile)).start()
    try:
        http = Http(thread.base_url)
        tool = {"name": "get_weather", "input_schema": {"type": "object"}}
        bodies = [
            {"messages": [{"role": "user", "content": "A streamed answer, please."}]},
            {"messages": [{"role": "user", "content": "Call get_weather."}], "tools": [tool]},
        ]
        for extra in bodies:
            body = {"model": MODEL, "max_tokens": 128, "stream": True, **extra}
            status, _, raw = http("POST", p.PATH_MESSAGES, body, API)
            assert status == 200
            assert thread.state is not None
            ex = thread.state.journal.all()[-1]
            assert ex.written is not None and ex.written.at_ms is None
            assert b"".join(e.wire() for e in ex.written.written()) == raw
            assert any(e.name == "ping" for e in ex.written.events) is ping
    finally:
        thread.stop()


def test_a_recorded_stream_keeps_its_events_with_their_offsets(tmp_path: Path) -> None:
    upstream = ServerThread(Settings(port=0, mode="synth")).start()
    recorder = ServerThread(
        Settings(port=0, mode="record", upstream=upstream.base_url, cassettes=tmp_path)
    ).start()
    try:
        body = {
            "model": MODEL,
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "Record this stream."}],
        }
        status, _, raw = Http(recorder.base_url)("POST", p.PATH_MESSAGES, body, API)
        assert status == 200
        assert recorder.state is not None
        (ex,) = recorder.state.journal.all()
        assert ex.source == "record" and ex.written is not None
        assert b"".join(e.wire() for e in ex.written.written()) == raw
        at = ex.written.at_ms
        assert at is not None and len(at) == len(ex.written.events)
        assert list(at) == sorted(at)
        rendered = Http(recorder.base_url).get_json(f"/_mockserver/journal/{ex.id}")["events"]
        assert [e["at_ms"] for e in rendered] == list(at)
    finally:
        recorder.stop()
        upstream.stop()
