"""The ceilings: a bare aiohttp app answering every request with fixed bytes.

``POST /json`` (or any path) returns the same ~400-byte JSON body as a replayed reply;
``POST /stream`` writes the same 9 SSE frames as a replayed stream, in the write that ends the
reply (with the headers: one system call), as the mock does when no timing is asked.
Both read the request body, as any real server must.  No access log, like the mock.

Run as ``python -m bench.ceiling --port N [--loop asyncio|uvloop]``: on the same kind of loop
as the mock it is compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from aiohttp import web

from mockserver.config import LOOPS
from mockserver.server.loops import run

from .fixtures import reply_sizes

BODY, FRAMES = reply_sizes()
STREAM = b"".join(FRAMES)
JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


async def fixed_json(request: web.Request) -> web.StreamResponse:
    await request.read()
    return web.Response(body=BODY, headers=JSON_HEADERS)


async def fixed_stream(request: web.Request) -> web.StreamResponse:
    await request.read()
    resp = web.StreamResponse(headers=SSE_HEADERS)
    await resp.prepare(request)
    await resp.write_eof(STREAM)
    return resp


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/stream", fixed_stream)
    app.router.add_route("*", "/{tail:.*}", fixed_json)
    return app


async def _serve(host: str, port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"ceiling serving on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=LOOPS, default=None)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        run(_serve(args.host, args.port), args.loop)


if __name__ == "__main__":
    main()
