"""The HTTP app: the parse -> check -> source -> fault -> write pipeline, one journal entry per
request, errors in the endpoint's envelope.  Route handlers live in ``endpoints``, body
reading in ``parse``, per-second headers in ``headers``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from ..accounting.tokens import TokenCounter
from ..config import Settings
from ..sources.modes import make_source
from ..wire import protocol as p
from ..wire.errors import ApiError, error_body
from ..wire.faults import FaultPlan, FaultSpecError
from ..wire.reply import Disconnected, Reply
from ..wire.request import NO_EXTRAS, ApiRequest
from ..wire.sse import dumps
from ..wire.unicode import printable_headers
from ..wire.written import WrittenStream
from .admin import api as admin
from .endpoints import messages, route
from .fault_rules import NO_FAULTS
from .headers import ratelimit_headers
from .journal import Exchange, key_label
from .parse import parse_json, read_body
from .state import STATE, State
from .writer import write_reply

log = logging.getLogger("mockserver")

#: longest error message sent (longer ones, which echo a huge value, are cut)
MAX_ERROR_MESSAGE = 2000


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
        headers = printable_headers(request.headers)  # (names lower-cased)
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
                {"query_params": dict(request.query)} if query else NO_EXTRAS,
                raw,
                checked,
            )
            ex = _arrived(state, req)
            if handler is None:
                raise ApiError.not_found()
            if state.shared is None:
                plan = fault_plan(state, req)
            else:
                plan = await shared_fault_plan(state, req)
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
            out_headers = reply_headers(state, reply, request_id, _charge(state, ex, reply))
        else:
            out_headers = {p.H_REQUEST_ID: request_id, p.H_SOURCE: reply.source, **reply.headers}
        _finish_exchange(ex, reply, t0)
        sent: list[float] | None = None
        if ex.written is not None:  # a stream: the journal keeps when each event went out
            sent = ex.written.sent_ms = []
        try:
            return await write_reply(request, reply, state.speed, headers=out_headers, sent=sent)
        except (Disconnected, ConnectionError) as exc:
            # the reply asked for a drop, or the client went away (e.g. its timeout during a
            # stall): the connection is closed, so aiohttp's attempt to finish this placeholder
            # fails quietly as a premature disconnection (no error log, server stays healthy)
            ex.disconnected = True
            if isinstance(exc, Disconnected):
                ex.fault = ex.fault or "disconnect"
            elif not _client_gone(request):  # not the client's socket (e.g. an upstream reset)
                log.warning("connection error while writing %s %s: %s", method, path, exc)
                if request.transport is not None:
                    request.transport.close()  # the reply is half-written: cut it off
            return web.Response(status=reply.status)
        finally:
            state.journal.close(ex)
    finally:
        state.in_flight -= 1


def _arrived(state: State, req: ApiRequest, *, read: bool = True) -> Exchange:
    """The journal entry of ``req`` as it arrives (its reply is filled in later); ``read``
    False: its body could not be read, and its key is not labelled."""
    body = req.body
    if read and isinstance(body, dict):
        model = body.get("model")
        return state.journal.arrived(
            req,
            model=model if isinstance(model, str) else None,
            stream=body.get("stream") is True,
            api_key=key_label(req.api_key),
            raw=req.raw,
        )
    return state.journal.arrived(
        req,
        model=req.model,
        stream=req.stream,
        api_key=key_label(req.api_key) if read else "none",
        raw=req.raw if read and body is not None else None,
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


async def shared_fault_plan(state: State, req: ApiRequest) -> FaultPlan:
    """``fault_plan`` with the counts shared by processes."""
    faults = state.faults
    if faults.idle and not req.headers.get(p.H_FAULT):
        return NO_FAULTS
    try:
        return await faults.aplan(req)
    except FaultSpecError as exc:
        raise ApiError.invalid(str(exc)) from None


def _charge(state: State, ex: Exchange, reply: Reply) -> str:
    """Cost of a ``/v1/messages`` reply (``"0"`` for errors), counted in the usage totals."""
    usage = reply.message.get("usage") if reply.message is not None else None
    if reply.status != 200 or not isinstance(usage, dict) or reply.disconnect_at == -1:
        return "0"
    ex.cost_usd = state.usage.record(usage, ex.model, ex.api_key)
    return ex.cost_usd


def reply_headers(state: State, reply: Reply, request_id: str, cost: str) -> dict[str, str]:
    """A ``/v1/messages`` reply's headers: request id, source, the rate-limit headers, its
    cost, then the reply's own (a recorded ``request-id`` stays)."""
    return {
        p.H_REQUEST_ID: request_id,
        p.H_SOURCE: reply.source,
        **ratelimit_headers(state),
        p.H_COST: cost,
        **reply.headers,
    }


def _finish_exchange(ex: Exchange, reply: Reply, t0: float) -> None:
    ex.source = reply.source
    ex.fault = reply.fault
    ex.duration_ms = round((time.monotonic() - t0) * 1000, 3)
    if reply.disconnect_at == -1:  # dropped before any byte: the client got no status
        ex.status = 0
        ex.disconnected = True
    else:
        ex.status = reply.status
    message = reply.message
    if message is not None:  # (shared with the reply, which nothing changes)
        if not ex.disconnected:  # (nothing reached the client: nothing used, nothing charged)
            ex.usage = message.get("usage") or {}
        ex.response = message
    elif reply.body is not None:
        try:
            ex.response = json.loads(reply.body)
        except ValueError:
            ex.response = reply.body.decode("utf-8", "replace")
    if reply.events is None and not isinstance(ex.response, str):
        ex.reply_body = reply.body  # (the bytes ``response`` is the JSON of)
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
    if state.shared is not None:  # join the processes sharing the state first, leave last
        coordinator = state.shared
        app.on_startup.append(lambda _app: coordinator.start())
    for hook in ("startup", "cleanup"):  # sources with a lifecycle (cassette loading, sessions)
        fn = getattr(state.source, hook, None)
        if fn is not None:
            getattr(app, f"on_{hook}").append(lambda _app, fn=fn: fn())
    if state.shared is not None:
        app.on_cleanup.append(lambda _app: coordinator.stop())
    admin.add_routes(app)  # /_mockserver/..., before the catch-all
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
