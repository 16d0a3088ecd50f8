"""The browser tests' browser: the distribution's headless Chromium (``/usr/bin/chromium``,
Debian package ``chromium``) driven by Playwright for Python, with no browser download
(``executable_path``).  ``ensure_chromium`` installs the package when it is missing and we
are root (``.ci/run`` does the same before the tests)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

CHROMIUM = Path(os.environ.get("MOCKSERVER_CHROMIUM", "/usr/bin/chromium"))
#: no sandbox (root in a container), and none of the background traffic Chromium sends at
#: start (this machine's network is closed: those connections would be refused, slowly)
ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def ensure_chromium() -> Path:
    """The Chromium binary; installed with apt-get when missing (needs root and apt)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(
            f"the browser tests need Chromium at {CHROMIUM}: install the distribution's package "
            "(Debian: `apt-get update && apt-get install -y chromium`) or point "
            "MOCKSERVER_CHROMIUM at a Chromium/Chrome binary"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            raise RuntimeError(
                f"installing Chromium failed: {' '.join(cmd)} exited {done.returncode}:\n"
                f"{done.stderr[-2000:]}"
            )
    if not CHROMIUM.is_file():
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM} is not there")
    return CHROMIUM


@dataclass
class Session:
    """A running browser; ``errors`` collects every page's script errors and console errors."""

    browser: Browser
    errors: list[str] = field(default_factory=list)

    async def new_page(self, width: int = 1440, height: int = 900) -> Page:
        page = await self.browser.new_page(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)
        return page

    def _console(self, msg: ConsoleMessage) -> None:
        # (a failed load the page expects, e.g. a 401 without the admin token, is no bug)
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            self.errors.append(f"console: {msg.text}")


@contextlib.asynccontextmanager
async def chromium(binary: Path) -> AsyncIterator[Session]:
    """A headless Chromium with a throw-away profile; always stopped."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(binary), args=list(ARGS))
        try:
            yield Session(browser)
        finally:
            with contextlib.suppress(Error):
                await browser.close()
