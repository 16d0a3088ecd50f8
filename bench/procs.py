"""Server processes for the benchmarks: start pinned to a core, wait until they answer,
read their resident memory, stop them (by their own PID, never by name)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .fixtures import HEADERS

ROOT = Path(__file__).resolve().parent.parent


#: the servers' environment: this one, but bytecode is cached as on a user's machine (a
#: sandbox's PYTHONDONTWRITEBYTECODE would make every start compile the package again)
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def placement() -> tuple[int | None, int | None]:
    """(server core, load-generator core): different cores when there are two or more."""
    mine = cpus()
    if len(mine) >= 2 and hasattr(os, "sched_setaffinity"):
        return mine[0], mine[1]
    return None, None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _child_setup(cpu: int | None) -> None:  # runs in the child before exec
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (``VmRSS`` from /proc), 0 where /proc is missing."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) so far, 0 where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    started: float  # perf_counter at spawn
    errlog: IO[bytes]
    listening_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_s(self) -> float:
        """CPU seconds used by the server and its worker processes so far."""
        return cpu_seconds(self.pid) + sum(cpu_seconds(c) for c in children(self.pid))

    def rss_mb(self) -> float:
        return rss_mb(self.pid) + sum(rss_mb(c) for c in children(self.pid))

    def stderr_tail(self, n: int = 2000) -> str:
        self.errlog.seek(0)
        return self.errlog.read().decode(errors="replace")[-n:]

    def close(self) -> None:  # contextlib.closing
        self.stop()

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            self.errlog.close()

    def _stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def http(
    url: str, body: Any | None = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_ready(server: Server, probe: str, timeout: float) -> None:
    url, proc = server.url, server.proc
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {server.stderr_tail()}")
        try:
            with socket.create_connection(_host_port(url), timeout=0.2):
                pass
        except OSError:
            time.sleep(0.005)
            continue
        with contextlib.suppress(OSError):
            status, _ = http(url + probe, timeout=5)
            if status < 500:
                return
        time.sleep(0.005)
    raise RuntimeError(f"server at {url} not ready after {timeout} s")


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port)


def start(
    argv: Sequence[str],
    *,
    port: int,
    cpu: int | None,
    probe: str = "/",
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Server:
    url = f"http://127.0.0.1:{port}"
    # stderr to a file, never a pipe nobody reads: a server logging much would block on it
    errlog = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Server.stop
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=errlog,
        env={**_ENV, **(env or {})},
        preexec_fn=lambda: _child_setup(cpu),  # the bench parent runs no threads
    )
    server = Server(proc, url, t0, errlog)
    try:
        _wait_ready(server, probe, timeout)
    except BaseException:
        server.stop()
        raise
    server.listening_s = time.perf_counter() - t0
    return server


@contextlib.contextmanager
def mockserver(
    *,
    cassettes: Path | None,
    mode: str,
    cpu: int | None,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    port = free_port()
    argv = ["-m", "mockserver", "serve", "--port", str(port), "--mode", mode, *extra]
    if cassettes is not None:
        argv += ["--cassettes", str(cassettes)]
    server = start(argv, port=port, cpu=cpu, probe="/_mockserver/health", env=env)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def ceiling(cpu: int | None, loop: str | None = None) -> Iterator[Server]:
    port = free_port()
    argv = ["-m", "bench.ceiling", "--port", str(port)] + (["--loop", loop] if loop else [])
    server = start(argv, port=port, cpu=cpu)
    try:
        yield server
    finally:
        server.stop()


def first_reply(server: Server, body: Any, timeout: float = 120) -> float:
    """Seconds from the server's spawn until it answered ``body`` with a 200."""
    status, data = http(server.url + "/v1/messages", body, HEADERS, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"first request failed: {status} {data[:300]!r}")
    return time.perf_counter() - server.started


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A ``redis-server`` on a free loopback port (no persistence) for the ``--state`` rows;
    yields its URL, or ``None`` when redis-server is not installed."""
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as work:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", work],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock,
                ):
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)
