"""mockserver: record/replay mock server and contract-test kit for the Anthropic Messages API."""

from __future__ import annotations

from .app import create_app
from .config import Settings
from .server import ServerThread, serve_in_thread

__all__ = ["ServerThread", "Settings", "create_app", "serve_in_thread"]
__version__ = "0.1.0"
