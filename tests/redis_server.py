"""A real Redis for the shared-state tests: Debian's ``redis-server`` (installed by ``.ci/run``
when missing, as Chromium is; ``ensure_redis`` installs it as root too), started on a free
loopback port with no persistence and always stopped by its PID.  A test that needs it fails
with what to install when it is not there: it never passes without it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

REDIS = os.environ.get("MOCKSERVER_REDIS_SERVER", "redis-server")


def ensure_redis() -> str:
    """The ``redis-server`` binary, installed with apt-get when missing and we are root."""
    found = shutil.which(REDIS)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(
            "the shared-state tests need Redis: install Debian's redis-server "
            "(`apt-get update && apt-get install -y redis-server`; .ci/run does it) or point "
            "MOCKSERVER_REDIS_SERVER at a redis-server binary"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(
                f"installing redis-server failed: {' '.join(cmd)} exited {done.returncode}:\n"
                f"{done.stderr[-2000:]}"
            )
    found = shutil.which(REDIS)
    if not found:
        raise RuntimeError("apt-get installed redis-server but it is not on PATH")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` on 127.0.0.1; ``stop()`` and ``start()`` again on the same port."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.binary = ensure_redis()
        self.workdir = workdir
        self.password = password
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        for _ in range(5):  # (a free port may be taken between the probe and the bind)
            port = self.port or free_port()
            args = [
                self.binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--daemonize", "no",
            ]  # fmt: skip
            if self.password:
                args += ["--requirepass", self.password]
            self.proc = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
            )
            if self._wait(port):
                self.port = port
                return self
            self.stop()
        raise RuntimeError("redis-server did not start on a free port")

    def _wait(self, port: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    if self.password:
                        sock.sendall(f"AUTH {self.password}\r\n".encode())
                        sock.recv(64)
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self, *, save: bool = False) -> None:
        """Stop it (by its PID); ``save``: write its data first (``SHUTDOWN SAVE``), so that
        ``start()`` brings it back with what it held, as a Redis with persistence does."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if save and proc.poll() is None:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                if self.password:
                    sock.sendall(f"AUTH {self.password}\r\n".encode())
                    sock.recv(64)
                sock.sendall(b"SHUTDOWN SAVE\r\n")
                with contextlib.suppress(OSError):
                    sock.recv(64)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
