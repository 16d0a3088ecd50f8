"""The event loop a server runs on (``Settings.loop``: uvloop when it is installed, a
dependency where it builds; ``--loop asyncio|uvloop`` chooses)."""

from __future__ import annotations

import asyncio
import os
import threading
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


#: the shared loops by kind, with the process that made them (a forked child makes its own:
#: it has the loop object but not the thread running it)
_shared: dict[str, tuple[int, asyncio.AbstractEventLoop]] = {}
_shared_lock = threading.Lock()


def shared_loop(name: str | None) -> asyncio.AbstractEventLoop:
    """This process's loop of kind ``name``, running forever in a daemon thread (made on first
    use): servers started one after another on it (the pytest fixture's, one per test) skip
    making and stopping a thread and a loop each."""
    kind = resolve_loop(name)
    with _shared_lock:
        pid, loop = _shared.get(kind, (0, None))
        if loop is None or loop.is_closed() or pid != os.getpid():
            loop = loop_factory(kind)()
            started = threading.Event()
            loop.call_soon(started.set)
            thread = threading.Thread(
                target=loop.run_forever, name=f"mockserver-{kind}-loop", daemon=True
            )
            thread.start()
            started.wait(30)
            _shared[kind] = (os.getpid(), loop)
        return loop
