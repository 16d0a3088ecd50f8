"""Faults against the official ``anthropic`` SDK: one test per row of the retry matrix
(PROTOCOL.md §8), the stream faults, and fault rules from the admin API and a config file.

Every retried fault carries a small ``retry_after_ms`` so the SDK does not back off for
0.5-8 s; the whole file runs in a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import anthropic._base_client as sdk_base
import httpx2
import pytest

from mockserver.cassettes import cassette as cas
from mockserver.config import Settings
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p
from mockserver.wire.sse import Event, decode_all, dumps
from mockserver.wire.streaming import unfold

MODEL = "deepseek-v3-anthropic"
# a string the SDK must reassemble across cuts inside multi-byte characters
PROMPT_UTF8 = "Grüße aus Köln — 日本語のテキスト 🙂 ünïcödé"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    thread = ServerThread(Settings(port=0, mode="synth")).start()
    yield thread
    thread.stop()


@pytest.fixture(autouse=True)
def fresh(server: ServerThread, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Clean faults and journal per test; afterwards: no server error logs, still healthy."""
    assert server.state is not None
    server.state.faults.clear()
    server.state.journal.clear()
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.DEBUG, logger="mockserver")
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()
    noisy = [
        r
        for r in caplog.get_records("call")
        if r.name.startswith(("aiohttp", "mockserver")) and r.levelno >= logging.WARNING
    ]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert admin(server, "GET", "health")["status"] == "ok"


_CLIENTS: list[anthropic.Anthropic] = []  # closed after each test


def client(server: ServerThread, **kw: Any) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 2)
    kw.setdefault("timeout", 5.0)
    c = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", **kw)
    _CLIENTS.append(c)
    return c


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def fault(spec: str) -> dict[str, Any]:
    return {"extra_headers": {p.H_FAULT: spec}}


def drain(stream: Any) -> None:
    for _ in stream:
        pass


