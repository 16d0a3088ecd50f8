"""Response headers made per second, not per request: the profile's ``anthropic-ratelimit-*``."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping

from ..wire import protocol as p
from .state import State

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
