"""The inspector: a live web page of what the app sent and what it got back.

``GET /_mockserver/ui`` serves one static page (``mockserver/static/``: HTML, CSS and
JavaScript, no build step, nothing from a CDN).  The page polls the routes below with the
admin token it was opened with (``/_mockserver/ui?token=T``) and renders everything as text
(never as markup); a strict Content-Security-Policy forbids inline script besides.

Admin routes (token-protected like the rest of ``/_mockserver/``):

- ``GET /_mockserver/ui/api/exchanges?since_id=N``: one light summary per exchange (the
  list rows), plus ``oldest_id`` so that the page drops what was cleared;
- ``GET /_mockserver/journal/{id}``: one exchange as in ``GET /_mockserver/journal``;
- ``GET /_mockserver/journal/{id}/interaction``: that exchange as a one-interaction cassette
  (YAML, ``Content-Disposition: attachment``): a synthesized reply frozen into a fixture.

All formatting happens here, when the page asks: the journal itself only keeps references.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

from aiohttp import web

from ...cassettes import cassette as cas
from ...wire import protocol as p
from ...wire.errors import ApiError
from ...wire.sse import dumps
from ..journal import Exchange, Wanted
from ..state import State
from .access import AdminCall

#: the page's paths, after ``p.ADMIN_PREFIX``
UI: Final = "/ui"
JOURNAL: Final = "/journal"
#: the files the page is made of: name -> content type
ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: no inline script or style, no other origin: rendered data can never run
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # the page's address may hold the admin token
    "cache-control": "no-cache",
}
CT_YAML: Final = "application/yaml; charset=utf-8"
PREVIEW_CHARS: Final = 160
#: methods a cassette can hold (``schemas/cassette.json``)
CASSETTE_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


#: the named parts of a page's path (``file``, ``id``)
Parts = Mapping[str, str]


# --- the page -------------------------------------------------------------------------------


def asset_bytes(name: str) -> bytes:
    """One file of the page, from the installed package."""
    return (resources.files("mockserver") / "static" / name).read_bytes()


async def page(state: State, request: web.Request, parts: Parts) -> web.Response:
    return _asset("index.html")


async def asset(state: State, request: web.Request, parts: Parts) -> web.Response:
    name = parts["file"]
    if name not in ASSETS:
        raise ApiError.not_found(f"no such file: {name}")
    return _asset(name)


def _asset(name: str) -> web.Response:
    headers = {p.H_CONTENT_TYPE: ASSETS[name], **PAGE_HEADERS}
    return web.Response(body=asset_bytes(name), headers=headers)


# --- summaries (the list rows) ----------------------------------------------------------------


def _short(text: str, n: int = PREVIEW_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _text_of(content: Any) -> str:
    """The readable text of a message's content: text blocks, else the block kinds."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == p.BLOCK_TEXT:
            parts.append(str(block.get("text", "")))
        elif kind == p.BLOCK_TOOL_RESULT:
            parts.append(f"[tool_result: {_text_of(block.get('content'))}]")
        else:
            parts.append(f"[{kind}]")
    return " ".join(part for part in parts if part)


