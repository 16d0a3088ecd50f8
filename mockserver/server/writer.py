"""The write step: put a ``Reply`` on the wire, honouring timing and delivery faults.

Streams are written event by event as they are produced (never buffered whole).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

from aiohttp import web

from ..wire import protocol as p
from ..wire.reply import Disconnected, Reply
from ..wire.sse import Event


def _abort(request: web.Request) -> None:
    """Drop the connection: what was written is flushed, then the peer sees EOF mid-reply.

    ``close`` (FIN after the buffered bytes) rather than ``abort`` (RST), so the client
    reliably receives every event written before the drop; the reply is still cut short.
    """
    transport = request.transport
    if transport is not None:
        transport.close()


async def _pause(request: web.Request, seconds: float) -> None:
    """Sleep ``seconds``, giving up as soon as the client has gone away."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client went away during a stall")
        await asyncio.sleep(min(left, 0.05))


def _pieces(data: bytes, rng: random.Random) -> list[bytes]:
    """Cut ``data`` at 1-8 random points (possibly inside a line or a UTF-8 character)."""
    if len(data) < 2:
        return [data]
    n = rng.randint(1, min(8, len(data) - 1))
    cuts = sorted({rng.randrange(1, len(data)) for _ in range(n)})
    out, last = [], 0
    for c in cuts:
        out.append(data[last:c])
        last = c
    out.append(data[last:])
    return out


async def write_reply(
    request: web.Request,
    reply: Reply,
    speed: float,
    *,
    headers: dict[str, str] | None = None,
    sent: list[float] | None = None,
) -> web.StreamResponse:
    """Write ``reply``; ``speed`` divides recorded delays (``inf`` = no delays).

    ``headers``, when given, are sent instead of ``reply.headers`` (a dict the caller hands
    over: it may be changed).  ``sent``, when given, gets the moment each stream event was
    written, in ms after the response headers (for the journal's timeline).
    """
    if reply.disconnect_at == -1:
        _abort(request)
        raise Disconnected("disconnect before headers")
    headers = dict(reply.headers) if headers is None else headers
    if not reply.is_stream:
        # a JSON reply is one "event", its body, at index 0
        headers.setdefault(p.H_CONTENT_TYPE, p.CT_JSON)
        pause = reply.stall_all_ms + reply.stall_ms.get(0, 0.0)
        plain = not reply.preamble and reply.rechunk_seed is None and reply.disconnect_at is None
        if plain:
            if pause:
                await _pause(request, pause / 1000)
            return web.Response(status=reply.status, body=reply.body or b"", headers=headers)
        resp = web.StreamResponse(status=reply.status, headers=headers)
        await resp.prepare(request)
        if reply.preamble:
            await resp.write(reply.preamble)
        if pause:
            await _pause(request, pause / 1000)
        if reply.disconnect_at == 0:
            _abort(request)
            raise Disconnected("disconnect before the body")
        await _write_bytes(resp, reply.body or b"", reply.rechunk_seed)
        if reply.disconnect_at is not None:
            _abort(request)
            raise Disconnected("disconnect after the body")
        await resp.write_eof()
        return resp

    headers.setdefault(p.H_CONTENT_TYPE, p.CT_SSE)
    headers.setdefault("cache-control", "no-cache")
    resp = web.StreamResponse(status=reply.status, headers=headers)
    await resp.prepare(request)
    start = time.monotonic()
    if reply.preamble:
        await resp.write(reply.preamble)
    if reply.live is not None:
        await _write_live(request, resp, reply.live)
        await resp.write_eof()
        return resp
    at = reply.at_ms
    timed = at is not None and speed != float("inf")
    no_fault = (
        reply.rechunk_seed is None
        and reply.disconnect_at is None
        and not reply.stall_ms
        and not reply.stall_all_ms
    )
    if no_fault:  # the common case: events due together go out in one write (untimed: all)
        at_ms = at if timed and at is not None else ()
        await _write_timed(resp, reply.events or (), at_ms, speed, reply.tail, start, sent)
        return resp
    rng = random.Random(reply.rechunk_seed) if reply.rechunk_seed is not None else None
    for idx, event in enumerate(reply.events or ()):
        if reply.disconnect_at == idx:
            _abort(request)
            raise Disconnected(f"disconnect before event {idx}")
        pause = reply.stall_ms.get(idx, 0.0) + reply.stall_all_ms
        if pause:
            await _pause(request, pause / 1000)
        if timed and at is not None and idx < len(at):
            due = start + at[idx] / 1000 / speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        data = event.wire()
        if rng is None:
            await resp.write(data)
        else:
            for piece in _pieces(data, rng):
                await resp.write(piece)
        if sent is not None:
            sent.append(_ms_since(start))
    if reply.disconnect_at is not None and reply.disconnect_at >= len(reply.events or ()):
        _abort(request)
        raise Disconnected("disconnect after the last event")
    if reply.tail:
        await resp.write(reply.tail)
    await resp.write_eof()
    return resp


async def _write_timed(
    resp: web.StreamResponse,
    events: tuple[Event, ...],
    at: tuple[float, ...],
    speed: float,
    tail: bytes,
    start: float | None = None,
    sent: list[float] | None = None,
) -> None:
    """Write each event when it is due (``at`` ms after the start, divided by ``speed``), and
    end the reply.

    Events that are due already when the one before is written (recorded a few ms apart,
    or the server is behind under load) go out in that same write: the same bytes at the
    same moments, in fewer system calls, so a busy server catches up instead of falling
    further behind.
    """
    start = time.monotonic() if start is None else start
    pending: list[bytes] = []
    for idx, event in enumerate(events):
        if idx < len(at):
            delay = start + at[idx] / 1000 / speed - time.monotonic()
            if delay > 0:
                if pending:
                    await resp.write(b"".join(pending))
                    if sent is not None:
                        sent.extend([_ms_since(start)] * (idx - len(sent)))
                    pending = []
                await asyncio.sleep(delay)
        pending.append(event.wire())
    if tail:
        pending.append(tail)
    # the last write ends the reply too (with the headers, when nothing went before: a stream
    # whose events are all due at once leaves in one system call, as a JSON reply does)
    await resp.write_eof(b"".join(pending))
    if sent is not None:
        sent.extend([_ms_since(start)] * (len(events) - len(sent)))


def _ms_since(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 3)


async def _write_bytes(resp: web.StreamResponse, data: bytes, seed: int | None) -> None:
    if seed is None:
        await resp.write(data)
        return
    for piece in _pieces(data, random.Random(seed)):
        await resp.write(piece)


async def _write_live(
    request: web.Request, resp: web.StreamResponse, live: AsyncIterator[bytes]
) -> None:
    """Write a stream that is still arriving, each chunk as soon as it comes."""
    try:
        async for chunk in live:
            await resp.write(chunk)
    except Disconnected:
        _abort(request)
        raise
    finally:
        aclose = getattr(live, "aclose", None)
        if aclose is not None:
            await aclose()
