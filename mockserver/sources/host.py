"""What a source is handed by the server that runs it (sources never import ``server/``).

- ``Host``: the server's state a source reads: settings and profile, the token counter, the
  prompt-cache simulation, the usage meter, the scripted-reply rules, and the reload hooks it
  may register.
- ``Notes``: the journal entry of the exchange a reply answers, for sources that fill in
  fields late (near misses, contract violations, a recorded stream as it ended).
- ``Source``: what every source is: ``reply(request, checked) -> Reply``.

The server's ``State`` is the ``Host``, its journal's ``Exchange`` the ``Notes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..accounting.cache import CacheLookup
from ..accounting.tokens import TokenCounter
from ..accounting.usage import UsageMeter
from ..config import Settings
from ..profile import Profile
from ..shared.counters import Counters
from ..wire.reply import Reply
from ..wire.request import ApiRequest, CheckedRequest
from ..wire.written import WrittenStream
from .rules.book import RuleBook


class Host(Protocol):
    settings: Settings
    counter: TokenCounter
    usage: UsageMeter
    #: the scripted-reply rules and their state
    rules: RuleBook
    #: extra work for ``POST /_mockserver/reload`` (e.g. re-reading cassettes): name -> count
    reload_hooks: dict[str, Callable[[], int]]

    @property
    def profile(self) -> Profile: ...

    #: the counters processes share (``None``: this process is the only one)
    @property
    def counters(self) -> Counters | None: ...

    async def cache_lookup(self, checked: CheckedRequest) -> CacheLookup: ...


class Notes(Protocol):
    model: str | None
    api_key: str
    fault: str | None
    response: Any
    usage: dict[str, Any] | None
    cost_usd: str | None
    violations: list[dict[str, Any]]
    near_misses: list[dict[str, Any]]
    written: WrittenStream | None
    #: the scripted-reply rule that answered
    rule: str | None


class Source(Protocol):
    async def reply(self, req: ApiRequest, checked: CheckedRequest) -> Reply: ...


def on_exchange(fn: Callable[[Notes], None]) -> dict[str, Any]:
    """``Reply.extras`` that let the server hand the reply's journal entry to ``fn``."""
    return {"on_exchange": fn}
