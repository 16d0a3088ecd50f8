"""How a stream leaves the server: with no timing asked every event is due at once, so the
whole stream goes out in one write (one HTTP chunk: the same bytes in one system call instead
of one per event); a ``rechunk`` fault still cuts it at random points."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from mockserver.config import Settings
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

BODY = {
    "model": "deepseek-v3-anthropic",
    "max_tokens": 64,
    "stream": True,
    "messages": [{"role": "user", "content": "Say hello."}],
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    t = ServerThread(Settings(port=0, mode="synth")).start()
    yield t
    t.stop()


def _chunks(server: ServerThread, extra: str = "") -> list[bytes]:
    """The HTTP chunks of one streamed reply, as they came on the socket."""
    host, port = server.base_url.removeprefix("http://").split(":")
    body = json.dumps(BODY).encode()
    head = (
        f"POST {p.PATH_MESSAGES} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "content-type: application/json\r\nx-api-key: k\r\nanthropic-version: 2023-06-01\r\n"
        f"{extra}content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        raw = b""
        while data := sock.recv(65536):
            raw += data
    headers, _, rest = raw.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.1 200"), headers
    assert b"transfer-encoding: chunked" in headers.lower()
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        rest = rest[size + 2 :]


def test_an_untimed_stream_is_one_write(server: ServerThread) -> None:
    chunks = _chunks(server)
    assert len(chunks) == 1, [c[:40] for c in chunks]
    text = chunks[0].decode()
    names = [line[len("event: ") :] for line in text.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert len(names) >= 5 and text.endswith("\n\n")


def test_rechunk_still_cuts_it(server: ServerThread) -> None:
    whole = _chunks(server)[0]
    cut = _chunks(server, f"{p.H_FAULT}: rechunk;seed=3\r\n")
    assert len(cut) > 1 and b"".join(cut) == whole
