"""The upstream side of recording: the endpoint's base URL, one shared client session, and
the headers a forwarded request carries (the client's own credentials, or the key from
``$MOCKSERVER_UPSTREAM_API_KEY`` when it sent none; never hop-by-hop or mockserver headers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import aiohttp
from yarl import URL

from ..wire import protocol as p

_HOP: Final = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "accept-encoding",
        "expect",
    }
)


def credential(headers: Mapping[str, str]) -> str | None:
    key = headers.get(p.H_API_KEY)
    if key:
        return key
    scheme, _, token = headers.get(p.H_AUTHORIZATION, "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def upstream_headers(
    headers: Mapping[str, str], env_key: str | None
) -> tuple[dict[str, str], list[str]]:
    """Headers to send upstream, and the secrets among them (never to be written)."""
    out = {k: v for k, v in headers.items() if k not in _HOP and not k.startswith("x-mockserver-")}
    secrets = [s for s in (headers.get(p.H_API_KEY), credential(headers)) if s]
    auth = headers.get(p.H_AUTHORIZATION)
    if auth:
        secrets.append(auth)
    if not secrets and env_key:
        out[p.H_API_KEY] = env_key
        secrets.append(env_key)
    return out, secrets


class Upstream:
    """The upstream base URL and one shared client session (created on first use)."""

    def __init__(
        self, base_url: str, connect_timeout: float = 30.0, read_timeout: float = 600.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def url(self, path: str, query: str) -> str:
        return self.base_url + path + (f"?{query}" if query else "")

    @property
    def public_url(self) -> str:
        """The base URL without any user:password part (safe to write down)."""
        return str(URL(self.base_url).with_user(None))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
