"""Admin API under ``/_mockserver/``: health, journal, faults, rules, cache, usage, reload.

Answers are JSON; errors use the same envelope as the Messages API.  With
``Settings.admin_token`` set, every call needs ``x-mockserver-admin-token: T`` or
``?token=T`` (not ``Authorization``: that header is the client's API key on ``/v1``).
Admin calls are not journaled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ...wire import protocol as p
from ...wire.errors import ApiError, ConfigError, error_body
from ...wire.faults import FaultSpecError
from ..fault_rules import FaultRule
from ..journal import Wanted
from ..parse import parse_json, read_body
from ..state import STATE, State
from .access import AdminCall, admin_json, answer
from .inspector import find as find_page
from .scripted import rule_delete, rules_add, rules_clear, rules_list

#: path below the prefix -> {method: handler}
ROUTES: dict[str, dict[str, AdminCall]] = {}


def _route(name: str, method: str) -> Callable[[AdminCall], AdminCall]:
    def register(fn: AdminCall) -> AdminCall:
        ROUTES.setdefault(name, {})[method] = fn
        return fn

    return register


def _query_int(request: web.Request, name: str, lo: int = 0) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError.invalid(f"{name}: Input should be a valid integer, got {raw!r}") from None
    if value < lo:
        raise ApiError.invalid(f"{name}: Input should be >= {lo}, got {value}")
    return value


# --- handlers -------------------------------------------------------------------------


@_route("health", "GET")
async def health(state: State, request: web.Request) -> Any:
    """``status`` ``ok``, or ``degraded`` while the shared state is unavailable (requests are
    answered meanwhile); ``state`` says where it is kept and why it is degraded."""
    shared = await state.ops.health()
    return {
        "status": "ok" if shared["state"].get("ok", True) else "degraded",
        "mode": state.settings.mode,
        "profile": state.profile.name,
        "uptime": round(time.time() - state.started_at, 3),
        **shared,
    }


@_route("journal", "GET")
async def journal(state: State, request: web.Request) -> Any:
    """Exchanges in arrival order; filters ``path``, ``source``, ``status``, ``model``,
    ``since_id`` (ids greater than it), ``limit`` (the first N that match)."""
    q = request.query
    found = await state.ops.exchanges(
        Wanted(
            path=q.get("path") or None,
            source=q.get("source") or None,
            status=_query_int(request, "status"),
            model=q.get("model") or None,
            since_id=_query_int(request, "since_id"),
        )
    )
    limit = _query_int(request, "limit", lo=1)
    if limit is not None:
        found = found[:limit]
    return {"exchanges": [ex.to_json() for ex in found]}


@_route("journal", "DELETE")
async def journal_clear(state: State, request: web.Request) -> Any:
    return {"deleted": await state.ops.clear_journal()}


@_route("faults", "GET")
async def faults_list(state: State, request: web.Request) -> Any:
    return {"rules": await state.ops.fault_rules()}


@_route("faults", "POST")
async def faults_add(state: State, request: web.Request) -> Any:
    """Body: one rule, a list of rules, or a bare spec string (matching every request)."""
    # the body limit, read deadline, nesting limit and error envelope of the Messages routes
    raw = await read_body(request, state.profile.max_request_bytes, state.settings.read_timeout)
    data = parse_json(raw) if raw.strip() else None
    if data is None:
        raise ApiError.invalid('Send a fault rule: {"fault": "overloaded;times=2", ...}')
    items = data if isinstance(data, list) else [data]
    try:  # validate every rule before adding any
        rules = [FaultRule.from_json(item, origin="api") for item in items]
    except FaultSpecError as exc:
        raise ApiError.invalid(str(exc)) from None
    return {"rules": await state.ops.add_fault_rules(rules)}


@_route("faults", "DELETE")
async def faults_clear(state: State, request: web.Request) -> Any:
    return {"deleted": await state.ops.clear_fault_rules()}


ROUTES["rules"] = {"GET": rules_list, "POST": rules_add, "DELETE": rules_clear}


@_route("cache", "DELETE")
async def cache_clear(state: State, request: web.Request) -> Any:
    return {"deleted": await state.ops.reset_cache()}


@_route("usage", "GET")
async def usage(state: State, request: web.Request) -> Any:
    return await state.ops.usage()


@_route("usage", "DELETE")
async def usage_clear(state: State, request: web.Request) -> Any:
    """Reset the totals; answers with the totals that were cleared."""
    return await state.ops.reset_usage()


@_route("reload", "POST")
async def reload(state: State, request: web.Request) -> Any:
    try:
        counts = await state.ops.reload()
    except ConfigError as exc:
        raise ApiError.invalid(f"reload failed, previous configuration kept: {exc}") from None
    return {"reloaded": dict(counts)}


# --- plumbing -------------------------------------------------------------------------


async def handle(request: web.Request) -> web.StreamResponse:
    """Every ``/_mockserver/{name}`` but ``DELETE .../rules/{rule}``: the inspector's paths
    (``inspector.PAGES``), then the API's ``ROUTES``."""
    page = find_page(request, "/" + request.match_info.get("name", ""))
    if page is not None:
        call, data = page
        return await answer(request, call, data=data)
    return await answer(request, _route_call)


async def _route_call(state: State, request: web.Request) -> Any:
    name = request.match_info.get("name", "")
    methods = ROUTES.get(name)
    if methods is None:
        raise ApiError.not_found(f"Not Found: {p.ADMIN_PREFIX}/{name}")
    fn = methods.get(request.method)
    if fn is None:
        allowed = ", ".join(sorted(methods))
        raise ApiError(
            405,
            p.NOT_FOUND,
            f"{request.method} not allowed here; use {allowed}",
            headers={"allow": allowed},
        )
    return await fn(state, request)


async def _off(request: web.Request) -> web.StreamResponse:
    """``--no-admin``: every admin path is a 404, as on a server that has none."""
    state = request.app[STATE]
    rid = state.new_request_id()
    body = error_body(state.profile.dialect, p.NOT_FOUND, "Not Found", rid)
    return admin_json(404, body, {p.H_REQUEST_ID: rid})


def add_routes(app: web.Application) -> None:
    """Register ``/_mockserver/{name}`` (call before the catch-all route); with ``--no-admin``
    one route that answers 404 to all of them (and journals nothing)."""
    if not app[STATE].settings.admin:
        app.router.add_route("*", p.ADMIN_PREFIX + "{tail:(/.*)?}", _off)
        return

    async def delete_rule(request: web.Request) -> web.StreamResponse:
        return await answer(request, rule_delete)

    app.router.add_route("DELETE", p.ADMIN_PREFIX + "/rules/{rule}", delete_rule)
    app.router.add_route("*", p.ADMIN_PREFIX + "/{name:.*}", handle)
