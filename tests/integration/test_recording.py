"""Recording against a local fake upstream (nothing reaches the network), and replaying it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_upstream import (
    CHOICE,
    DEFAULT_KEY,
    DELAY,
    SECRET_RESPONSE_HEADERS,
    STREAM_SAMPLE,
    FakeUpstream,
    call,
    json_call,
    running,
)

from mockserver.cassettes import cassette as cas
from mockserver.cassettes.checks import lint_file
from mockserver.cassettes.library import CACHE_ENV, H_CASSETTE
from mockserver.config import UPSTREAM_KEY_ENV, Settings
from mockserver.server.running import ServerThread

KEY = "sk-mock-recording-key-7f3a9c"
BEARER = "sk-mock-bearer-token-52be01"
ENV_KEY = "sk-mock-env-key-c0ffee42"
SECRETS = (KEY, BEARER, ENV_KEY, DEFAULT_KEY, *SECRET_RESPONSE_HEADERS.values())
BODY: dict[str, Any] = {
    "model": "deepseek-v3-anthropic",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Hi"}],
}


@pytest.fixture(autouse=True)
def _private_parse_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Large libraries keep a parse cache; in tests it lives in a temp dir, not ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("parse-cache")))
        yield


@pytest.fixture(scope="module", autouse=True)
def no_secret_in_any_cassette(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After this module: no cassette written anywhere in this test session holds a secret."""
    yield
    base = tmp_path_factory.getbasetemp()
    files = [p for p in base.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json")]
    assert files, "the recording tests wrote no cassettes?"
    for path in files:
        text = path.read_text(errors="replace")
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} written into {path}"


@pytest.fixture(scope="module")
def fake(traffic_dir: Path) -> Iterator[FakeUpstream]:
    with running(traffic_dir) as upstream:
        yield upstream


