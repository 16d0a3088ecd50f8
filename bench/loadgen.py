"""A small HTTP/1.1 load generator on raw asyncio protocols (keep-alive, one request in flight
per connection), measuring latency, time to first event and, for paced streams, how late
each event arrives against its recorded offset.

It runs in its own process (pinned to its own core by the caller):
``python -m bench.loadgen CONFIG_JSON`` prints one JSON result line.  Its own CPU use is
reported (``client_cpu``: CPU seconds per wall second) so that a saturated generator shows.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

now = time.perf_counter

_CRLF = b"\r\n"


class ResponseError(Exception):
    pass


@dataclass
class _Response:
    status: int = 0
    events: list[float] = field(default_factory=list)


class Client(asyncio.Protocol):
    """One keep-alive connection; ``request(data)`` sends and waits for the whole reply."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future[_Response] | None = None
        self.resp = _Response()
        self.state = 0  # 0 head, 1 content-length body, 2 chunk size, 3 chunk data, 4 chunk crlf
        self.need = 0
        self.last = b""  # last byte of the body so far (event separators across reads)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ResponseError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        t = now()
        buf = self.buf + data if self.buf else data
        self.buf = b""
        try:
            self._feed(buf, t)
        except (ValueError, IndexError) as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(ResponseError(f"bad response: {exc}"))
            if self.transport is not None:
                self.transport.close()

    # -- parsing -------------------------------------------------------------------------
    def _body(self, chunk: bytes, t: float) -> None:
        n = (self.last + chunk).count(b"\n\n") if self.last == b"\n" else chunk.count(b"\n\n")
        if n:
            self.resp.events.extend([t] * n)
        self.last = chunk[-1:]

    def _feed(self, buf: bytes, t: float) -> None:
        pos, end = 0, len(buf)
        while pos < end:
            st = self.state
            if st == 0:
                idx = buf.find(b"\r\n\r\n", pos)
                if idx < 0:
                    self.buf = buf[pos:]
                    return
                head = buf[pos:idx].lower()
                self.resp.status = int(head[9:12])
                pos = idx + 4
                if b"transfer-encoding: chunked" in head:
                    self.state = 2
                else:
                    cl = head.find(b"content-length:")
                    self.need = int(head[cl + 15 : head.find(_CRLF, cl)]) if cl >= 0 else 0
                    self.state = 1
                    if self.need == 0:
                        self._done()
            elif st == 1:
                take = min(self.need, end - pos)
                self._body(buf[pos : pos + take], t)
                pos += take
                self.need -= take
                if self.need == 0:
                    self._done()
            elif st == 2:
                idx = buf.find(_CRLF, pos)
                if idx < 0:
                    self.buf = buf[pos:]
                    return
                size = int(buf[pos:idx].split(b";")[0], 16)
                pos = idx + 2
                if size == 0:
                    self.state, self.need = 5, 2  # final CRLF (no trailers expected)
                else:
                    self.state, self.need = 3, size
            elif st == 3:
                take = min(self.need, end - pos)
                self._body(buf[pos : pos + take], t)
                pos += take
                self.need -= take
                if self.need == 0:
                    self.state, self.need = 4, 2
            else:  # 4: CRLF after a chunk; 5: CRLF ending the body
                take = min(self.need, end - pos)
                pos += take
                self.need -= take
                if self.need == 0:
                    if st == 5:
                        self._done()
                    else:
                        self.state = 2

    def _done(self) -> None:
        resp, self.resp = self.resp, _Response()
        self.state, self.last = 0, b""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(resp)

    async def request(self, data: bytes) -> _Response:
        if self.transport is None:
            raise ResponseError("not connected")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


# --- requests ------------------------------------------------------------------------------


def http_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def request_source(cfg: dict[str, Any]) -> Callable[[], bytes]:
    """Next request's bytes: cycling through a file of bodies, or a fresh prompt each time."""
    host, port, path, headers = cfg["host"], cfg["port"], cfg["path"], cfg["headers"]
    if cfg.get("fresh"):
        template = json.dumps(cfg["fresh"], separators=(",", ":"))
        counter = itertools.count()
        tag = f"{os.getpid()}-{random.randrange(1 << 30)}"

        def fresh() -> bytes:
            body = template.replace("{N}", f"{tag}-{next(counter)}").encode()
            return http_request(host, port, path, headers, body)

        return fresh
    with open(cfg["bodies"], "rb") as f:
        bodies = [line.rstrip(b"\n") for line in f if line.strip()]
    prepared = [http_request(host, port, path, headers, b) for b in bodies]
    start = random.randrange(len(prepared)) if cfg.get("random_start") else 0
    it = itertools.islice(itertools.cycle(prepared), start, None)
    return lambda: next(it)


