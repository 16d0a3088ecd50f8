"""mockserver: record/replay mock server and contract-test kit for the Anthropic Messages API.

The public names are imported on first use, so that importing a submodule (the pytest plugin,
``mockserver.conformance``, ``mockserver.strategies``) does not load the whole server.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings
    from .server.app import create_app
    from .server.running import ServerThread, serve_in_thread

__all__ = ["ServerThread", "Settings", "create_app", "serve_in_thread"]
__version__ = "0.1.0"

_WHERE = {
    "create_app": ".server.app",
    "Settings": ".config",
    "ServerThread": ".server.running",
    "serve_in_thread": ".server.running",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mockserver' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
