"""A mockserver in a child process (``python -m mockserver serve``), for tests that need its
own memory, descriptors or a ``kill -9``: start it, read its URL, sample ``/proc/PID``."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_URL = re.compile(r"http://127\.0\.0\.1:\d+")


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    url: str
    log: Path
    banner: str = ""  # the line that gave the URL

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status_kb(self, field: str) -> int:
        """A ``kB`` line of ``/proc/PID/status``: ``VmRSS`` (resident now), ``VmHWM`` (peak)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def reset_peak(self) -> None:
        """Reset ``VmHWM`` to the current RSS (Linux: write 5 to ``clear_refs``)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start(
    args: Sequence[str], log: Path, env: Mapping[str, str] | None = None, timeout: float = 30
) -> ServerProcess:
    """``python -m mockserver serve --port 0 ARGS...``; waits for the URL it prints."""
    cmd = [sys.executable, "-m", "mockserver", "serve", "--port", "0", *args]
    with log.open("w") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, **(env or {})}
        )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                line = proc.stdout.readline()
                m = _URL.search(line)
                if m:
                    return ServerProcess(proc, m.group(0), log, line)
                if not line:
                    break
    finally:
        sel.close()
    proc.kill()
    proc.wait(10)
    raise AssertionError(f"server did not start: {log.read_text()}")


@contextlib.contextmanager
def running(
    args: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    server = start(args, log, env)
    try:
        yield server
    finally:
        server.kill()
