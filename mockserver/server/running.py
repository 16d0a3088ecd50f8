"""Running the app: in the foreground (``mockserver serve``), as several processes sharing
one port (``--workers N``), or in a background thread.

With ``--workers N`` the parent serves too and starts N-1 worker processes; every process
binds the same port with ``SO_REUSEPORT`` and the kernel spreads new connections over them.
Each process loads the cassettes read-only on its own.  SIGTERM or SIGINT to the parent
stops every worker; a worker whose parent has gone away stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path

from aiohttp import web

from ..accounting.tokens import get_tokenizer, tokenizer_loaded
from ..config import Settings, loopback_bind, wildcard_bind
from ..shared.seam import mask_url
from ..wire.errors import ConfigError
from . import redaction
from .app import create_app, front_handler
from .collector import CycleCollector
from .loops import loop_factory, run as run_on_loop, shared_loop
from .state import STATE, State

log = logging.getLogger("mockserver.server")

#: pending connections the listening socket queues (aiohttp's default of 128 drops
#: connection bursts such as thousands of clients starting together)
BACKLOG = 2048
#: seconds between a worker's checks that its parent is still alive
_PARENT_POLL_S = 0.5


_preload: threading.Thread | None = None


def preload_tokenizer() -> None:
    """Load the tokenizer in a background thread (it releases the GIL while parsing), so that
    the first request does not wait for it; nothing when it is loaded or loading already (a
    server per test in the pytest plugin)."""
    global _preload
    if tokenizer_loaded() or (_preload is not None and _preload.is_alive()):
        return

    def load() -> None:
        try:
            get_tokenizer()
        except Exception as exc:  # the first request that needs it reports the problem
            log.debug("tokenizer preload failed: %s", exc)

    _preload = threading.Thread(target=load, name="mockserver-tokenizer", daemon=True)
    _preload.start()


async def start(settings: Settings) -> tuple[web.AppRunner, str, State]:
    """Start serving; returns the runner, the base URL and the state."""
    redaction.install()  # no client credential in aiohttp's log records
    if settings.mode in ("synth", "auto"):  # replay tokenizes only prompts near the limit
        preload_tokenizer()
    app = create_app(settings)
    # keepalive_timeout: aiohttp closes a connection that has not sent a complete request head
    # this long after connecting or after the previous reply (its only guard against a
    # slowloris header trickle); the body has the same deadline in ``app.read_body``.
    # lingering_time: how long the rest of an unread body (after a 413 or 408) is drained; its
    # task waits that long even when the client has gone, so it is no longer than the deadline
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=settings.read_timeout,
        lingering_time=min(10.0, settings.read_timeout),
    )
    await runner.setup()
    if runner.server is not None:  # API requests skip the router and the middleware chain
        runner.server.request_handler = front_handler(app)
    site = web.TCPSite(
        runner,
        settings.host,
        settings.port,
        reuse_port=settings.workers > 1,
        backlog=BACKLOG,
    )
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else settings.port
    return runner, f"http://{settings.host}:{port}", app[STATE]


def startup_text(settings: Settings, url: str) -> str:
    """What ``mockserver serve`` prints once it serves: where, and the inspector's address
    (with the admin token when the server made one: printed here once, never logged)."""
    many = f" ({settings.workers} processes)" if settings.workers > 1 else ""
    local = url
    if wildcard_bind(settings.host):  # every interface: show the loopback address too
        local = url.replace(f"//{settings.host}:", "//127.0.0.1:", 1).replace(
            "//[::]:", "//[::1]:", 1
        )
    lines = [
        f"mockserver {settings.mode} mode, profile {settings.profile.name}, {settings.loop} "
        f"event loop, serving on {url}{many}",
        f"  export ANTHROPIC_BASE_URL={local}",
    ]
    if settings.state is not None and settings.state.startswith("sqlite://"):
        lines.append("  the processes share one state (an SQLite file of this run)")
    elif settings.state is not None:
        lines.append(
            f"  shared state: {mask_url(settings.state)} (keys under {settings.state_prefix!r})"
        )
    if not settings.admin:
        lines.append("  admin API and inspector: off (--no-admin)")
    elif settings.admin_token_generated:
        token = settings.admin_token
        lines += [
            f"  the admin API and the inspector are served to the network: every /_mockserver/ "
            f"call needs the admin token, generated for this run: {token}",
            f"  inspector: {local}/_mockserver/ui?token={token}",
        ]
    else:
        if not loopback_bind(settings.host):
            lines.append(
                "  the admin API and the inspector are served to the network behind --admin-token"
            )
        lines.append(f"  inspector: {local}/_mockserver/ui")
    return "\n".join(lines)


def _stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (where the loop supports signal handlers)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)


def serving_collector(state: State) -> CycleCollector:
    """Cycle collection off the request path for a serving process (see ``collector``)."""
    collector = CycleCollector(lambda: state.in_flight > 0, lambda: state.served)
    collector.start()
    return collector


def run(settings: Settings) -> int:
    """``mockserver serve``: serve until SIGTERM or SIGINT (with ``--workers N``, in N processes)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    placeholder: socket.socket | None = None
    workers: list[BaseProcess] = []
    private: str | None = None  # the --workers processes' shared state, made and removed here
    if settings.workers > 1 and settings.state is None:
        private = tempfile.mkdtemp(prefix="mockserver-state-")
        settings = replace(settings, state=f"sqlite://{Path(private) / 'state.db'}")
    if settings.workers > 1:
        if not hasattr(socket, "SO_REUSEPORT"):
            raise ConfigError("--workers > 1 needs SO_REUSEPORT, which this platform lacks")
        if settings.port == 0:  # every process must bind the same port: pick it here, once
            placeholder = _reserve_port(settings.host)
            settings = replace(settings, port=placeholder.getsockname()[1])
        workers = _spawn_workers(settings)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        try:
            runner, url, state = await start(settings)
        finally:
            if placeholder is not None:
                placeholder.close()
        collector = serving_collector(state)
        print(startup_text(settings, url), flush=True)
        watch = asyncio.ensure_future(_watch_workers(workers)) if workers else None
        try:
            await stop.wait()
        finally:
            if watch is not None:
                watch.cancel()
            await collector.stop()
            await runner.cleanup()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_on_loop(main(), settings.loop)
    finally:
        _stop_workers(workers)
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
    return 0


