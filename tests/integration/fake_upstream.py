"""A fake upstream for the recording tests: an aiohttp app on 127.0.0.1, port 0, in a thread.

What it answers is chosen by the header ``x-fake-upstream`` or, for clients that cannot set
headers, by ``metadata.user_id = "fake:<choice>"`` in the body:

- a file name from ../shared/traffic: ``.sse`` streams are sent line by line as recorded,
  ``.json`` messages as they are, ``.error.json`` bodies with their recorded status;
- ``disconnect``: the first events of a real stream, then the connection is dropped;
- ``slow``: a real stream with a pause before every event (``x-fake-delay`` seconds);
- ``drift``: a message that breaks the contract (unknown stop_reason, no usage);
- nothing: a small text message echoing the last user text (a stream when asked for).

Every request is kept in ``requests`` (headers lower-cased, parsed body) for assertions.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from mockserver.wire import sse
from mockserver.wire.streaming import unfold

CHOICE = "x-fake-upstream"
DELAY = "x-fake-delay"
STREAM_SAMPLE = "002-llm-sonnet45-text.sse"
#: headers the fake sends that a cassette must never keep
SECRET_RESPONSE_HEADERS = {"set-cookie": "session=s3cr3t", "anthropic-organization-id": "org-1234"}


@dataclass
class Seen:
    headers: dict[str, str]
    body: Any


@dataclass
class FakeUpstream:
    traffic: Path
    url: str = ""
    requests: list[Seen] = field(default_factory=list)

    def manifest(self) -> dict[str, dict[str, Any]]:
        data = json.loads((self.traffic / "manifest.json").read_text())
        return {s["file"]: s for s in data["samples"]}


def _choice(request: web.Request, body: Any) -> str:
    choice = request.headers.get(CHOICE, "")
    if not choice and isinstance(body, dict):
        user = (body.get("metadata") or {}).get("user_id") or ""
        if isinstance(user, str) and user.startswith("fake:"):
            choice = user[5:]
    return choice


def _headers(content_type: str, request_id: str = "req_fake0001") -> dict[str, str]:
    return {
        "content-type": content_type,
        "request-id": request_id,
        "anthropic-ratelimit-requests-limit": "50",
        **SECRET_RESPONSE_HEADERS,
    }


def _echo(body: Any) -> dict[str, Any]:
    messages = body.get("messages") if isinstance(body, dict) else None
    last = messages[-1].get("content") if messages else ""
    text = last if isinstance(last, str) else json.dumps(last)
    return {
        "id": "msg_fake_echo",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "m") if isinstance(body, dict) else "m",
        "content": [{"type": "text", "text": f"echo: {text}"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }


def make_app(fake: FakeUpstream) -> web.Application:
    manifest = fake.manifest()

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        fake.requests.append(Seen({k.lower(): v for k, v in request.headers.items()}, body))
        choice = _choice(request, body)
        if choice in ("disconnect", "slow") or choice.endswith(".sse"):
            sample = choice if choice.endswith(".sse") else STREAM_SAMPLE
            lines = (fake.traffic / sample).read_bytes().splitlines(keepends=True)
            resp = web.StreamResponse(status=200, headers=_headers(sse_type()))
            await resp.prepare(request)
            delay = float(request.headers.get(DELAY, "0.2"))
            events = 0
            for line in lines:
                if choice == "disconnect" and events == 4:
                    await resp.write(b'event: content_block_delta\ndata: {"ty')  # half a frame
                    await asyncio.sleep(0.05)
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                if choice == "slow" and line.startswith(b"event:"):
                    await asyncio.sleep(delay)
                await resp.write(line)
                if line == b"\n":
                    events += 1
            await resp.write_eof()
            return resp
        if choice.endswith(".json"):
            data = (fake.traffic / choice).read_bytes()
            status = int(manifest[choice].get("http_status") or 200)
            headers = _headers("application/json")
            if status == 429:
                headers["retry-after"] = "7"
                headers["x-should-retry"] = "true"
            return web.Response(status=status, body=data, headers=headers)
        message = _echo(body)
        if choice == "drift":
            message["stop_reason"] = "weird_reason"
            del message["usage"]
        if isinstance(body, dict) and body.get("stream"):
            resp = web.StreamResponse(status=200, headers=_headers(sse_type()))
            await resp.prepare(request)
            for name, data in unfold(message):
                await resp.write(sse.encode(name, data))
            await resp.write_eof()
            return resp
        return web.Response(body=sse.dumps(message).encode(), headers=_headers("application/json"))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def sse_type() -> str:
    return "text/event-stream; charset=utf-8"


@contextmanager
def running(traffic: Path) -> Iterator[FakeUpstream]:
    """Serve a fake upstream in a background thread for the ``with`` block."""
    fake = FakeUpstream(traffic)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(make_app(fake), access_log=None, handle_signals=False)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        fake.url = f"http://127.0.0.1:{port}"

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# --- talking to servers in the tests -------------------------------------------------------------

DEFAULT_KEY = "sk-mock-default-key-0001"


def call(
    base_url: str,
    body: Any,
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    path: str = "/v1/messages",
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes, bool]:
    """One request: status, headers, body bytes and whether the connection was cut
    (status 0 when it was cut before the headers).  A header given as "" is not sent."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    sent = {
        "x-api-key": DEFAULT_KEY,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        **(headers or {}),
    }
    try:
        data = json.dumps(body) if body is not None else None
        conn.request(method, path, data, {k: v for k, v in sent.items() if v})
        try:
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            return 0, {}, b"", True
        got = {k.lower(): v for k, v in resp.getheaders()}
        try:
            return resp.status, got, resp.read(), False
        except http.client.IncompleteRead as exc:
            return resp.status, got, bytes(exc.partial), True
    finally:
        conn.close()


def json_call(
    base_url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    status, got, data, _ = call(base_url, body, headers)
    return status, got, json.loads(data) if data else None
