"""Who may use the admin API and the inspector, and the shape of their answers.

Local dev servers learned this the hard way (Jupyter, Vite, webpack-dev-server); the same
three locks here, in the order they are checked:

1. **Host.**  A request is answered only when its ``Host`` names this server: the address it is
   bound to, ``localhost`` / ``127.0.0.1`` / ``[::1]`` for a loopback bind, any IP address for a
   wildcard bind (``0.0.0.0``, ``::``), or a name given with ``--allowed-host``.  A page that
   rebinds its own DNS name to 127.0.0.1 still sends its own name: a 403.
2. **Token.**  With an admin token (``--admin-token``, or generated for a non-loopback bind),
   every data call needs ``x-mockserver-admin-token: T`` or ``?token=T`` (not
   ``Authorization``: that header is the client's API key on ``/v1``): else a 401.
3. **Same origin.**  A call that changes the server (POST, PUT, PATCH, DELETE) needs
   ``content-type: application/json`` (a browser cannot send that cross-site without a CORS
   preflight, which this server never grants) and, when an ``Origin`` is sent, this server's
   own origin: else a 403.

The API routes (``/v1/...``) are not restricted this way: clients reach a mock through any name.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from aiohttp import web

from ...config import LOOPBACK_NAMES, Settings, loopback_bind, wildcard_bind
from ...shared.seam import StoreDown
from ...wire import protocol as p
from ...wire.errors import ApiError, error_body
from ...wire.sse import dumps
from ..state import STATE, State

AdminCall = Callable[[State, web.Request], Awaitable[Any]]

#: methods that change the server's state
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def admin_json(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    out = {p.H_CONTENT_TYPE: p.CT_JSON, **(headers or {})}
    return web.Response(status=status, body=dumps(data).encode(), headers=out)


async def answer(request: web.Request, call: AdminCall, *, data: bool = True) -> web.StreamResponse:
    """``call``'s answer behind the locks: JSON (unless it returns a response of its own),
    errors in the endpoint's envelope, never cached."""
    state = request.app[STATE]
    rid = state.new_request_id()
    headers = {p.H_REQUEST_ID: rid, "cache-control": "no-store"}
    try:
        check_access(state, request, data=data)
        try:
            result = await call(state, request)
        except StoreDown as exc:
            raise ApiError(
                503,
                p.API_ERROR,
                f"admin API: the shared state is unavailable ({exc}); the API requests are "
                "answered meanwhile from each process's own state, and this answers again once "
                "the store does",
            ) from None
    except ApiError as exc:
        body = error_body(state.profile.dialect, exc.error_type, exc.message, rid)
        return admin_json(exc.status, body, {**headers, **exc.headers})
    if isinstance(result, web.StreamResponse):
        result.headers.update(headers)
        return result
    return admin_json(200, result, headers)


def check_access(state: State, request: web.Request, *, data: bool = True) -> None:
    """The three locks for one admin or inspector request (``data`` False: a static file of
    the page, which holds no data: only the Host lock)."""
    check_host(state.settings, request)
    if not data:
        return
    require_admin(state, request)
    if request.method in CHANGES:
        check_same_origin(request)


def check_host(settings: Settings, request: web.Request) -> None:
    host = request.headers.get("host")
    if host is None or host_allowed(settings, host):  # (no Host: not a browser's request)
        return
    raise ApiError(
        403,
        p.PERMISSION,
        f"admin API: Host {host[:200]!r} is not this server's address ({settings.host}); the "
        "admin API and the inspector answer only to their own address (start the server with "
        "--allowed-host NAME to admit another name)",
    )


def check_same_origin(request: web.Request) -> None:
    if request.content_type != p.CT_JSON:
        raise ApiError(
            403,
            p.PERMISSION,
            f"admin API: a {request.method} that changes the server must send content-type: "
            f"{p.CT_JSON} (cross-site requests cannot); got {request.content_type!r}",
        )
    origin = request.headers.get("origin")
    own = f"{request.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin.rstrip("/").lower() != own.lower():
        raise ApiError(
            403,
            p.PERMISSION,
            f"admin API: a request from another origin ({origin[:200]!r}) may not change this "
            f"server ({own})",
        )


def require_admin(state: State, request: web.Request) -> None:
    """Raise the admin API's 401 unless the request carries the admin token (when one is set)."""
    if not _authorized(state, request):
        raise ApiError(
            401,
            p.AUTHENTICATION,
            f"admin API: send the admin token as {p.H_ADMIN_TOKEN} header or ?token= (printed "
            "at startup when the server generated it)",
        )


def _authorized(state: State, request: web.Request) -> bool:
    token = state.settings.admin_token
    if not token:
        return True
    given = request.headers.get(p.H_ADMIN_TOKEN) or request.query.get("token") or ""
    return hmac.compare_digest(given.encode(), token.encode())


# --- which names are this server's ---------------------------------------------------------


def host_name(host: str) -> str:
    """The name of a ``Host`` header value: no port, no brackets, lower case, no final dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8080
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_allowed(settings: Settings, host: str) -> bool:
    name = host_name(host)
    return name in _names(settings.host, settings.allowed_hosts) or (
        wildcard_bind(settings.host) and _is_ip(name)
    )


@lru_cache(maxsize=16)
def _names(bind: str, allowed: tuple[str, ...]) -> frozenset[str]:
    names = {host_name(a) for a in allowed} | {host_name(bind)}
    if loopback_bind(bind) or wildcard_bind(bind):
        names |= LOOPBACK_NAMES
    if wildcard_bind(bind):  # the machine's own names
        for name in (socket.gethostname(), socket.getfqdn()):
            names.add(name.lower())
    return frozenset(names)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
