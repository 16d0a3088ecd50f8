"""Runtime state of one server: everything a request handler needs, on the Application."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .config import Settings
from .journal import Journal
from .profile import Profile
from .tokens import TokenCounter

if TYPE_CHECKING:
    from .rules import CheckedRequest
    from .sources import Source


@dataclass
class State:
    settings: Settings
    counter: TokenCounter
    journal: Journal = field(default_factory=Journal)
    started_at: float = field(default_factory=time.time)
    source: Source | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _prefix: str = field(default_factory=lambda: os.urandom(6).hex())

    @property
    def profile(self) -> Profile:
        return self.settings.profile

    def new_request_id(self) -> str:
        return f"{self.profile.request_id_prefix}mock{self._prefix}{next(self._ids):08d}"

    def input_usage(self, checked: CheckedRequest) -> dict[str, Any]:
        """Input side of ``usage`` for a synthesized reply (cache simulation hooks in here)."""
        return {
            "input_tokens": checked.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }


STATE: web.AppKey[State] = web.AppKey("mockserver_state", State)