# --- measuring -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summary_ms(values: Sequence[float]) -> dict[str, float | None]:
    s = sorted(values)

    def pick(q: float) -> float | None:
        return round(s[min(len(s) - 1, round(q * (len(s) - 1)))] * 1000, 3) if s else None

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": pick(1.0)}


@dataclass
class _Stats:
    ok: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    latency: list[float] = field(default_factory=list)
    ttfe: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    events: int = 0
    short_streams: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)


async def run(cfg: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    concurrency: int = cfg["concurrency"]
    duration: float = cfg["duration"]
    warmup: float = cfg.get("warmup", 1.0)
    stagger: float = cfg.get("stagger", 0.0)
    at_ms: list[float] | None = cfg.get("at_ms")
    expect_events: int = cfg.get("events", 0)
    timeout: float = cfg.get("timeout", 30.0)
    next_request = request_source(cfg)
    stats = _Stats()
    t0 = now()
    measure_from, measure_to = t0 + warmup, t0 + warmup + duration

    async def connect() -> Client:
        _, proto = await loop.create_connection(Client, cfg["host"], cfg["port"])
        return proto

    async def worker(k: int) -> None:
        if stagger:
            await asyncio.sleep(stagger * k / concurrency)
        client: Client | None = None
        while now() < measure_to:
            try:
                if client is None or client.transport is None:
                    client = await connect()
                data = next_request()
                sent = now()
                resp = await asyncio.wait_for(client.request(data), timeout)
            except (TimeoutError, OSError, ResponseError) as exc:
                if client is not None and client.transport is not None:
                    client.transport.close()
                if sent_in_window(now()):
                    stats.errors += 1
                    kind = f"{type(exc).__name__}: {exc}"[:80]
                    stats.error_kinds[kind] = stats.error_kinds.get(kind, 0) + 1
                client = None
                await asyncio.sleep(0.01)
                continue
            done = now()
            if not sent_in_window(sent):
                continue
            stats.statuses[resp.status] = stats.statuses.get(resp.status, 0) + 1
            if resp.status != 200:
                continue
            stats.ok += 1
            stats.latency.append(done - sent)
            ev = resp.events
            if ev:
                stats.events += len(ev)
                stats.ttfe.append(ev[0] - sent)
                if expect_events and len(ev) != expect_events:
                    stats.short_streams += 1
                if at_ms is not None:
                    speed = cfg.get("speed", 1.0)
                    stats.lateness.extend(
                        (t - sent) - at_ms[i] / 1000 / speed for i, t in enumerate(ev[: len(at_ms)])
                    )
        if client is not None and client.transport is not None:
            client.transport.close()

    def sent_in_window(t: float) -> bool:
        return measure_from <= t <= measure_to

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = now() - t0
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out: dict[str, Any] = {
        "tool": "python",
        "concurrency": concurrency,
        "duration_s": duration,
        "requests": stats.ok,
        "rps": round(stats.ok / duration, 1),
        "errors": stats.errors + sum(n for s, n in stats.statuses.items() if s != 200),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "latency_ms": summary_ms(stats.latency),
        "client_cpu": round(cpu / wall, 3),
    }
    if stats.error_kinds:
        out["error_kinds"] = stats.error_kinds
    if stats.ttfe:
        out["ttfe_ms"] = summary_ms(stats.ttfe)
        out["events"] = stats.events
        out["events_per_stream"] = round(stats.events / max(1, stats.ok), 2)
        out["short_streams"] = stats.short_streams
    if at_ms is not None:
        out["lateness_ms"] = summary_ms(stats.lateness)
    return out


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[0])
    raise_fd_limit()
    if cfg.get("cpu") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cfg["cpu"]})
    # no collector pauses in the client (a short run: its cycles can wait), or thousands of
    # open connections make it stop for tens of ms and report the server's events late
    gc.freeze()
    gc.disable()
    result = asyncio.run(run(cfg))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