def admin(server: ServerThread, method: str, name: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{server.base_url}{p.ADMIN_PREFIX}/{name}",
        data=data,
        method=method,
        headers={p.H_CONTENT_TYPE: p.CT_JSON},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def journal(server: ServerThread) -> list[dict[str, Any]]:
    exchanges: list[dict[str, Any]] = admin(server, "GET", "journal?path=/v1/messages")["exchanges"]
    return exchanges


def retry_counts(server: ServerThread) -> list[str]:
    return [ex["headers"].get(p.H_RETRY_COUNT, "") for ex in journal(server)]


def statuses(server: ServerThread) -> list[int]:
    return [ex["status"] for ex in journal(server)]


# --- the retry matrix (PROTOCOL.md §8), one test per row ----------------------------------


def test_529_then_200_one_retry(server: ServerThread) -> None:
    msg = client(server).messages.create(
        **ask("row 529"), **fault("overloaded;times=1;retry_after_ms=1")
    )
    assert msg.content and msg.stop_reason
    assert statuses(server) == [529, 200]
    assert retry_counts(server) == ["0", "1"]
    assert journal(server)[0]["fault"] == "overloaded;retry_after_ms=1;times=1"
    assert journal(server)[1]["fault"] is None


def test_overloaded_twice_then_success(server: ServerThread) -> None:
    msg = client(server).messages.create(
        **ask("twice"), **fault("overloaded;times=2;retry_after_ms=1")
    )
    assert msg.type == "message"
    assert statuses(server) == [529, 529, 200]
    assert retry_counts(server) == ["0", "1", "2"]


def test_429_retry_after_ms_is_honoured(server: ServerThread) -> None:
    t0 = time.monotonic()
    client(server).messages.create(**ask("ms"), **fault("rate_limit;retry_after_ms=5;times=2"))
    elapsed = time.monotonic() - t0
    first, second, third = journal(server)
    assert [first["status"], second["status"], third["status"]] == [429, 429, 200]
    assert first["response"]["error"]["type"] == p.RATE_LIMIT
    # the SDK's own backoff would wait >= 0.375 s per retry; 5 ms was used instead
    assert elapsed < 0.6
    assert 0.004 <= second["time"] - first["time"] < 0.3


class SleepSpy:
    """Stands in for the SDK module's ``time``: records retry sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if k[0] != "_"})
        fake.sleep = self.sleeps.append
        monkeypatch.setattr(sdk_base, "time", fake)


def sdk_version() -> tuple[int, ...]:
    return tuple(int(x) for x in anthropic.__version__.split(".")[:2])


def test_429_retry_after_120(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SleepSpy()
    spy.install(monkeypatch)
    client(server).messages.create(**ask("120"), **fault("rate_limit;retry_after=120;times=1"))
    assert statuses(server) == [429, 200]
    assert journal(server)[0]["headers"] is not None
    assert len(spy.sleeps) == 1
    if sdk_version() >= (1, 6):
        # anthropic >= 1.6.0 obeys any retry-after ("just do what it says"); PROTOCOL.md §8
        # describes the older SDKs, which ignored values above 60 s and backed off instead
        assert spy.sleeps == [120.0]
    else:  # pragma: no cover - older SDKs
        assert 0.375 <= spy.sleeps[0] <= 0.5


def test_500_three_times_then_internal_server_error(server: ServerThread) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        client(server).messages.create(**ask("500"), **fault("api_error;retry_after_ms=1"))
    assert info.value.status_code == 500 and info.value.type == p.API_ERROR
    assert statuses(server) == [500, 500, 500]
    assert retry_counts(server) == ["0", "1", "2"]


def test_503_should_retry_false_is_not_retried(server: ServerThread) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        client(server).messages.create(
            **ask("503"), **fault("unavailable;should_retry=false;retry_after_ms=1")
        )
    assert info.value.status_code == 503
    assert info.value.response.headers[p.H_SHOULD_RETRY] == "false"
    assert statuses(server) == [503]


def test_400_should_retry_true_is_retried(server: ServerThread) -> None:
    msg = client(server).messages.create(
        **ask("400"), **fault("status;code=400;should_retry=true;retry_after_ms=1;times=1")
    )
    assert msg.type == "message"
    assert statuses(server) == [400, 200]
    assert retry_counts(server) == ["0", "1"]


@pytest.mark.parametrize(
    ("spec", "status", "error"),
    [
        ("unauthorized", 401, anthropic.AuthenticationError),
        ("status;code=403", 403, anthropic.PermissionDeniedError),
        ("status;code=404", 404, anthropic.NotFoundError),
        ("too_large", 413, anthropic.APIStatusError),
        ("status;code=422", 422, anthropic.UnprocessableEntityError),
    ],
)
def test_4xx_raised_immediately(
    server: ServerThread, spec: str, status: int, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        client(server).messages.create(**ask(f"4xx {spec}"), **fault(spec + ";retry_after_ms=1"))
    assert isinstance(info.value, anthropic.APIStatusError)
    assert info.value.status_code == status
    assert statuses(server) == [status]


def test_in_stream_error_event(server: ServerThread) -> None:
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client(server).messages.stream(**ask("midway"), **fault("error_event;at=4")) as stream,
    ):
        for event in stream:
            seen.append(event.type)
    assert info.value.status_code == 200
    assert info.value.type == "overloaded_error"
    assert "content_block_delta" in seen  # the error came after real events
    assert statuses(server) == [200]  # not retried
    assert journal(server)[0]["fault"] == "error_event;at=4"


def test_in_stream_error_event_type(server: ServerThread) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        drain(
            client(server).messages.create(
                **ask("typed", stream=True), **fault("error_event;at=1;type=api_error")
            )
        )
    assert info.value.status_code == 200 and info.value.type == "api_error"


def test_disconnect_before_headers_is_retried(server: ServerThread) -> None:
    admin(server, "DELETE", "usage")
    msg = client(server).messages.create(**ask("reset"), **fault("disconnect;at=headers;times=1"))
    assert msg.type == "message"
    assert retry_counts(server) == ["0", "1"]
    dropped, answered = journal(server)
    assert dropped["fault"] == "disconnect;at=headers;times=1"
    # the journal says what the client got: no status, no usage, nothing charged
    assert (dropped["status"], dropped["disconnected"]) == (0, True)
    assert dropped["usage"] is None and dropped["cost_usd"] is None
    assert (answered["status"], answered["disconnected"]) == (200, False)
    totals = admin(server, "GET", "usage")
    assert totals["requests"] == 1  # the answered attempt only
    assert totals["output_tokens"] == answered["usage"]["output_tokens"]


def test_disconnect_before_headers_gives_up(server: ServerThread) -> None:
    with pytest.raises(anthropic.APIConnectionError) as info:
        client(server, max_retries=1).messages.create(
            **ask("gone"), **fault("disconnect;at=headers")
        )
    assert not isinstance(info.value, anthropic.APITimeoutError)
    assert retry_counts(server) == ["0", "1"]


def test_stall_longer_than_timeout(server: ServerThread) -> None:
    t0 = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        client(server, max_retries=1, timeout=0.3).messages.create(
            **ask("slow"), **fault("stall;ms=3000")
        )
    assert time.monotonic() - t0 < 2.5  # two 0.3 s attempts and one backoff, not 3 s stalls
    assert retry_counts(server) == ["0", "1"]


# --- stream faults ------------------------------------------------------------------------


def test_disconnect_mid_stream_surfaces_not_retried(server: ServerThread) -> None:
    seen: list[str] = []
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        client(server).messages.stream(**ask("cut"), **fault("disconnect;at=4")) as stream,
    ):
        for event in stream:
            seen.append(event.type)
    # events 0..3 arrived (message_start, content_block_start, ping, one delta), then EOF
    assert seen[:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert statuses(server) == [200]
    (cut,) = journal(server)
    assert cut["disconnected"] is True
    assert [e["event"] for e in cut["events"]] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
    ]


def final_message(server: ServerThread, text: str, spec: str | None) -> dict[str, Any]:
    extra = fault(spec) if spec else {}
    with client(server).messages.stream(**ask(text), **extra) as stream:
        return stream.get_final_message().model_dump()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rechunked_stream_assembles_the_same_message(server: ServerThread, seed: int) -> None:
    plain = final_message(server, PROMPT_UTF8, None)
    cut = final_message(server, PROMPT_UTF8, f"rechunk;seed={seed}")
    assert cut == plain
    assert "日本語" in plain["content"][0]["text"]
    assert journal(server)[-1]["fault"] == f"rechunk;seed={seed}"


def test_rechunked_json_reply(server: ServerThread) -> None:
    c = client(server)
    plain = c.messages.create(**ask(PROMPT_UTF8)).model_dump()
    assert c.messages.create(**ask(PROMPT_UTF8), **fault("rechunk;seed=5")).model_dump() == plain


def test_keepalive_before_stream(server: ServerThread) -> None:
    c = client(server)
    plain = final_message(server, "keep", None)
    raw = c.messages.with_raw_response.create(**ask("keep", stream=True), **fault("keepalive;n=3"))
    data = raw.http_response.read()
    assert data.startswith(b": keep-alive\n\n" * 3 + b"event: message_start\n")
    events, _ = decode_all(data)
    assert events[0].comments == ("keep-alive",) * 3
    assert final_message(server, "keep", "keepalive;n=3") == plain


def test_keepalive_blank_lines_before_json(server: ServerThread) -> None:
    c = client(server)
    plain = c.messages.create(**ask("blank")).model_dump()
    raw = c.messages.with_raw_response.create(**ask("blank"), **fault("keepalive;n=4"))
    assert raw.http_response.content.startswith(b"\n\n\n\n{")
    assert raw.parse().model_dump() == plain


def test_stall_at_event(server: ServerThread) -> None:
    t0 = time.monotonic()
    final_message(server, "pause", "stall;at=2;ms=150")
    assert time.monotonic() - t0 >= 0.15


def test_server_survives_many_drops(server: ServerThread) -> None:
    c = client(server, max_retries=0)
    for spec in ("disconnect;at=headers", "disconnect;at=0", "disconnect;at=3"):
        for _ in range(3):
            with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
                drain(c.messages.create(**ask("drop", stream=True), **fault(spec)))
    assert c.messages.create(**ask("after")).type == "message"


# --- rules: admin API, Python API, config file ----------------------------------------------


def test_admin_rule_by_path_and_count(server: ServerThread) -> None:
    added = admin(
        server,
        "POST",
        "faults",
        {"fault": "overloaded;retry_after_ms=1", "match": {"path": "/v1/messages"}, "times": 2},
    )
    assert added["rules"][0]["remaining"] == 2
    c = client(server)
    assert c.messages.create(**ask("rule")).type == "message"
    assert statuses(server) == [529, 529, 200]
    assert c.messages.count_tokens(model=MODEL, messages=ask("x")["messages"]).input_tokens > 0
    listed = admin(server, "GET", "faults")["rules"]
    assert listed[0]["hits"] == 2 and listed[0]["remaining"] == 0


def test_admin_rule_by_model_and_body_path(server: ServerThread) -> None:
    admin(
        server,
        "POST",
        "faults",
        [
            {"fault": "status;code=403", "match": {"model": "other-*"}},
            {"fault": "unauthorized", "match": {"body": {"$.messages[0].content": "secret"}}},
        ],
    )
    c = client(server, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        c.messages.create(**ask("secret"))
    assert c.messages.create(**ask("public")).type == "message"
    assert statuses(server) == [401, 200]


def test_admin_rule_probability_is_reproducible(server: ServerThread) -> None:
    def run() -> list[int]:
        server.state.faults.clear()  # type: ignore[union-attr]
        server.state.journal.clear()  # type: ignore[union-attr]
        admin(
            server,
            "POST",
            "faults",
            {"fault": "api_error;should_retry=false", "probability": 0.5, "seed": 42},
        )
        c = client(server, max_retries=0)
        for i in range(12):
            with contextlib.suppress(anthropic.InternalServerError):
                c.messages.create(**ask(f"p{i}"))
        return statuses(server)

    first = run()
    assert first == run()
    assert 500 in first and 200 in first


def test_python_api_rule(server: ServerThread) -> None:
    assert server.state is not None
    server.state.faults.add({"fault": "error_event;at=2", "match": {"model": MODEL}})
    with pytest.raises(anthropic.APIStatusError) as info:
        drain(client(server).messages.create(**ask("py", stream=True)))
    assert info.value.status_code == 200
    assert admin(server, "GET", "faults")["rules"][0]["origin"] == "api"
    assert admin(server, "DELETE", "faults") == {"deleted": 1}
    assert client(server).messages.create(**ask("py")).type == "message"


def test_config_file_rules(tmp_path: Path) -> None:
    config = tmp_path / "faults.yaml"
    config.write_text(
        "- fault: overloaded;retry_after_ms=1\n"
        "  times: 1\n"
        "- fault: keepalive;n=2\n"
        "  match: {body: {'$.metadata.user_id': ka}}\n"
    )
    thread = ServerThread(Settings(port=0, mode="synth", fault_config=config)).start()
    try:
        c = client(thread)
        assert c.messages.create(**ask("cfg")).type == "message"
        raw = c.messages.with_raw_response.create(**ask("cfg", metadata={"user_id": "ka"}))
        assert raw.http_response.content.startswith(b"\n\n{")
        assert [ex["status"] for ex in journal(thread)] == [529, 200, 200]
        rules = admin(thread, "GET", "faults")["rules"]
        assert [r["origin"] for r in rules] == ["config", "config"]
    finally:
        thread.stop()


def test_fault_on_count_tokens_and_models(server: ServerThread) -> None:
    c = client(server, max_retries=0)
    with pytest.raises(anthropic.RateLimitError):
        c.messages.count_tokens(
            model=MODEL, messages=ask("ct")["messages"], **fault("rate_limit;retry_after_ms=1")
        )
    with pytest.raises(anthropic.APIStatusError) as info:
        c.models.list(**fault("overloaded"))
    assert info.value.status_code == 529


# --- faults on replayed replies -------------------------------------------------------------


def recorded(text: str, answer: str, history: list[dict[str, Any]]) -> cas.Interaction:
    message = {
        "id": "msg_01Recorded" + answer.replace(" ", ""),
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": answer}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 4},
    }
    events = tuple(Event(name, dumps(data)) for name, data in unfold(message))
    body = {**ask(text), "messages": [*history, {"role": "user", "content": text}]}
    return cas.Interaction(
        cas.RecordedRequest("POST", p.PATH_MESSAGES, body={**body, "stream": True}),
        cas.RecordedResponse(200, {p.H_CONTENT_TYPE: p.CT_SSE}, events=events),
    )


@pytest.fixture(scope="module")
def replayer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A replay-only server with a two-turn conversation; turn 2 was recorded twice."""
    directory = tmp_path_factory.mktemp("cassettes")
    turn1 = recorded("turn one", "Recorded one", [])
    history = [
        {"role": "user", "content": "turn one"},
        {"role": "assistant", "content": "Recorded one"},
    ]
    turn2a = recorded("turn two", "Recorded two A", history)
    turn2b = recorded("turn two", "Recorded two B", history)
    cassette = cas.Cassette([turn1, turn2a, turn2b], name="conversation")
    (directory / "conversation.yaml").write_text(cas.dumps(cassette))
    thread = ServerThread(Settings(port=0, mode="replay", cassettes=directory)).start()
    yield thread
    thread.stop()


def turn(c: anthropic.Anthropic, n: int, spec: str | None = None) -> str:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "turn one"}]
    if n == 2:
        messages += [
            {"role": "assistant", "content": "Recorded one"},
            {"role": "user", "content": "turn two"},
        ]
    extra = fault(spec) if spec else {}
    body = {**ask("x"), "messages": messages}
    with c.messages.stream(**body, **extra) as stream:
        block = stream.get_final_message().content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    return block.text


