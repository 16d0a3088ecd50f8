"""Who may use the admin API and the inspector, and the shape of their answers.

With ``Settings.admin_token`` set, every call needs ``x-mockserver-admin-token: T`` or
``?token=T`` (not ``Authorization``: that header is the client's API key on ``/v1``).
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from ...wire import protocol as p
from ...wire.errors import ApiError
from ...wire.sse import dumps
from ..state import State


def admin_json(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    out = {p.H_CONTENT_TYPE: p.CT_JSON, **(headers or {})}
    return web.Response(status=status, body=dumps(data).encode(), headers=out)


def require_admin(state: State, request: web.Request) -> None:
    """Raise the admin API's 401 unless the request carries the admin token (when one is set)."""
    if not _authorized(state, request):
        raise ApiError(
            401,
            p.AUTHENTICATION,
            f"admin API: send the admin token as {p.H_ADMIN_TOKEN} header or ?token=",
        )


def _authorized(state: State, request: web.Request) -> bool:
    token = state.settings.admin_token
    if not token:
        return True
    given = request.headers.get(p.H_ADMIN_TOKEN) or request.query.get("token") or ""
    return hmac.compare_digest(given.encode(), token.encode())
