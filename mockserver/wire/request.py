"""``ApiRequest``: one parsed HTTP request, frozen, the input of every later step; and
``CheckedRequest``: a request that passed every check, with what the later steps need."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from . import protocol as p

#: ``ApiRequest.extras`` of a request that has none (read-only: one object serves them all)
NO_EXTRAS: Mapping[str, Any] = MappingProxyType({})


class ApiRequest(NamedTuple):
    """Immutable (a named tuple: made on every request, so made cheaply)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # lower-cased names
    body: Any = None  # parsed JSON (None when the route has no body)
    raw_size: int = 0
    request_id: str = ""
    received_at: float = 0.0
    extras: Mapping[str, Any] = NO_EXTRAS
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


@dataclass(frozen=True)
class CheckedRequest:
    """A request that passed every check, with what later steps need from it."""

    body: dict[str, Any]
    model: str  # the served model id (after ``unknown_model: map``)
    max_tokens: int  # effective (after ``max_tokens_over_limit: clamp``); 0 for count_tokens
    input_tokens: int  # ``TokenCounter.request(body)``; -1 when not counted (``checks.body``)
    stream: bool
    tools: tuple[Mapping[str, Any], ...]
    tool_choice: Mapping[str, Any] | None
    requested_model: str
    #: the JSON Schema the reply's text must follow (``output_config.format``), if any
    output_schema: Mapping[str, Any] | None = None
