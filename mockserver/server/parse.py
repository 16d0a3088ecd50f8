"""The parse step's reading of a request body: size limit, read deadline, JSON, nesting.

Shared by the API pipeline and the admin API, so both answer a bad body the same way.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ..wire import protocol as p
from ..wire.errors import ApiError
from ..wire.unicode import lone_surrogate, may_hold_surrogates

#: deepest JSON nesting accepted (deeper bodies are a 400): far beyond any real request, and
#: shallow enough for every recursive step after parsing (checks, matching, journal, YAML)
MAX_JSON_DEPTH = 128


async def read_body(request: web.Request, limit: int, timeout: float | None = None) -> bytes:
    """Read at most ``limit`` bytes; larger bodies are refused without being read whole.

    A declared ``Content-Length`` over the limit is refused before any body byte is read; a
    chunked body is cut off as soon as it passes the limit.  ``timeout`` bounds the time the
    client may take to send the whole body (a slow trickle gets a 408).
    """
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, p.REQUEST_TOO_LARGE, "Request exceeds the maximum size")
    content = request.content
    if content.is_eof():  # the whole body came with the head (the usual case): no waiting
        whole = content.read_nowait()
        if len(whole) > limit:
            raise ApiError(413, p.REQUEST_TOO_LARGE, "Request exceeds the maximum size")
        return whole
    data = bytearray()
    too_large = False
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_any():
                data += chunk
                if len(data) > limit:
                    too_large = True
                    break
    except TimeoutError:
        raise ApiError(
            408, p.INVALID_REQUEST, f"Request body not received within {timeout:g} s"
        ) from None
    if too_large:
        # (no exception object is kept in a local: a traceback -> frame -> exception cycle
        # would hold the buffer until the next full garbage collection)
        data.clear()
        raise ApiError(413, p.REQUEST_TOO_LARGE, "Request exceeds the maximum size")
    return bytes(data)


def json_depth_over(doc: Any, limit: int) -> bool:
    """True when ``doc`` nests lists/objects more than ``limit`` levels deep (iterative)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep() -> ApiError:
    return ApiError.invalid(f"Request body is nested too deeply (over {MAX_JSON_DEPTH} levels)")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


_INF = float("inf")


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, or a 400 that says what is wrong: not UTF-8, not JSON (``NaN``
    and ``Infinity`` are not JSON; a number past the float range is refused), a string with a
    lone surrogate (it cannot be UTF-8 text), nested deeper than ``MAX_JSON_DEPTH``."""
    if not raw.strip():
        raise ApiError.invalid("Request body is empty: send a JSON object")
    try:
        text = raw.decode("utf-8")  # strict: raw surrogate bytes are not UTF-8
    except UnicodeDecodeError as exc:
        raise ApiError.invalid(
            f"Request body is not valid UTF-8: byte {raw[exc.start]:#04x} at offset {exc.start}"
        ) from None
    try:
        doc = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except ValueError as exc:
        raise ApiError.invalid(f"Request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise _too_deep() from None
    # cheap pre-test: nesting deeper than the limit needs more brackets than the limit
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth_over(doc, MAX_JSON_DEPTH):
        raise _too_deep()
    if may_hold_surrogates(text) and (found := lone_surrogate(doc)) is not None:
        where, char = found
        raise ApiError.invalid(
            f"Request body is not valid JSON: {where}: lone surrogate {char} (a string must be"
            " valid Unicode: a surrogate needs its pair)"
        )
    return doc
