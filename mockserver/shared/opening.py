"""``open_state(url, prefix)``: the ``SharedState`` a ``--state`` URL names."""

from __future__ import annotations

from pathlib import Path

from ..wire.errors import ConfigError
from .seam import SharedState, mask_url

#: the URL schemes ``--state`` takes (``sqlite:`` is what ``--workers N`` makes for itself)
SCHEMES = ("redis://", "rediss://", "unix://", "sqlite://")


def check_url(url: str) -> None:
    """``ConfigError`` (with the URL masked) unless ``url`` names a store we can open."""
    if not url.startswith(SCHEMES):
        raise ConfigError(
            f"--state must be a Redis URL like redis://HOST:6379/0, got {mask_url(url)!r}"
        )


def open_state(url: str, prefix: str = "mockserver:") -> SharedState:
    """The store ``url`` names (``StoreDown`` if it cannot even be set up; a Redis that is
    down is found out on first use)."""
    check_url(url)
    if url.startswith("sqlite://"):
        from .sqlite_state import SqliteState

        return SqliteState(Path(url.removeprefix("sqlite://")))
    from .redis_state import RedisState

    return RedisState(url, prefix)
