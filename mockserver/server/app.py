"""The HTTP app: routes, the parse -> check -> source -> fault -> write pipeline, errors."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from aiohttp import hdrs, web

from ..accounting.tokens import TokenCounter
from ..config import Settings
from ..sources.synth import make_source
from ..wire import protocol as p
from ..wire.errors import ApiError, error_body
from ..wire.reply import Reply
from ..wire.request import ApiRequest
from ..wire.sse import dumps
from .admin import api as admin
from .checks import rules
from .faults import FaultPlan, FaultSpecError
from .journal import Exchange, WrittenStream, key_label
from .state import STATE, State
from .writer import Disconnected, write_reply

log = logging.getLogger("mockserver")

Handler = Callable[[State, ApiRequest], Awaitable[Reply]]
_T = TypeVar("_T")


# --- parse ----------------------------------------------------------------------------


#: deepest JSON nesting accepted (deeper bodies are a 400): far beyond any real request, and
#: shallow enough for every recursive step after parsing (checks, matching, journal, YAML)
MAX_JSON_DEPTH = 128
#: bodies above this size are checked (tokenized) in a worker thread, off the event loop
LARGE_BODY_BYTES = 256 * 1024
#: longest error message sent (longer ones, which echo a huge value, are cut)
MAX_ERROR_MESSAGE = 2000


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


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ApiError.invalid("Request body is empty: send a JSON object")
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        raise ApiError.invalid("Request body is not valid UTF-8 JSON") from None
    except ValueError as exc:
        raise ApiError.invalid(f"Request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise _too_deep() from None
    # cheap pre-test: nesting deeper than the limit needs more brackets than the limit
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth_over(doc, MAX_JSON_DEPTH):
        raise _too_deep()
    return doc


# --- route handlers --------------------------------------------------------------------


async def messages(state: State, req: ApiRequest) -> Reply:
    assert state.source is not None
    unchecked = getattr(state.source, "reply_unchecked", None)
    if unchecked is not None:  # record modes: the upstream, not our rules, judges the request
        reply: Reply = await unchecked(req)
        return reply
    api_keys = state.settings.api_keys
    checked = req.checked
    if checked is not None:  # these bytes passed before: only the header checks can differ
        rules.check_auth(req, api_keys)
        rules.check_version(req, state.profile)
        return await state.source.reply(req, checked)
    # exact_tokens=False: no source reads ``input_tokens``, so only a prompt that may be near
    # the context limit is tokenized; a small body is checked here, without a coroutine more
    check = functools.partial(
        rules.check, req, state.profile, state.counter, api_keys=api_keys, exact_tokens=False
    )
    checked = await _off_loop(req, check) if req.raw_size > LARGE_BODY_BYTES else check()
    if req.raw:
        state.checked.put(req.raw, checked)
    return await state.source.reply(req, checked)


async def _off_loop(req: ApiRequest, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``fn(*args, **kwargs)``; in a worker thread for a large body, so that tokenizing a huge
    prompt (seconds for tens of MB) does not stall every other connection."""
    if req.raw_size > LARGE_BODY_BYTES:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)


async def count_tokens(state: State, req: ApiRequest) -> Reply:
    n = await _off_loop(
        req,
        rules.check_count_tokens,
        req,
        state.profile,
        state.counter,
        api_keys=state.settings.api_keys,
    )
    return Reply(status=200, body=dumps({"input_tokens": n}).encode(), source="synth")


def _model_json(state: State, model_id: str) -> dict[str, Any]:
    info = state.profile.model(model_id)
    assert info is not None
    return {
        "type": "model",
        "id": info.id,
        "display_name": info.display_name,
        "created_at": info.created_at,
        "max_input_tokens": state.profile.context_window,
        "max_tokens": state.profile.max_output_tokens,
    }


