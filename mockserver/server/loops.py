"""The event loop a server runs on (``Settings.loop``: uvloop when it is installed, a
dependency where it builds; ``--loop asyncio|uvloop`` chooses)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..config import resolve_loop

T = TypeVar("T")


def loop_factory(name: str | None) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function making a new event loop of kind ``name`` (see ``config.resolve_loop``)."""
    if resolve_loop(name) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: str | None) -> T:
    """``asyncio.run(main)`` on a new loop of kind ``name``."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
