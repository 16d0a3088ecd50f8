"""``mockserver serve --workers N``: N processes answer on one port; SIGTERM stops them all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mockserver.wire import protocol as p

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing and /proc are Linux's"
)

HEADERS = {p.H_API_KEY: "sk-test", p.H_VERSION: "2023-06-01", p.H_CONTENT_TYPE: p.CT_JSON}
BODY = {
    "model": "deepseek-v3-anthropic",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
}


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def workers() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "MOCKSERVER_CACHE_DIR": "off"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"serving on (http://\S+)", line)
        assert found, f"no URL in {line!r}"
        assert "(2 processes)" in line
        yield proc, found.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _request_id(url: str) -> str:
    req = urllib.request.Request(
        url + p.PATH_MESSAGES, data=json.dumps(BODY).encode(), headers=HEADERS
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return str(resp.headers[p.H_REQUEST_ID])


def test_two_processes_share_the_port_and_stop_together(
    workers: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = workers
    # each process numbers its request ids after its own random prefix: new connections
    # (urllib opens one per request) are spread over both processes by the kernel
    prefixes: set[str] = set()
    deadline = time.monotonic() + 30
    while len(prefixes) < 2 and time.monotonic() < deadline:
        rid = _request_id(url)
        prefixes.add(rid[:-8])  # the per-process prefix, without the 8-digit counter
    assert len(prefixes) == 2, f"one process answered everything: {prefixes}"
    with urllib.request.urlopen(url + p.ADMIN_PREFIX + "/health", timeout=30) as resp:
        state = json.loads(resp.read())["state"]
    store = Path(state["where"])  # the shared state: made for this run in a private directory
    assert state["kind"] == "sqlite" and store.is_file()
    assert (store.parent.stat().st_mode & 0o077) == 0  # (only this user may read it)
    kids = _children(proc.pid)
    assert kids, "the worker process is not a child of the server"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    deadline = time.monotonic() + 10
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(k) for k in kids), "a worker outlived SIGTERM to the server"
    assert not store.parent.exists(), "the shared state's directory outlived the server"
