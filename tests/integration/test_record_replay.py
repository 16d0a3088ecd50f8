"""Replay through the running server: exact bytes, the SDK's view, fold/unfold, timing, misses."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from fake_upstream import call, json_call

from mockserver.cassettes import cassette as cas, store
from mockserver.cassettes.library import CACHE_ENV
from mockserver.cassettes.near_miss import differences
from mockserver.config import Settings
from mockserver.contract import conformance
from mockserver.server.running import ServerThread
from mockserver.wire import sse
from mockserver.wire.streaming import UnfoldPlan, fold, unfold

MODEL = "deepseek-v3-anthropic"
SSE_TYPE = "text/event-stream; charset=utf-8"
OK_MESSAGE = sse.dumps(
    {
        "id": "msg_ok",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
).encode()

#: samples the SDK's final message legitimately differs from ``fold`` on, and where
SDK_DIFFERS_AT = {
    # the SDK copies only the message_delta usage fields its model knows (not ``iterations``)
    "018-pyd-sonnet46-compaction-cache-read.sse": "$.usage.iterations",
    # a max_tokens stop cut the tool JSON: the SDK keeps its partial parse, fold keeps {}
    "022-sdkpy-sonnet37-max-tokens-truncated-tool-json.sse": "$.content[1].input",
}
#: samples that are no complete message, so the SDK cannot produce a final message from them
SDK_NOT_A_MESSAGE = {
    # docs example without usage in message_delta: the SDK's accumulator raises AttributeError
    "028-docs-thinking.sse": "no usage",
    # an error event (alone, or cutting the stream): the SDK raises APIStatusError instead
    "029-docs-error-event-only.sse": "error",
    "030-reconstructed-midstream-overloaded-error.sse": "error",
}


def body_for(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def stream_interaction(
    body: dict[str, Any], data: bytes, at_ms: tuple[float, ...] | None = None
) -> cas.Interaction:
    events, tail = sse.decode_all(data)
    response = cas.RecordedResponse(
        200, {"content-type": SSE_TYPE}, events=tuple(events), at_ms=at_ms, tail=tail
    )
    return cas.Interaction(cas.RecordedRequest("POST", "/v1/messages", {}, body), response)


def json_interaction(body: dict[str, Any], data: bytes, status: int = 200) -> cas.Interaction:
    response = cas.RecordedResponse(status, {"content-type": "application/json"}, body=data)
    return cas.Interaction(cas.RecordedRequest("POST", "/v1/messages", {}, body), response)


@pytest.fixture(autouse=True)
def _private_parse_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Large libraries keep a parse cache; in tests it lives in a temp dir, not ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("parse-cache")))
        yield


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[ServerThread] = []

    def start(directory: Path, **kw: Any) -> ServerThread:
        thread = ServerThread(
            Settings(port=0, mode=kw.pop("mode", "replay"), cassettes=directory, **kw)
        ).start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


def folded(data: bytes) -> Any:
    events, _ = sse.decode_all(data)
    return fold((e.name, e.json()) for e in events)


def test_every_sse_sample_replays_byte_for_byte_and_the_sdk_agrees(
    traffic_dir: Path, tmp_path: Path, serve: Any
) -> None:
    samples = sorted(traffic_dir.glob("*.sse"))
    assert len(samples) >= 30
    store.append(
        tmp_path / "samples.yaml",
        [stream_interaction(body_for(f"replay {s.name}"), s.read_bytes()) for s in samples],
    )
    url = serve(tmp_path).base_url
    client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    compared = 0
    for sample in samples:
        raw = sample.read_bytes()
        status, headers, data, cut = call(url, body_for(f"replay {sample.name}", stream=True))
        assert (status, cut) == (200, False), sample.name
        assert data == raw, f"{sample.name}: replayed bytes differ"
        assert headers["content-type"] == SSE_TYPE
        assert headers["x-mockserver-source"] == "replay"

        why = SDK_NOT_A_MESSAGE.get(sample.name)
        if why == "error":
            with (
                pytest.raises(anthropic.APIStatusError) as err,
                client.messages.stream(**body_for(f"replay {sample.name}")) as s,
            ):
                s.get_final_message()
            assert err.value.status_code == 200
            assert err.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
            continue
        if why is not None:
            continue  # see SDK_NOT_A_MESSAGE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydantic warns on unknown block types (compaction)
            with client.messages.stream(**body_for(f"replay {sample.name}")) as s:
                got = json.loads(s.get_final_message().to_json(exclude_unset=True))
        want = folded(raw)
        diffs = [
            d
            for d in differences(want, got, limit=50)
            if not (d.path == "$.stop_details" and d.requested is None)  # SDK sets it to null
            and not d.path.startswith(SDK_DIFFERS_AT.get(sample.name, "-"))
        ]
        assert diffs == [], f"{sample.name}: {[d.describe() for d in diffs]}"
        compared += 1
    assert compared == len(samples) - len(SDK_NOT_A_MESSAGE)


def test_sdk_create_stream_reads_a_replayed_stream(
    traffic_dir: Path, tmp_path: Path, serve: Any
) -> None:
    sample = traffic_dir / "024-sdkpy-haiku45-tool-use-only.sse"
    store.append(tmp_path / "c.yaml", [stream_interaction(body_for("tool"), sample.read_bytes())])
    client = anthropic.Anthropic(base_url=serve(tmp_path).base_url, api_key="k", max_retries=0)
    kinds = [event.type for event in client.messages.create(stream=True, **body_for("tool"))]
    events, _ = sse.decode_all(sample.read_bytes())
    assert kinds == [e.name for e in events if e.name != "ping"]


def test_stream_recording_replays_as_json_and_json_as_stream(
    traffic_dir: Path, tmp_path: Path, serve: Any
) -> None:
    stream = (traffic_dir / "006-llm-haiku35-text-plus-parallel-tool-use.sse").read_bytes()
    tools = (traffic_dir / "032-pyd-haiku45-parallel-tool-use-x4.json").read_bytes()
    cut = (traffic_dir / "030-reconstructed-midstream-overloaded-error.sse").read_bytes()
    store.append(
        tmp_path / "c.yaml",
        [
            stream_interaction(body_for("stream"), stream),
            json_interaction(body_for("json"), tools),
            stream_interaction(body_for("error"), cut),
        ],
    )
    url = serve(tmp_path).base_url

    status, headers, message = json_call(url, body_for("stream"))  # stream -> JSON
    assert status == 200 and headers["content-type"] == "application/json"
    assert message == folded(stream)
    assert conformance.check_message(message) == []

    status, headers, data, _ = call(url, body_for("json", stream=True))  # JSON -> stream
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events, _ = sse.decode_all(data)
    assert conformance.check_stream(events) == []
    assert fold((e.name, e.json()) for e in events) == json.loads(tools)

    status, _, body = json_call(url, body_for("error"))  # a stream cut by an error event
    assert status == 529 and body["error"]["type"] == "overloaded_error"
    assert conformance.check_error(body) == []


def test_recorded_timing_is_honoured(tmp_path: Path, serve: Any) -> None:
    message = {
        "id": "msg_t",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "tick tock"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    pairs = unfold(message, UnfoldPlan(ping=False))
    data = b"".join(sse.encode(n, d) for n, d in pairs)
    at = tuple(60.0 * i for i in range(len(pairs)))  # the last event at 60 ms * (n-1)
    store.append(tmp_path / "t.yaml", [stream_interaction(body_for("time"), data, at)])
    span = at[-1] / 1000

    def elapsed(timing: str) -> float:
        url = serve(tmp_path, timing=timing).base_url
        call(url, body_for("warm-up miss"))  # loads the library
        t0 = time.monotonic()
        assert call(url, body_for("time", stream=True))[2] == data
        return time.monotonic() - t0

    assert elapsed("instant") < span / 2
    fast = elapsed("4x")
    assert span / 4 * 0.9 <= fast < span * 0.75, fast
    real = elapsed("recorded")
    assert span * 0.95 <= real < span + 1.5, real


def test_a_miss_in_replay_mode_is_a_404_naming_the_nearest(tmp_path: Path, serve: Any) -> None:
    ok = OK_MESSAGE
    store.append(
        tmp_path / "near.yaml",
        [
            json_interaction(body_for("What is the capital of France?"), ok),
            json_interaction(body_for("Something else entirely", max_tokens=7), ok),
        ],
    )
    thread = serve(tmp_path)
    client = anthropic.Anthropic(base_url=thread.base_url, api_key="k", max_retries=2)
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(**body_for("What is the capital of Spain?"))
    message = err.value.body["error"]["message"]  # type: ignore[index]
    assert "near#0" in message
    assert "$.messages[0].content[0].text" in message
    assert (
        '"What is the capital of France?"' in message
        and '"What is the capital of Spain?"' in message
    )
    assert err.value.response.headers["x-should-retry"] == "false"
    journal = thread.state.journal.all() if thread.state else []
    assert len(journal) == 1, "x-should-retry: false must stop the SDK's retries"
    ex = journal[0]
    assert ex.source == "unmatched" and ex.status == 404
    nearest = ex.near_misses[0]
    assert (nearest["cassette"], nearest["interaction"]) == ("near", 0)
    assert nearest["path"] == "$.messages[0].content[0].text"
    assert nearest["recorded"] == "What is the capital of France?"
    assert nearest["requested"] == "What is the capital of Spain?"


def test_repeated_requests_follow_the_recorded_sequence(serve: Any) -> None:
    shipped = Settings().cassette_dir  # the example: 529 overloaded, then success
    body = {
        "model": MODEL,
        "max_tokens": 128,
        "messages": [{"role": "user", "content": "Are you overloaded?"}],
    }
    url = serve(shipped).base_url
    assert [call(url, body)[0] for _ in range(3)] == [529, 200, 200]  # then the last repeats
    strict = serve(shipped, strict_sequence=True).base_url
    assert [call(strict, body)[0] for _ in range(3)] == [529, 200, 404]
    # the SDK's own retry walks the sequence: it sees the success
    client = anthropic.Anthropic(base_url=serve(shipped).base_url, api_key="k", max_retries=2)
    reply = client.messages.create(**body)
    assert reply.content[0].text == "Not any more. How can I help?"  # type: ignore[union-attr]


def test_serve_with_no_flags_replays_the_shipped_examples() -> None:
    thread = ServerThread(Settings(port=0)).start()  # mode auto, shipped cassettes
    try:
        text = {
            "model": MODEL,
            "max_tokens": 256,
            "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        }
        status, headers, body = json_call(thread.base_url, text)
        assert status == 200 and headers["x-mockserver-source"] == "replay"
        assert body["content"][0]["text"] == "Hello! It's nice to meet you."
        for _ in range(3):  # the recorded request-id, every time (replies' headers are cached)
            status, again, _ = json_call(thread.base_url, text)
            assert again["request-id"] == headers["request-id"] == "req_01ExampleText0000001"
            assert again["x-mockserver-cost-usd"] == headers["x-mockserver-cost-usd"]
        status, headers, _ = json_call(thread.base_url, {**text, "max_tokens": 255})
        assert status == 200 and headers["x-mockserver-source"] == "synth"  # auto: miss -> synth
        client = anthropic.Anthropic(base_url=thread.base_url, api_key="k", max_retries=0)
        tools = {
            **text,
            "max_tokens": 512,
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Get the current weather for a city",
                    "input_schema": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                }
            ],
            "messages": [{"role": "user", "content": "What's the weather in Paris and in Rome?"}],
        }
        with client.messages.stream(**tools) as s:
            final = s.get_final_message()
        assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
        assert final.stop_reason == "tool_use"
    finally:
        thread.stop()


def test_shipped_examples_pass_lint() -> None:
    from mockserver.cassettes.checks import lint_file

    files = cas.discover(Settings().cassette_dir)
    assert {f.stem for f in files} >= {"text", "stream", "parallel-tools", "error"}
    for f in files:
        assert lint_file(f) == [], f


def test_admin_reload_rereads_the_cassettes(tmp_path: Path, serve: Any) -> None:
    ok = OK_MESSAGE
    url = serve(tmp_path).base_url
    assert call(url, body_for("late"))[0] == 404
    store.append(tmp_path / "late.yaml", [json_interaction(body_for("late"), ok)])
    status, _, data, _ = call(url, None, method="POST", path="/_mockserver/reload")
    assert status == 200 and json.loads(data)["reloaded"]["cassettes"] == 1
    assert call(url, body_for("late"))[:3:2] == (200, ok)
