"""Client misbehaviour: 1,000 clients hanging up mid-stream, slow readers, half-open
connections and slowloris trickles.  Afterwards the server holds no extra asyncio tasks and no
extra file descriptors (counted on its loop and in ``/proc/self/fd``) and serves normally.

The server runs in this process (``ServerThread``) with ``read_timeout=1`` so that the
deadlines on request heads and bodies show within the test's time budget (the default is
60 s).  Clients come in waves of at most ``WAVE`` connections, so that the test stays under a
1,024-descriptor limit.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mockserver.config import Settings
from mockserver.contract import conformance as c
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

READ_TIMEOUT = 1.0
WAVE = 250
#: extra tasks / descriptors allowed once the abuse is over (measured: 0 and 0)
TASK_BOUND = 0
FD_BOUND = 2
HEADERS = {"x-api-key": "sk-abuse-0001", "anthropic-version": "2023-06-01"}
MODEL = "deepseek-v3-anthropic"


def _request(body: dict[str, object], **extra: str) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {p.PATH_MESSAGES} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    )
    head += "".join(f"{k}: {v}\r\n" for k, v in {**HEADERS, **extra}.items())
    head += f"content-length: {len(data)}\r\n\r\n"
    return head.encode() + data


STREAM = {
    "model": MODEL,
    "max_tokens": 256,
    "stream": True,
    "messages": [{"role": "user", "content": "tell me a long story"}],
}


@dataclass
class Counts:
    tasks: int
    fds: int
    sockets: int


@dataclass
class Abused:
    server: ServerThread
    baseline: Counts
    host: str
    port: int


def _fds() -> tuple[int, int]:
    names = os.listdir("/proc/self/fd")
    sockets = 0
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass  # closed meanwhile (e.g. the listdir descriptor itself)
    return len(names), sockets


def counts(server: ServerThread) -> Counts:
    async def tasks() -> int:
        me = asyncio.current_task()
        return sum(1 for t in asyncio.all_tasks() if t is not me and not t.done())

    n = asyncio.run_coroutine_threadsafe(tasks(), server.loop).result(10)
    fds, sockets = _fds()
    return Counts(n, fds, sockets)


def handlers_running(server: ServerThread) -> int:
    """Tasks of aiohttp request handlers still running (writing a reply) on the server loop."""

    async def count() -> int:
        names = (getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks())
        return sum("_handle_request" in name for name in names)

    return asyncio.run_coroutine_threadsafe(count(), server.loop).result(10)


def settle(ab: Abused, timeout: float = 10.0) -> Counts:
    """Wait until the server is back to its baseline (within the bounds); assert it gets there."""
    deadline = time.monotonic() + timeout
    while True:
        now = counts(ab.server)
        back = (
            now.tasks <= ab.baseline.tasks + TASK_BOUND
            and now.fds <= ab.baseline.fds + FD_BOUND
            and now.sockets <= ab.baseline.sockets + FD_BOUND
        )
        if back or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    print(f"\nbaseline {ab.baseline}, after {now}")
    if now.tasks > ab.baseline.tasks + TASK_BOUND:

        async def show() -> list[str]:
            return [repr(t)[:300] for t in asyncio.all_tasks()]

        print(asyncio.run_coroutine_threadsafe(show(), ab.server.loop).result(5))
    assert now.tasks <= ab.baseline.tasks + TASK_BOUND, (ab.baseline, now)
    assert now.fds <= ab.baseline.fds + FD_BOUND, (ab.baseline, now)
    assert now.sockets <= ab.baseline.sockets + FD_BOUND, (ab.baseline, now)
    return now


def serves_normally(ab: Abused) -> None:
    conn = http.client.HTTPConnection(ab.host, ab.port, timeout=10)
    try:
        for stream in (False, True):
            body = {**STREAM, "stream": stream, "max_tokens": 32}
            conn.request("POST", p.PATH_MESSAGES, json.dumps(body), HEADERS)
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, data[:300]
            if stream:
                assert c.check_sse_bytes(data) == []
            else:
                assert c.check_message(json.loads(data)) == []
        conn.request("GET", f"{p.ADMIN_PREFIX}/health")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["status"] == "ok"
    finally:
        conn.close()


@pytest.fixture(scope="module")
def abused() -> Iterator[Abused]:
    """A server with a 1 s read deadline (the slow-client tests measure it)."""
    yield from _abused(READ_TIMEOUT)


@pytest.fixture(scope="module")
def patient() -> Iterator[Abused]:
    """A server with the default read deadline, for crowds: on a loaded machine a crowd's
    request can wait in the kernel past 1 s before the server reads it, and a deadline that
    fires first cuts the connection (an RST, as the unread request is discarded)."""
    yield from _abused(Settings.read_timeout)


def _abused(read_timeout: float) -> Iterator[Abused]:
    server = ServerThread(Settings(port=0, mode="synth", read_timeout=read_timeout)).start()
    host, port = server.base_url.removeprefix("http://").split(":")
    ab = Abused(server, Counts(0, 0, 0), host, int(port))
    try:
        serves_normally(ab)  # warm: tokenizer loaded, first-request allocations done
        time.sleep(0.2)
        ab.baseline = counts(server)
        yield ab
    finally:
        server.stop()


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# --- 1,000 clients that hang up mid-stream --------------------------------------------------------


def test_a_thousand_clients_disconnecting_mid_stream(patient: Abused) -> None:
    """Each client gets the headers and the first events of a stream that then stalls (a
    ``stall`` fault), and hangs up there: half with a FIN, half with an RST."""
    fault = "stall;at=3;ms=10000"  # events 0-2 are written, then a 10 s pause

    async def one(i: int) -> bool:
        reader, writer = await asyncio.open_connection(patient.host, patient.port)
        try:
            writer.write(_request(STREAM, **{p.H_FAULT: fault}))
            got = b""
            while got.count(b"\n\n") < 3:  # three whole events arrived: mid-stream
                chunk = await asyncio.wait_for(reader.read(4096), 10)
                if not chunk:
                    return False
                got += chunk
            return got.startswith(b"HTTP/1.1 200") and b"event: message_start" in got
        finally:
            if i % 2:
                _rst(writer)
            else:
                writer.close()

    async def waves() -> list[bool]:
        out: list[bool] = []
        for start in range(0, 1000, WAVE):
            out += await asyncio.gather(*(one(i) for i in range(start, start + WAVE)))
        return out

    t0 = time.monotonic()
    results = asyncio.run(waves())
    took = time.monotonic() - t0
    assert sum(results) == 1000, f"{results.count(False)} clients never got mid-stream"
    after = settle(patient)
    print(f"1000 mid-stream disconnects in {took:.1f} s; server back to {after}")
    journal = patient.server.state
    assert journal is not None
    cut = [ex for ex in journal.journal.all() if ex.fault and "stall" in ex.fault]
    assert len(cut) >= 1000
    serves_normally(patient)


# --- slow readers ---------------------------------------------------------------------------------


def test_slow_readers_get_whole_streams_and_gone_readers_free_everything(abused: Abused) -> None:
    """Readers taking 97 bytes at a time still get a complete, conforming stream; readers that
    stop reading (the server's writes back up and wait) and then vanish free their task.

    ``keepalive`` faults pad the streams with comment lines: 28 KB for the slow readers, 5.6 MB
    for the stuck ones (more than the 4 MB a loopback socket buffers, so the server's writes
    really wait: their request handlers are still running while the readers are stuck).
    """
    padded = {p.H_FAULT: "keepalive;n=2000"}
    huge = {p.H_FAULT: ", ".join(["keepalive;n=10000"] * 40)}
    stuck_clients = 10

    async def slow() -> bytes:
        reader, writer = await asyncio.open_connection(abused.host, abused.port, limit=256)
        try:
            writer.write(_request(STREAM, **padded))
            out = bytearray()
            while chunk := await asyncio.wait_for(reader.read(97), 10):
                out += chunk
                if out.endswith(b"0\r\n\r\n"):  # the last chunk of the reply
                    break
                await asyncio.sleep(0.0002)
            return bytes(out)
        finally:
            writer.close()

    async def stuck(release: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (abused.host, abused.port))
            await loop.sock_sendall(sock, _request(STREAM, **huge))
            await release.wait()  # never reads a byte meanwhile
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    async def run() -> tuple[list[bytes], int]:
        release = asyncio.Event()
        stuck_ones = [asyncio.ensure_future(stuck(release)) for _ in range(stuck_clients)]
        streams = await asyncio.gather(*(slow() for _ in range(20)))
        await asyncio.sleep(0.5)
        waiting = await asyncio.to_thread(handlers_running, abused.server)
        release.set()
        await asyncio.gather(*stuck_ones)
        return streams, waiting

    streams, waiting = asyncio.run(run())
    print(f"\nrequest handlers still writing while {stuck_clients} readers were stuck: {waiting}")
    assert waiting >= stuck_clients, "the stuck readers' replies did not back up"
    for raw in streams:
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        events = _dechunk(body)
        assert events.count(b": keep-alive") == 2000
        assert c.check_sse_bytes(events) == [], c.check_sse_bytes(events)[:3]
    settle(abused)
    serves_normally(abused)


def _dechunk(body: bytes) -> bytes:
    """The payload of a chunked transfer-encoded body (as far as it goes)."""
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


# --- half-open connections and slowloris ----------------------------------------------------------


def _closed_after(sock: socket.socket, trickle: bytes, every: float, limit: float) -> float:
    """Send ``trickle`` a byte at a time every ``every`` s until the server closes the
    connection; returns how long after connecting that was (``inf``: not within ``limit`` s)."""
    sock.settimeout(every)
    t0 = time.monotonic()
    pos = 0
    while time.monotonic() - t0 < limit:
        try:
            if pos < len(trickle):
                sock.send(trickle[pos : pos + 1])
                pos += 1
            data = sock.recv(65536)
            if not data:
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except OSError:  # reset by the server
            return time.monotonic() - t0
    return float("inf")


def _trickle_many(ab: Abused, trickle: bytes, n: int, limit: float = 6.0) -> list[float]:
    """``n`` clients trickling at once (one thread each), timed from their own connect."""
    out: list[float] = [float("inf")] * n

    def one(i: int) -> None:
        with socket.create_connection((ab.host, ab.port)) as sock:
            out[i] = _closed_after(sock, trickle, 0.1, limit)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(limit + 5)
    return out


def test_slowloris_header_trickle_is_cut_off(abused: Abused) -> None:
    """Headers arriving a byte every 100 ms (the whole head would take ~20 s): closed after
    the read timeout (1 s here), whatever keeps trickling in."""
    head = _request(STREAM).partition(b"\r\n\r\n")[0] + b"\r\n" + b"x-pad: " + b"a" * 200
    times = _trickle_many(abused, head, 30)
    print(f"\nheader trickle closed after {min(times):.2f}..{max(times):.2f} s")
    assert all(READ_TIMEOUT * 0.8 <= t <= READ_TIMEOUT + 2 for t in times), times
    settle(abused)
    serves_normally(abused)


def test_slowloris_body_trickle_gets_a_408(abused: Abused) -> None:
    """A complete head, then the body a byte every 100 ms: a 408 after the read timeout."""
    data = json.dumps(STREAM).encode()
    head = (
        f"POST {p.PATH_MESSAGES} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
        + f"content-length: {len(data)}\r\n\r\n"
    ).encode()

    def one() -> tuple[float, bytes]:
        with socket.create_connection((abused.host, abused.port)) as sock:
            sock.sendall(head)
            sock.settimeout(0.1)
            t0 = time.monotonic()
            got = b""
            for byte in data:
                sock.send(bytes([byte]))
                try:
                    got += sock.recv(65536)
                except TimeoutError:
                    continue
                if b"\r\n\r\n" in got:
                    break
            return time.monotonic() - t0, got

    results: list[tuple[float, bytes]] = []
    threads = [threading.Thread(target=lambda: results.append(one())) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 10
    for took, got in results:
        assert got.startswith(b"HTTP/1.1 408"), got[:200]
        body = json.loads(got.partition(b"\r\n\r\n")[2] or b"{}")
        assert c.check_error(body) == [] and "not received within" in body["error"]["message"]
        assert READ_TIMEOUT * 0.8 <= took <= READ_TIMEOUT + 2, took
    settle(abused)
    serves_normally(abused)


def test_half_open_connections_are_closed(abused: Abused) -> None:
    """Connections that send nothing, half a head, or a request whose reply they never read
    (and never close) are all closed by the server once the read timeout has passed."""
    full = _request({**STREAM, "stream": False, "max_tokens": 16})
    kinds = {"silent": b"", "half head": full[:40], "never reads": full}

    socks: list[tuple[str, socket.socket]] = []
    for name, data in kinds.items():
        for _ in range(40):
            sock = socket.create_connection((abused.host, abused.port))
            sock.sendall(data)
            socks.append((name, sock))
    t0 = time.monotonic()
    closed: dict[str, list[float]] = {name: [] for name in kinds}
    for name, sock in socks:
        sock.settimeout(max(0.1, READ_TIMEOUT + 3 - (time.monotonic() - t0)))
        try:
            while sock.recv(65536):  # the reply (never reads: here, only to see the EOF)
                pass
            closed[name].append(time.monotonic() - t0)
        except TimeoutError:
            closed[name].append(float("inf"))
        except OSError:
            closed[name].append(time.monotonic() - t0)
        finally:
            sock.close()
    print(
        "\nhalf-open closed after: " + ", ".join(f"{k} {max(v):.2f} s" for k, v in closed.items())
    )
    for name, times in closed.items():
        assert max(times) <= READ_TIMEOUT + 2, (name, times)
    settle(abused)
    serves_normally(abused)


def test_half_closed_clients_leave_nothing_behind(abused: Abused) -> None:
    """Clients that shut down their sending side right after the request (``SHUT_WR``).

    aiohttp treats the EOF as the end of the connection, so such a client may get its reply or
    just the close (whichever comes first); either way the server frees the connection.
    """
    answered = 0
    for _ in range(20):
        with socket.create_connection((abused.host, abused.port), timeout=5) as sock:
            sock.sendall(_request({**STREAM, "stream": False, "max_tokens": 16}))
            sock.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := sock.recv(65536):
                got += chunk
        assert got == b"" or got.startswith(b"HTTP/1.1 200"), got[:200]
        answered += bool(got)
    print(f"\nhalf-closed clients answered: {answered}/20")
    settle(abused)
    serves_normally(abused)
