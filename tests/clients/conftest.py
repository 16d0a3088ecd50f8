"""Fixtures for the real-client suite: one synth server, and the Node packages.

The Node packages (``@anthropic-ai/sdk``, ``@anthropic-ai/claude-code``) are installed from
the npm registry by the session fixture ``node_modules`` into ``tests/clients/node/node_modules``
(git-ignored), with npm's download cache beside them; a stamp holding the hash of
``package.json`` skips the install on re-runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mockserver.config import Settings
from mockserver.server.running import ServerThread

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_MODULES = NODE_DIR / "node_modules"
STAMP = NODE_MODULES / ".mockserver-installed"
NPM_CACHE = NODE_MODULES / ".cache" / "npm"
NPM_TIMEOUT = 600


@pytest.fixture(scope="session")
def server() -> Iterator[ServerThread]:
    thread = ServerThread(Settings(port=0, mode="synth")).start()
    yield thread
    thread.stop()


@pytest.fixture(autouse=True)
def fresh(server: ServerThread) -> None:
    """Each test starts with an empty journal and no fault rules."""
    assert server.state is not None
    server.state.journal.clear()
    server.state.faults.clear()


def _missing(what: str) -> None:
    """Fail in CI (the machine must have it), skip with the reason elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is needed by tests/clients and missing on this machine")
    pytest.skip(f"{what} not found; tests/clients needs it")


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """``tests/clients/node/node_modules``, installed from package.json when stale."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            _missing(tool)
    digest = hashlib.sha256((NODE_DIR / "package.json").read_bytes()).hexdigest()
    if STAMP.is_file() and STAMP.read_text() == digest:
        return NODE_MODULES
    t0 = time.monotonic()
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--no-package-lock"]
    cmd += ["--loglevel=error", "--cache", str(NPM_CACHE)]
    done = subprocess.run(
        cmd, cwd=NODE_DIR, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"npm install failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    STAMP.write_text(digest)
    print(f"npm install in {NODE_DIR} took {time.monotonic() - t0:.1f} s")
    return NODE_MODULES