def _query_int(query: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError.invalid(f"{name}: Input should be a valid integer") from None
    if not lo <= value <= hi:
        raise ApiError.invalid(f"{name}: Input should be between {lo} and {hi}")
    return value


async def list_models(state: State, req: ApiRequest) -> Reply:
    rules.check_auth(req, state.settings.api_keys)
    rules.check_version(req, state.profile)
    query = dict(req.extras.get("query_params", {}))
    limit = _query_int(query, "limit", 20, 1, 1000)
    ids = [m.id for m in state.profile.models]
    start, end = 0, len(ids)
    if "after_id" in query:
        start = ids.index(query["after_id"]) + 1 if query["after_id"] in ids else len(ids)
    if "before_id" in query:
        end = ids.index(query["before_id"]) if query["before_id"] in ids else 0
        start = max(start, end - limit)
    page = ids[start:end][:limit]
    body = {
        "data": [_model_json(state, m) for m in page],
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
        "has_more": start + len(page) < end,
    }
    return Reply(status=200, body=dumps(body).encode(), source="synth")


async def get_model(state: State, req: ApiRequest) -> Reply:
    rules.check_auth(req, state.settings.api_keys)
    rules.check_version(req, state.profile)
    model_id = req.path[len(p.PATH_MODELS) + 1 :]
    if state.profile.model(model_id) is None:
        raise ApiError(404, p.NOT_FOUND, f"model: {model_id}")
    return Reply(status=200, body=dumps(_model_json(state, model_id)).encode(), source="synth")


def route(method: str, path: str) -> Handler | None:
    if method == "POST":
        if path == p.PATH_MESSAGES:
            return messages
        if path == p.PATH_COUNT_TOKENS:
            return count_tokens
    elif method == "GET":
        if path == p.PATH_MODELS:
            return list_models
        if path.startswith(p.PATH_MODELS + "/") and "/" not in path[len(p.PATH_MODELS) + 1 :]:
            return get_model
    return None


# --- error replies ---------------------------------------------------------------------


def error_reply(state: State, exc: ApiError, request_id: str) -> Reply:
    dialect = state.profile.dialect
    message = (
        exc.deepseek_message if dialect == "deepseek" and exc.deepseek_message else exc.message
    )
    if len(message) > MAX_ERROR_MESSAGE:  # a huge value echoed back (e.g. a 2 MB model name)
        cut = len(message) - MAX_ERROR_MESSAGE
        message = f"{message[:MAX_ERROR_MESSAGE]}... ({cut} more characters)"
    body = error_body(dialect, exc.error_type, message, request_id)
    return Reply(status=exc.status, headers=exc.headers, body=dumps(body).encode(), source="error")


#: profile ratelimit key -> the names of its limit, remaining and reset headers
_RATELIMIT_HEADERS = tuple(
    (key, *(f"{p.RATELIMIT_PREFIX}{bucket}-{part}" for part in ("limit", "remaining", "reset")))
    for key, bucket in (
        ("requests_limit", "requests"),
        ("input_tokens_limit", "input-tokens"),
        ("output_tokens_limit", "output-tokens"),
    )
)


@functools.lru_cache(maxsize=4)
def _reset_at(second: int) -> str:
    """The ``*-reset`` value for requests in the given second (one minute later)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second + 60))


class _RatelimitCache:
    """The ``anthropic-ratelimit-*`` headers of the current second, made once per second:
    ``(limits, second, headers)``, one tuple (servers in several threads share it)."""

    entry: tuple[Mapping[str, int] | None, int, dict[str, str]] = (None, -1, {})


def ratelimit_headers(state: State) -> Mapping[str, str]:
    """The profile's ``anthropic-ratelimit-*`` headers (shared: do not change the mapping)."""
    limits = state.profile.ratelimit
    second = int(time.time())
    cached_limits, cached_second, cached = _RatelimitCache.entry
    if cached_limits is limits and cached_second == second:
        return cached
    reset = _reset_at(second)
    out: dict[str, str] = {}
    for key, limit_name, remaining_name, reset_name in _RATELIMIT_HEADERS:
        if key in limits:
            out[limit_name] = out[remaining_name] = str(limits[key])
            out[reset_name] = reset
    _RatelimitCache.entry = (limits, second, out)
    return out


# --- the pipeline ----------------------------------------------------------------------


async def dispatch(request: web.Request) -> web.StreamResponse:
    """The app's catch-all route: the API pipeline (``front_handler`` skips the routing)."""
    return await handle_api(request.app[STATE], request)


async def handle_api(state: State, request: web.Request) -> web.StreamResponse:
    """One API request: parse -> check -> source -> fault -> write, journaled and charged."""
    state.in_flight += 1
    try:
        state.served += 1
        t0 = time.monotonic()
        request_id = state.new_request_id()
        method = request.method
        path = request.path
        handler = route(method, path)
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = request.query_string
        body: Any = None
        ex: Exchange | None = None
        try:
            raw = await read_body(
                request, state.profile.max_request_bytes, state.settings.read_timeout
            )
            checked = None
            if handler is not None and method == "POST":
                # the same bytes checked before: their parsed body and checks are reused
                checked = state.checked.get(raw) if handler is messages else None
                body = checked.body if checked is not None else parse_json(raw)
            req = ApiRequest(
                method,
                path,
                query,
                headers,
                body,
                len(raw),
                request_id,
                time.time(),
                {"query_params": dict(request.query)} if query else _NO_EXTRAS,
                raw,
                checked,
            )
            ex = _arrived(state, req)
            if handler is None:
                raise ApiError.not_found()
            plan = fault_plan(state, req)
            if plan:
                # a fault that replaces the reply skips the source (no upstream call, no replay
                # turn used)
                source_reply = None if plan.error is not None else await handler(state, req)
                reply = plan.reply(
                    source_reply,
                    dialect=state.profile.dialect,
                    request_id=request_id,
                    ratelimit=state.profile.ratelimit,
                )
            else:  # the usual request: no fault to plan or apply
                reply = await handler(state, req)
        except ApiError as exc:
            reply = error_reply(state, exc, request_id)
            if ex is None:  # its body could not be read or parsed: an entry without its parts
                unread = ApiRequest(method, path, query, headers, body, 0, request_id, time.time())
                ex = _arrived(state, unread, read=False)
        if path == p.PATH_MESSAGES:
            out_headers = {
                p.H_REQUEST_ID: request_id,
                p.H_SOURCE: reply.source,
                **ratelimit_headers(state),
                p.H_COST: _charge(state, ex, reply),
                **reply.headers,
            }
        else:
            out_headers = {p.H_REQUEST_ID: request_id, p.H_SOURCE: reply.source, **reply.headers}
        _finish_exchange(ex, reply, t0)
        try:
            return await write_reply(request, reply, state.speed, headers=out_headers)
        except (Disconnected, ConnectionError) as exc:
            # the reply asked for a drop, or the client went away (e.g. its timeout during a
            # stall): the connection is closed, so aiohttp's attempt to finish this placeholder
            # fails quietly as a premature disconnection (no error log, server stays healthy)
            if isinstance(exc, Disconnected):
                ex.fault = ex.fault or "disconnect"
            elif not _client_gone(request):  # not the client's socket (e.g. an upstream reset)
                log.warning("connection error while writing %s %s: %s", method, path, exc)
                if request.transport is not None:
                    request.transport.close()  # the reply is half-written: cut it off
            return web.Response(status=reply.status)
    finally:
        state.in_flight -= 1


#: ``ApiRequest.extras`` of a request without a query string
_NO_EXTRAS: Mapping[str, Any] = MappingProxyType({})


def _arrived(state: State, req: ApiRequest, *, read: bool = True) -> Exchange:
    """The journal entry of ``req`` as it arrives (its reply is filled in later); ``read``
    False: its body could not be read, and its key is not labelled."""
    return state.journal.open(
        time=req.received_at,
        method=req.method,
        path=req.path,
        query=req.query,
        headers=req.headers,
        body=req.body,
        request_id=req.request_id,
        model=req.model,
        stream=req.stream,
        api_key=key_label(req.api_key) if read else "none",
    )


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def fault_plan(state: State, req: ApiRequest) -> FaultPlan:
    """The faults for ``req`` (header, then matching rules); a bad spec is a 400."""
    try:
        return state.faults.plan(req)
    except FaultSpecError as exc:
        raise ApiError.invalid(str(exc)) from None


def _charge(state: State, ex: Exchange, reply: Reply) -> str:
    """Cost of a ``/v1/messages`` reply (``"0"`` for errors), counted in the usage totals."""
    usage = reply.message.get("usage") if reply.message is not None else None
    if reply.status != 200 or not isinstance(usage, dict) or reply.disconnect_at == -1:
        return "0"
    ex.cost_usd = state.usage.record(usage, ex.model, ex.api_key)
    return ex.cost_usd


def _finish_exchange(ex: Exchange, reply: Reply, t0: float) -> None:
    ex.status = reply.status
    ex.source = reply.source
    ex.fault = reply.fault
    ex.duration_ms = round((time.monotonic() - t0) * 1000, 3)
    message = reply.message
    if message is not None:  # (shared with the reply, which nothing changes)
        ex.usage = message.get("usage") or {}
        ex.response = message
    elif reply.body is not None:
        try:
            ex.response = json.loads(reply.body)
        except ValueError:
            ex.response = reply.body.decode("utf-8", "replace")
    if reply.events is not None:  # by reference: rendered only when the journal is read
        ex.written = WrittenStream.of(reply)
    bind = reply.extras.get("on_exchange")  # sources that fill in journal fields (late)
    if bind is not None:
        bind(ex)


@web.middleware
async def guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Last line of defence: an unexpected exception is a 500 ``api_error``, never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        return _recover(request.app[STATE], request, exc)


def _recover(state: State, request: web.Request, exc: Exception) -> web.StreamResponse:
    """The answer to a request whose handler raised ``exc`` unexpectedly."""
    if isinstance(exc, ConnectionError) and _client_gone(request):
        return web.Response(status=500)  # the client went away: nothing to answer or log
    return _internal_error(state, request, exc)


def _internal_error(state: State, request: web.Request, exc: Exception) -> web.StreamResponse:
    log.error("internal error on %s %s", request.method, request.path, exc_info=exc)
    rid = state.new_request_id()
    body = error_body(state.profile.dialect, p.API_ERROR, "Internal server error", rid)
    return web.Response(
        status=500,
        body=dumps(body).encode(),
        headers={p.H_REQUEST_ID: rid, p.H_CONTENT_TYPE: p.CT_JSON},
    )


def front_handler(
    app: web.Application,
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The server's request handler for ``app`` (``web.Server.request_handler``).

    An API request goes straight to the pipeline, guarded, without the router and the
    middleware chain (a few microseconds of every request: the app's only API route is its
    catch-all); ``/_mockserver/...`` and ``Expect: 100-continue`` go through the app.
    """
    state = app[STATE]
    app_handle = app._handle
    admin_prefix = p.ADMIN_PREFIX

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        assert isinstance(request, web.Request)  # made by the app's request factory
        if request.path.startswith(admin_prefix) or hdrs.EXPECT in request.headers:
            return await app_handle(request)
        try:  # (what the ``guard`` middleware does on the app's routes)
            return await handle_api(state, request)
        except web.HTTPException:
            raise
        except Exception as exc:
            return _recover(state, request, exc)

    return handle


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    state = State(settings=settings, counter=TokenCounter(settings.profile.overheads))
    state.source = make_source(state)
    app = web.Application(middlewares=[guard], client_max_size=settings.profile.max_request_bytes)
    app[STATE] = state
    for hook in ("startup", "cleanup"):  # sources with a lifecycle (cassette loading, sessions)
        fn = getattr(state.source, hook, None)
        if fn is not None:
            getattr(app, f"on_{hook}").append(lambda _app, fn=fn: fn())
    admin.add_routes(app)  # /_mockserver/..., before the catch-all
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