def test_replayed_turn_gets_529_without_using_the_recording(replayer: ServerThread) -> None:
    assert replayer.state is not None
    replayer.state.journal.clear()
    c = client(replayer)
    assert turn(c, 1) == "Recorded one"
    # turn 2 fails twice with 529, then the first recording of turn 2 is served: the 529s
    # did not consume the recorded sequence
    assert turn(c, 2, "overloaded;times=2;retry_after_ms=1") == "Recorded two A"
    assert turn(c, 2) == "Recorded two B"
    exchanges = journal(replayer)
    assert [(ex["status"], ex["source"]) for ex in exchanges] == [
        (200, "replay"),
        (529, "error"),
        (529, "error"),
        (200, "replay"),
        (200, "replay"),
    ]
    assert [ex["headers"][p.H_RETRY_COUNT] for ex in exchanges[1:4]] == ["0", "1", "2"]


def test_replayed_stream_gets_stream_faults(replayer: ServerThread) -> None:
    c = client(replayer)
    with pytest.raises(anthropic.APIStatusError) as info:
        turn(c, 1, "error_event;at=3;type=overloaded_error")
    assert info.value.status_code == 200 and info.value.type == "overloaded_error"
    assert turn(c, 1, "rechunk;seed=7, keepalive;n=2") == "Recorded one"
    last = journal(replayer)[-1]
    assert last["source"] == "replay" and last["fault"] == "rechunk;seed=7, keepalive;n=2"