def prompt_preview(body: Any) -> str:
    """The last user turn of a Messages request, shortened (what a reader knows it by)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return ""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return _short(_text_of(m.get("content")))
    return ""


def reply_preview(response: Any) -> str:
    """The reply in one line: its text and tool calls, or the error message."""
    if not isinstance(response, dict):
        return _short(response) if isinstance(response, str) else ""
    error = response.get("error")
    if isinstance(error, dict):
        return _short(f"{error.get('type')}: {error.get('message')}")
    content = response.get("content")
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == p.BLOCK_TOOL_USE:
            parts.append(f"{block.get('name')}(…)")
        elif block.get("type") == p.BLOCK_TEXT:
            parts.append(str(block.get("text", "")))
        else:
            parts.append(f"[{block.get('type')}]")
    return _short(" ".join(parts))


def summary(ex: Exchange) -> dict[str, Any]:
    usage = ex.usage or {}
    return {
        "id": ex.id,
        "time": ex.time,
        "method": ex.method,
        "path": ex.path,
        "model": ex.model,
        "source": ex.source,
        "status": ex.status,
        "pending": ex.status == 0 and not ex.disconnected,
        "disconnected": ex.disconnected,
        "rule": ex.rule,
        "fault": ex.fault,
        "stream": ex.stream,
        "input_tokens": usage.get(p.USAGE_INPUT),
        "output_tokens": usage.get(p.USAGE_OUTPUT),
        "cache_read_input_tokens": usage.get(p.USAGE_CACHE_READ),
        "cache_creation_input_tokens": usage.get(p.USAGE_CACHE_CREATION),
        "cost_usd": ex.cost_usd,
        "duration_ms": ex.duration_ms,
        "prompt": prompt_preview(ex.body),
        "reply": reply_preview(ex.response),
        "violations": len(ex.violations),
        "near_misses": len(ex.near_misses),
    }


# --- an exchange as a cassette interaction ------------------------------------------------------


def exchange_interaction(ex: Exchange) -> cas.Interaction:
    """``ex`` as the interaction that replays it: the request as the cassettes store it
    (allow-listed headers, parsed body) and the reply as it was written."""
    if ex.status == 0:
        raise ApiError(409, p.INVALID_REQUEST, f"exchange {ex.id} is still in progress")
    if ex.method not in CASSETTE_METHODS:
        raise ApiError.invalid(f"exchange {ex.id}: a cassette cannot hold a {ex.method} request")
    request = cas.RecordedRequest(
        method=ex.method,
        path=ex.path,
        headers=cas.keep_headers(ex.headers, cas.REQUEST_HEADERS),
        body=ex.body,
        query=ex.query,
    )
    headers = {p.H_REQUEST_ID: ex.request_id} if ex.request_id else {}
    if ex.written is not None:
        stream = ex.written
        events = stream.written()
        at = stream.at_ms[: len(events)] if stream.at_ms is not None else None
        response = cas.RecordedResponse(
            ex.status,
            {p.H_CONTENT_TYPE: p.CT_SSE, **headers},
            events=events,
            at_ms=at,
            disconnected=stream.disconnect_at is not None,
        )
    else:
        if isinstance(ex.response, str):
            body = ex.response.encode()
        elif ex.response is None:
            body = b""
        else:
            body = dumps(ex.response).encode()
        response = cas.RecordedResponse(ex.status, {p.H_CONTENT_TYPE: p.CT_JSON, **headers}, body)
    meta = {
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "exported_from": f"mockserver inspector, exchange {ex.id} ({ex.source})",
    }
    name = prompt_preview(ex.body) or f"{ex.method} {ex.path}"
    return cas.Interaction(request, response, name=_short(name, 60), meta=meta)


def exchange_cassette(ex: Exchange) -> str:
    """YAML of a cassette holding just ``ex`` (loads with ``cassette.loads``)."""
    inter = exchange_interaction(ex)
    return cas.dumps(cas.Cassette(interactions=[inter], name=f"exchange-{ex.id}"))


# --- admin routes -------------------------------------------------------------------------------


async def _find(state: State, parts: Parts) -> Exchange:
    raw = parts["id"]
    wanted = int(raw)
    for ex in await state.ops.exchanges(Wanted(since_id=wanted - 1)):
        if ex.id == wanted:
            return ex
        break
    raise ApiError.not_found(f"no exchange {raw} in the journal (cleared, or not yet made)")


async def exchanges(state: State, request: web.Request, parts: Parts) -> Any:
    raw = request.query.get("since_id") or "0"
    if not raw.isdigit():
        raise ApiError.invalid(f"since_id: Input should be a valid integer, got {raw!r}")
    found = await state.ops.exchanges(Wanted(since_id=int(raw)))
    oldest, count = await state.ops.journal_span()
    return {"exchanges": [summary(ex) for ex in found], "oldest_id": oldest, "count": count}


async def exchange(state: State, request: web.Request, parts: Parts) -> Any:
    return (await _find(state, parts)).to_json()


async def interaction(state: State, request: web.Request, parts: Parts) -> Any:
    ex = await _find(state, parts)
    text = exchange_cassette(ex)
    disposition = f'attachment; filename="exchange-{ex.id}.yaml"'
    return web.Response(
        body=text.encode(),
        headers={p.H_CONTENT_TYPE: CT_YAML, "content-disposition": disposition},
    )


#: the page's routes: the path after ``/_mockserver``, the call, whether it shows data (a
#: static file of the page holds none: only the Host lock applies).  Looked up by the admin
#: API's one route (``find``): an app registers no route of its own for them, which keeps
#: making a server (one per test in the pytest plugin) cheap.
PAGES: Final = (
    (re.compile(UI + "/?"), page, False),
    (re.compile(UI + "/api/exchanges"), exchanges, True),
    (re.compile(UI + "/(?P<file>[^/]+)"), asset, False),
    (re.compile(JOURNAL + "/(?P<id>[0-9]{1,18})"), exchange, True),
    (re.compile(JOURNAL + "/(?P<id>[0-9]{1,18})/interaction"), interaction, True),
)
READ_METHODS: Final = ("GET", "HEAD")


def find(request: web.Request, tail: str) -> tuple[AdminCall, bool] | None:
    """The inspector's call for ``/_mockserver{tail}`` and whether it shows data, or None when
    the path is not the inspector's."""
    for pattern, call, data in PAGES:
        match = pattern.fullmatch(tail)
        if match is not None:
            if request.method not in READ_METHODS:
                return _not_allowed, data
            return functools.partial(call, parts=match.groupdict()), data
    return None


async def _not_allowed(state: State, request: web.Request) -> Any:
    allowed = ", ".join(READ_METHODS)
    raise ApiError(
        405,
        p.NOT_FOUND,
        f"{request.method} not allowed here; use {allowed}",
        headers={"allow": allowed},
    )
