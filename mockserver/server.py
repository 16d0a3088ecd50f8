"""Running the app: in the foreground (``mockserver serve``) or in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace

from aiohttp import web

from .app import create_app
from .config import Settings
from .state import STATE, State


async def start(settings: Settings) -> tuple[web.AppRunner, str, State]:
    """Start serving; returns the runner, the base URL and the state."""
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=settings.workers > 1)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else settings.port
    return runner, f"http://{settings.host}:{port}", app[STATE]


def run(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def main() -> None:
        runner, url, _ = await start(settings)
        print(
            f"mockserver {settings.mode} mode, profile {settings.profile.name}, serving on {url}\n"
            f"  export ANTHROPIC_BASE_URL={url}",
            flush=True,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


class ServerThread:
    """A server on its own event loop in a daemon thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.base_url = ""
        self.state: State | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mockserver", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self._runner, self.base_url, self.state = self.loop.run_until_complete(
                start(self.settings)
            )
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        if self._runner is not None:
            self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)


@contextlib.contextmanager
def serve_in_thread(settings: Settings | None = None, **overrides: object) -> Iterator[str]:
    """Run a server in a background thread for the ``with`` block; yields its base URL.

    Binds 127.0.0.1 on a free port unless ``settings`` say otherwise.
    """
    base = settings or Settings(port=0)
    if overrides:
        base = replace(base, **overrides)  # type: ignore[arg-type]
    thread = ServerThread(base).start()
    try:
        yield thread.base_url
    finally:
        thread.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(Settings()))
