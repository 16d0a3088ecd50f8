"""Header checks: the API key (``x-api-key`` or ``Authorization: Bearer``) and
``anthropic-version``, first of all checks, as the real API orders them."""

from __future__ import annotations

from ...profile import Profile
from ...wire import protocol as p
from ...wire.errors import ApiError
from ...wire.request import ApiRequest
from .wording import (
    invalid as _invalid,
)


def _mask(key: str) -> str:
    return "****" + key[-4:] if len(key) > 8 else "****"


def check_auth(req: ApiRequest, api_keys: tuple[str, ...] = ()) -> None:
    """401 without a key (``x-api-key`` or ``Authorization: Bearer``), or with a key not in
    ``api_keys`` when that list is non-empty."""
    key = req.api_key
    if not key:
        raise ApiError(
            401,
            p.AUTHENTICATION,
            "x-api-key header is required",
            deepseek_message="Authentication Fails, no api key provided",
        )
    if api_keys and key not in api_keys:
        raise ApiError(
            401,
            p.AUTHENTICATION,
            "invalid x-api-key",
            deepseek_message=f"Authentication Fails, Your api key: {_mask(key)} is invalid",
        )


def check_version(req: ApiRequest, profile: Profile) -> None:
    """``anthropic-version``: required and one of the accepted values, unless the profile
    says it is optional (then it is ignored, as DeepSeek does)."""
    if not profile.version_required:
        return
    value = req.headers.get(p.H_VERSION, "").strip()
    if not value:
        raise _invalid("anthropic-version", "header is required")
    if profile.accepted_versions and value not in profile.accepted_versions:
        raise _invalid(
            "anthropic-version",
            f"'{value}' is not a supported version; supported versions are "
            f"{', '.join(sorted(profile.accepted_versions))}",
        )