# --- worker processes ---------------------------------------------------------------------


def _reserve_port(host: str) -> socket.socket:
    """A socket bound with ``SO_REUSEPORT`` to a free port of ``host`` (not listening)."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(addr)
    return sock


def _spawn_workers(settings: Settings) -> list[BaseProcess]:
    """Start ``settings.workers - 1`` processes serving ``settings`` (spawned: no state of the
    parent is inherited but the settings)."""
    ctx = multiprocessing.get_context("spawn")
    procs: list[BaseProcess] = []
    for k in range(1, settings.workers):
        proc = ctx.Process(
            target=_worker_main,
            args=(settings, os.getpid()),
            name=f"mockserver-worker-{k}",
            daemon=False,
        )
        proc.start()
        procs.append(proc)
    return procs


def _worker_main(settings: Settings, parent: int) -> None:
    """A worker process: serve until SIGTERM/SIGINT or until the parent is gone."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        runner, _, state = await start(settings)
        collector = serving_collector(state)
        try:
            while not stop.is_set():
                if os.getppid() != parent:  # the parent died without stopping us
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), _PARENT_POLL_S)
        finally:
            await collector.stop()
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        run_on_loop(main(), settings.loop)


async def _watch_workers(workers: list[BaseProcess]) -> None:
    """Log a worker that exits while the parent still serves (its share of new connections
    goes to the others: the port stays open)."""
    reported: set[int] = set()
    while True:
        await asyncio.sleep(1.0)
        for proc in workers:
            if proc.exitcode is not None and id(proc) not in reported:
                reported.add(id(proc))
                log.warning("%s exited with code %s", proc.name, proc.exitcode)


def _stop_workers(workers: list[BaseProcess], timeout: float = 10.0) -> None:
    """SIGTERM every worker, wait, then SIGKILL the ones still running."""
    for proc in workers:
        if proc.is_alive():
            proc.terminate()
    for proc in workers:
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


class ServerThread:
    """A server on its own event loop in a daemon thread; with ``shared=True``, on this
    process's shared loop of its kind instead (``loops.shared_loop``: no thread or loop made
    and stopped per server, as the pytest fixture starts one per test)."""

    #: how long ``stop`` waits for replies still in flight to finish (they go on after it)
    stop_wait_s = 30.0

    def __init__(self, settings: Settings, *, shared: bool = False) -> None:
        self.settings = settings
        self.shared = shared
        self.loop = shared_loop(settings.loop) if shared else loop_factory(settings.loop)()
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
        if self.shared:
            future = asyncio.run_coroutine_threadsafe(start(self.settings), self.loop)
            self._runner, self.base_url, self.state = future.result(30)
            return self
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self.shared:
            runner, self._runner = self._runner, None
            if runner is not None and not self.loop.is_closed():
                done = asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop)
                try:  # (as a thread of its own is waited for, then left to finish)
                    done.result(self.stop_wait_s)
                except TimeoutError:
                    log.warning(
                        "server %s still finishing its replies after %g s",
                        self.base_url,
                        self.stop_wait_s,
                    )
            return
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(self.stop_wait_s)


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
