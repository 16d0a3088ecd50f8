"""The server runs on uvloop (the default where it is installed) and on asyncio's own loop
(``--loop``), and answers the same on both: the whole live conformance suite, the SDK's
streaming, a client leaving mid-stream, a trickling client cut off."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import pytest

from mockserver.config import LOOPS, Settings, resolve_loop
from mockserver.contract.suite import run_suite
from mockserver.wire.errors import ConfigError
from tests.integration import server_process

ROOT = Path(__file__).resolve().parents[2]


def test_uvloop_is_a_dependency_and_installed_here() -> None:
    """Declared for every platform it builds on; on Linux it is installed, so the default
    server (and the suite's other tests) run on it."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (uvloop,) = [d for d in deps if d.startswith("uvloop")]
    assert "win32" in uvloop  # left out only where it does not build
    if sys.platform.startswith("linux"):
        import uvloop as _  # noqa: F401  (fails here if the install left it out)

        assert Settings(port=0).loop == "uvloop"


@pytest.mark.parametrize("loop", LOOPS)
def test_the_live_suite_passes_on_each_loop(make_server: Any, loop: str) -> None:
    server = make_server(loop=loop, api_keys=("sk-conformance",))
    kind = type(server.loop).__module__.split(".")[0]
    assert kind == loop  # uvloop.Loop or asyncio's unix loop
    outcomes = run_suite(server.base_url, timeout=20)
    assert [(o.case, o.why) for o in outcomes if not o.passed] == []
    assert len(outcomes) >= 25


@pytest.mark.parametrize("loop", LOOPS)
def test_sdk_streams_and_a_client_leaving_mid_stream_on_each_loop(
    make_server: Any, loop: str
) -> None:
    server = make_server(loop=loop, timing="20x", read_timeout=0.5)
    client = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0)
    with client.messages.stream(
        model="deepseek-v3-anthropic",
        max_tokens=64,
        messages=[{"role": "user", "content": "Tell me a story about loops"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]

    async def leave_mid_stream() -> None:
        host, port = server.base_url.removeprefix("http://").split(":")
        body = (
            b'{"model":"deepseek-v3-anthropic","max_tokens":200,"stream":true,'
            b'"messages":[{"role":"user","content":"a long answer please"}]}'
        )
        for _ in range(20):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\n"
                b"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            await reader.readuntil(b"event: message_start")
            writer.transport.abort()

    asyncio.run(leave_mid_stream())
    # a client that sends half a head and stalls is cut off after read_timeout
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n")
        started = time.monotonic()
        while s.recv(4096):  # a 408 reply perhaps, then the close
            pass
        assert time.monotonic() - started < 4  # not the socket's own 5 s timeout
    again = client.messages.create(
        model="deepseek-v3-anthropic",
        max_tokens=16,
        messages=[{"role": "user", "content": "still there?"}],
    )
    assert again.content
    assert server.state.in_flight == 0


def test_serve_prints_its_loop_and_answers_on_each(tmp_path: Path) -> None:
    for loop in LOOPS:
        srv = server_process.start(["--loop", loop], tmp_path / f"{loop}.log")
        try:
            assert f"{loop} event loop" in srv.banner
            assert srv.banner.rstrip().endswith(srv.url)  # the URL copies cleanly
            with urllib.request.urlopen(srv.url + "/_mockserver/health", timeout=10) as r:
                assert r.status == 200
        finally:
            srv.kill()


def test_asking_for_uvloop_where_it_is_missing_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("mockserver.config.uvloop_installed", lambda: False)
    assert resolve_loop(None) == "asyncio"  # the default falls back quietly
    with pytest.raises(ConfigError, match="--loop asyncio"):
        Settings(port=0, loop="uvloop")
    with pytest.raises(ConfigError, match="asyncio, uvloop"):
        Settings(port=0, loop="trio")


@pytest.mark.parametrize("loop", LOOPS)
def test_servers_on_the_shared_loop_are_apart(tmp_path: Path, loop: str) -> None:
    """``ServerThread(shared=True)`` (the pytest fixture's, one per test) runs on the process's
    one loop of its kind: no thread per server, each its own port and state, one stopped
    while another serves, and the stopped one's port closed."""
    import threading

    from mockserver.server.loops import shared_loop
    from mockserver.server.running import ServerThread

    body = {
        "model": "deepseek-v3-anthropic",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
    }
    threads_before = set(threading.enumerate())
    servers = [
        ServerThread(Settings(port=0, mode="synth", loop=loop), shared=True).start()
        for _ in range(5)
    ]
    try:
        assert all(s.loop is shared_loop(loop) for s in servers)
        assert len({s.base_url for s in servers}) == 5
        started = [t.name for t in set(threading.enumerate()) - threads_before]
        # at most the loop's one thread and the tokenizer's loading (once, not per server)
        assert len(started) <= 2 and set(started) <= {
            f"mockserver-{loop}-loop",
            "mockserver-tokenizer",
        }
        first, rest = servers[0], servers[1:]
        _post(first.base_url, body)
        first.stop()
        first.stop()  # twice is harmless
        with pytest.raises(urllib.error.URLError) as refused:
            _post(first.base_url, body)
        assert isinstance(refused.value.reason, ConnectionRefusedError)
        for s in rest:
            assert _post(s.base_url, body)["type"] == "message"
            assert s.state is not None and len(s.state.journal) == 1
        assert shared_loop(loop).is_running()
    finally:
        for s in servers:
            s.stop()


def _post(base_url: str, body: dict[str, Any]) -> Any:
    import json

    req = urllib.request.Request(
        base_url + "/v1/messages",
        json.dumps(body).encode(),
        {"content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_stopping_a_shared_server_with_a_reply_in_flight_does_not_raise(caplog: Any) -> None:
    """``stop`` waits ``stop_wait_s`` for replies still in flight (here a stalled stream), then
    returns without an error, as a server on its own thread did; the reply still finishes."""
    import json
    import threading

    from mockserver.server.running import ServerThread

    server = ServerThread(Settings(port=0, mode="synth"), shared=True).start()
    server.stop_wait_s = 0.3
    body = {"model": "deepseek-v3-anthropic", "max_tokens": 16, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    got: list[bytes] = []

    def client() -> None:
        req = urllib.request.Request(
            server.base_url + "/v1/messages",
            json.dumps(body).encode(),
            {"content-type": "application/json", "x-api-key": "k",
             "anthropic-version": "2023-06-01", "x-mockserver-fault": "stall;ms=1500;at=2"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            got.append(resp.read())

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.3)  # the reply is under way, stalled before its third event
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.2
    assert "still finishing its replies" in caplog.text
    t.join(10)
    assert got and b"event: message_stop" in got[0]
