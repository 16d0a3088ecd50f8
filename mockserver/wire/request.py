"""``ApiRequest``: one parsed HTTP request, frozen, the input of every later step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import protocol as p

if TYPE_CHECKING:
    from ..server.checks.rules import CheckedRequest


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # lower-cased names
    body: Any = None  # parsed JSON (None when the route has no body)
    raw_size: int = 0
    request_id: str = ""
    received_at: float = 0.0
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: the body's exact bytes (``b""`` when not known)
    raw: bytes = b""
    #: the checks these exact bytes passed before (``memo.CheckedBodies``), if they did
    checked: CheckedRequest | None = None

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True

    @property
    def model(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("model"), str):
            return str(self.body["model"])
        return None

    @property
    def api_key(self) -> str | None:
        """The credential, from ``x-api-key`` or ``Authorization: Bearer``."""
        key = self.headers.get(p.H_API_KEY)
        if key:
            return key
        auth = self.headers.get(p.H_AUTHORIZATION, "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
