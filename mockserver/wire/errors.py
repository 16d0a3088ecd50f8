"""Exception tree.  ``ApiError`` is what every check raises at the edge; the app turns it
into the endpoint's error body in the profile's dialect."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import protocol as p
from .unicode import printable


class MockserverError(Exception):
    """Base of all mockserver exceptions."""


class ConfigError(MockserverError):
    """Bad settings, profile or fault configuration (reported at startup)."""


class CassetteError(MockserverError):
    """A cassette file cannot be read or written."""


class ApiError(MockserverError):
    """An error reply: HTTP status, Anthropic error type, message, optional extra headers.

    ``deepseek_message`` is the wording of the deepseek dialect when it differs.
    """

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        deepseek_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = dict(headers or {})
        self.deepseek_message = deepseek_message

    @classmethod
    def invalid(cls, message: str, *, deepseek_message: str | None = None) -> ApiError:
        return cls(400, p.INVALID_REQUEST, message, deepseek_message=deepseek_message)

    @classmethod
    def not_found(cls, message: str = "Not Found") -> ApiError:
        return cls(404, p.NOT_FOUND, message)


def error_body(
    dialect: str, error_type: str, message: str, request_id: str | None
) -> dict[str, Any]:
    """The error envelope of a dialect: ``anthropic`` or ``deepseek`` (OpenAI style).  A
    message that echoes text which is not valid Unicode is made printable (U+FFFD)."""
    message = printable(message)
    if dialect == "deepseek":
        return {
            "error": {
                "message": message,
                "type": error_type,
                "param": None,
                "code": "invalid_request_error",
            }
        }
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body