@pytest.fixture
def recorder(fake: FakeUpstream, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    thread = ServerThread(
        Settings(port=0, mode="record", cassettes=tmp_path, upstream=fake.url)
    ).start()
    try:
        yield thread.base_url, tmp_path
    finally:
        thread.stop()


def replay_server(directory: Path, **kw: Any) -> ServerThread:
    return ServerThread(Settings(port=0, mode="replay", cassettes=directory, **kw)).start()


def test_stream_json_and_error_pass_through_and_replay(
    recorder: tuple[str, Path], fake: FakeUpstream, traffic_dir: Path
) -> None:
    url, directory = recorder
    stream = {**BODY, "stream": True}
    status, headers, data, cut = call(url, stream, {CHOICE: STREAM_SAMPLE, "x-api-key": KEY})
    assert (status, cut) == (200, False)
    assert data == (traffic_dir / STREAM_SAMPLE).read_bytes()  # passed on byte for byte
    assert headers["x-mockserver-source"] == "record"
    tools = "032-pyd-haiku45-parallel-tool-use-x4.json"
    status, _, data, _ = call(url, {**BODY, "max_tokens": 65}, {CHOICE: tools})
    assert (status, data) == (200, (traffic_dir / tools).read_bytes())
    limited = "046-sdkpy-429-rate-limit.error.json"
    status, headers, data, _ = call(url, {**BODY, "max_tokens": 66}, {CHOICE: limited})
    assert (status, data) == (429, (traffic_dir / limited).read_bytes())
    assert headers["retry-after"] == "7" and headers["x-should-retry"] == "true"

    c = cas.load(directory / "recorded.yaml")
    assert [i.response.status for i in c.interactions] == [200, 200, 429]
    first = c.interactions[0]
    assert first.response.is_stream and not first.response.disconnected
    assert len(first.response.at_ms or ()) == len(first.response.events or ())
    assert first.request.headers == {
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }
    kept = set(first.response.headers)
    assert {"content-type", "request-id", "anthropic-ratelimit-requests-limit"} <= kept
    assert not kept & set(SECRET_RESPONSE_HEADERS), "a non-allow-listed header was recorded"
    assert c.interactions[2].response.headers["retry-after"] == "7"
    assert lint_file(directory / "recorded.yaml") == []

    seen = len(fake.requests)
    replay = replay_server(directory)
    try:
        assert call(replay.base_url, stream)[2] == (traffic_dir / STREAM_SAMPLE).read_bytes()
        status, _, data, _ = call(replay.base_url, {**BODY, "max_tokens": 66})
        assert (status, data) == (429, (traffic_dir / limited).read_bytes())
    finally:
        replay.stop()
    assert len(fake.requests) == seen, "replay must not reach the upstream"


def test_mid_stream_disconnect_is_passed_on_recorded_and_replayed(
    recorder: tuple[str, Path], traffic_dir: Path
) -> None:
    url, directory = recorder
    stream = {**BODY, "stream": True}
    status, _, data, cut = call(url, stream, {CHOICE: "disconnect"})
    assert status == 200 and cut, "the client must see the upstream's hang-up"
    sample = (traffic_dir / STREAM_SAMPLE).read_bytes()
    assert sample.startswith(data.split(b'event: content_block_delta\ndata: {"ty')[0])
    (inter,) = cas.load(directory / "recorded.yaml").interactions
    assert inter.response.disconnected is True
    assert inter.response.events is not None and len(inter.response.events) == 5
    assert lint_file(directory / "recorded.yaml") == []  # a cut stream is checked as a prefix

    replay = replay_server(directory)
    try:
        status, _, again, cut = call(replay.base_url, stream)
        assert status == 200 and cut and again == data
        status, _, body, cut = call(replay.base_url, BODY)  # non-streaming: dropped at once
        assert cut or status == 0 or body == b""
    finally:
        replay.stop()


def test_unreachable_upstream_is_a_502_recorded_as_such(tmp_path: Path) -> None:
    thread = ServerThread(
        Settings(port=0, mode="record", cassettes=tmp_path, upstream="http://127.0.0.1:9")
    ).start()
    try:
        status, _, body = json_call(thread.base_url, BODY)
    finally:
        thread.stop()
    assert status == 502
    assert body["error"]["type"] == "api_error"
    assert "unreachable" in body["error"]["message"] and "127.0.0.1:9" in body["error"]["message"]
    (inter,) = cas.load(tmp_path / "recorded.yaml").interactions
    assert inter.error == cas.ERROR_UNREACHABLE and inter.response.status == 502
    replay = replay_server(tmp_path)
    try:
        assert json_call(replay.base_url, BODY)[:1] == (502,)
    finally:
        replay.stop()


def test_credentials_are_forwarded_and_never_written(
    recorder: tuple[str, Path], fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, directory = recorder
    call(url, {**BODY, "max_tokens": 70}, {"x-api-key": KEY})
    assert fake.requests[-1].headers["x-api-key"] == KEY
    call(url, {**BODY, "max_tokens": 71}, {"x-api-key": "", "authorization": f"Bearer {BEARER}"})
    assert fake.requests[-1].headers["authorization"] == f"Bearer {BEARER}"
    assert "x-api-key" not in fake.requests[-1].headers
    monkeypatch.setenv(UPSTREAM_KEY_ENV, ENV_KEY)
    call(url, {**BODY, "max_tokens": 72}, {"x-api-key": ""})
    assert fake.requests[-1].headers["x-api-key"] == ENV_KEY
    text = (directory / "recorded.yaml").read_text()
    assert text.count("max_tokens") == 3
    for secret in SECRETS:
        assert secret not in text


def test_first_event_reaches_the_client_before_the_upstream_ends(
    recorder: tuple[str, Path], traffic_dir: Path
) -> None:
    url, directory = recorder
    host, port = url.removeprefix("http://").split(":")
    import http.client

    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({**BODY, "stream": True})
    t0 = time.monotonic()
    conn.request(
        "POST",
        "/v1/messages",
        body,
        {
            "x-api-key": KEY,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
            CHOICE: "slow",
            DELAY: "0.08",
        },
    )
    resp = conn.getresponse()
    first_line = resp.readline()
    first = time.monotonic() - t0
    rest = resp.read()
    total = time.monotonic() - t0
    conn.close()
    assert first_line == b"event: message_start\n"
    assert total >= 0.7, total  # 10 events, 80 ms before each
    assert first < total / 3, (first, total)
    assert first_line + rest == (traffic_dir / STREAM_SAMPLE).read_bytes()
    (inter,) = cas.load(directory / "recorded.yaml").interactions
    at = inter.response.at_ms or ()
    assert at[-1] - at[0] >= 600, at  # the recorded offsets show the pacing


def test_recorded_contract_violations_are_warned_and_journaled(
    recorder: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = recorder
    with caplog.at_level(logging.WARNING, logger="mockserver.recorder"):
        status, _, _ = json_call(url, BODY, {CHOICE: "drift"})
    assert status == 200
    assert any("contract" in r.getMessage() for r in caplog.records)
    journal = json.loads(call(url, None, method="GET", path="/_mockserver/journal")[2])
    ex = journal["exchanges"][-1]
    assert ex["source"] == "record"
    paths = {v["path"] for v in ex["violations"]}
    assert "$.response.body.stop_reason" in paths or any("usage" in p for p in paths), paths


def test_concurrent_clients_recording_into_one_cassette_lose_nothing(
    recorder: tuple[str, Path],
) -> None:
    url, directory = recorder
    n = 16
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            body = {**BODY, "messages": [{"role": "user", "content": f"client {i}"}]}
            assert call(url, body, {H_CASSETTE: "shared"})[0] == 200
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    c = cas.load(directory / "shared.yaml")
    prompts = sorted(i.request.body["messages"][0]["content"] for i in c.interactions)
    assert prompts == sorted(f"client {i}" for i in range(n))


def test_record_new_replays_hits_and_records_misses(fake: FakeUpstream, tmp_path: Path) -> None:
    thread = ServerThread(
        Settings(port=0, mode="record-new", cassettes=tmp_path, upstream=fake.url)
    ).start()
    try:
        seen = len(fake.requests)
        first = call(thread.base_url, BODY)
        assert first[1]["x-mockserver-source"] == "record"
        second = call(thread.base_url, {**BODY, "stream": False})  # same request, canonically
        assert second[1]["x-mockserver-source"] == "replay"
        assert second[2] == first[2]
        assert len(fake.requests) == seen + 1
    finally:
        thread.stop()
    assert len(cas.load(tmp_path / "recorded.yaml").interactions) == 1


# --- two processes, and a kill in the middle of a save ------------------------------------------


def _start(
    directory: Path, upstream: str, log: Path, pause: float = 0.0
) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "MOCKSERVER_TEST_SAVE_PAUSE": str(pause) if pause else ""}
    cmd = [
        sys.executable,
        "-m",
        "mockserver",
        "serve",
        "--mode",
        "record",
        "--port",
        "0",
        "--cassettes",
        str(directory),
        "--upstream",
        upstream,
    ]
    with log.open("w") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            m = re.search(r"http://127\.0\.0\.1:\d+", line)
            if m:
                return proc, m.group(0)
            if not line:
                break
    proc.kill()
    raise AssertionError(f"server did not start: {log.read_text()}")


def _prompts(path: Path) -> list[str]:
    return sorted(i.request.body["messages"][0]["content"] for i in cas.load(path).interactions)


def test_two_processes_share_a_cassette_and_a_kill_never_tears_it(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    directory = tmp_path / "cassettes"
    a, url_a = _start(directory, fake.url, tmp_path / "a.log")
    b, url_b = _start(directory, fake.url, tmp_path / "b.log", pause=0.3)  # slow saves
    shared = directory / "shared.yaml"
    try:

        def send(url: str, text: str) -> None:
            body = {**BODY, "messages": [{"role": "user", "content": text}]}
            call(url, body, {H_CASSETTE: "shared"}, timeout=20)

        jobs = [
            threading.Thread(target=send, args=(u, f"{n} {i}"))
            for u, n in ((url_a, "a"), (url_b, "b"))
            for i in range(3)
        ]
        for t in jobs:
            t.start()
        for t in jobs:
            t.join(30)
        before = _prompts(shared)
        assert before == sorted(f"{n} {i}" for n in "ab" for i in range(3))

        # b is paused halfway through writing its temp file when it is killed
        killed = threading.Thread(target=lambda: _quietly(send, url_b, "b killed"))
        killed.start()
        deadline = time.monotonic() + 10
        while not list(directory.glob(".shared.yaml.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert list(directory.glob(".shared.yaml.*.tmp")), "b never started saving"
        b.send_signal(signal.SIGKILL)
        b.wait(10)
        killed.join(10)
        assert _prompts(shared) == before  # the previous cassette, intact
        assert lint_file(shared) == []
        assert cas.discover(directory) == [shared]  # the torn temp file is never loaded

        send(url_a, "a last")  # a completed save, then a kill: the new cassette is complete
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        assert _prompts(shared) == sorted([*before, "a last"])
        assert lint_file(shared) == []
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


def _quietly(fn: Any, *args: Any) -> None:
    with contextlib.suppress(OSError):  # the server is killed under the request
        fn(*args)
