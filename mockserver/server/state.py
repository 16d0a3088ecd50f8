"""Runtime state of one server: everything a request handler needs, on the Application."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..accounting.cache import CacheLookup, PromptCache, SharedPromptCache
from ..accounting.tokens import TokenCounter
from ..accounting.usage import UsageMeter
from ..config import Settings
from ..profile import Profile
from ..shared.counters import Counters
from ..shared.opening import open_state
from ..sources.host import Source
from ..sources.rules.book import RuleBook
from ..wire.request import CheckedRequest
from .fault_rules import FaultBook
from .journal import Journal
from .memo import CheckedBodies
from .ops import LocalOps, Ops
from .sharing.coordinator import Coordinator
from .sharing.ops import SharedOps
from .sharing.records import SharedJournal


@dataclass
class State:
    settings: Settings
    counter: TokenCounter
    journal: Journal = field(default_factory=Journal)
    started_at: float = field(default_factory=time.time)
    source: Source | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _prefix: str = field(default_factory=lambda: os.urandom(6).hex())
    #: fault rules and ``times`` counters (admin API, config file, pytest marker)
    faults: FaultBook = field(default_factory=FaultBook)
    usage: UsageMeter = field(init=False)
    #: prompt-cache simulation (profile ``cache`` policy)
    prompt_cache: PromptCache = field(init=False)
    #: scripted-reply rules (``--rules`` files, the admin API, the pytest plugin)
    rules: RuleBook = field(init=False)
    #: request bodies already parsed and checked under this profile, by their bytes
    checked: CheckedBodies = field(init=False)
    #: ``settings.speed``, read once (the writer needs it on every reply)
    speed: float = field(init=False)
    _id_prefix: str = field(init=False)
    #: requests answered since start (admin ``health``)
    served: int = 0
    #: API requests being answered right now (a stream counts until its last event)
    in_flight: int = 0
    #: extra work for ``POST /_mockserver/reload`` (e.g. re-reading cassettes): name -> count
    reload_hooks: dict[str, Callable[[], int]] = field(default_factory=dict)
    #: this process's part in the state it shares with others (``--workers N``, ``--state``);
    #: ``None``: the state is this process's, in memory
    shared: Coordinator | None = field(init=False, default=None)
    #: what the admin API does to the state (``LocalOps`` or ``SharedOps``)
    ops: Ops = field(init=False)

    def __post_init__(self) -> None:
        self.usage = UsageMeter(self.settings.profile.prices)
        self.checked = CheckedBodies()
        self.speed = self.settings.speed
        self._id_prefix = f"{self.profile.request_id_prefix}mock{self._prefix}"
        if self.settings.state is not None:
            self._share(self.settings.state)
            return
        self.prompt_cache = PromptCache(self.settings.profile.cache, self.counter)
        if self.settings.fault_config is not None:
            self.faults.load_config(self.settings.fault_config)  # ConfigError when bad
        self.rules = RuleBook(self.settings.rule_files)  # ConfigError when a file is bad
        self.ops = LocalOps(self)

    def _share(self, url: str) -> None:
        """Keep the state in the store ``url`` names, with the other processes there: the
        rules, counts, journal, usage and prompt cache live there (the coordinator joins at
        startup: ``coordinator.start``)."""
        store = open_state(url, self.settings.state_prefix)
        co = self.shared = Coordinator(self, store)
        self.journal = co.journal = SharedJournal(co.outbox)
        self.faults = FaultBook(co.counters)  # (the rules: the store's, the files seeded there)
        self.rules = RuleBook(self.settings.rule_files, co.counters)  # (checked now)
        self.prompt_cache = SharedPromptCache(
            self.settings.profile.cache, self.counter, store, co.breaker
        )
        self.usage.shared = True
        self.ops = SharedOps(self, co)

    @property
    def counters(self) -> Counters | None:
        """The counters processes share (``None``: this process is the only one)."""
        return self.shared.counters if self.shared is not None else None

    def reconfigure(self, settings: Settings) -> None:
        """Start over under ``settings`` on a running server (the pytest plugin's session
        scope): new journal, fault book, usage meter, prompt cache, token counter and reload
        hooks.  The caller then installs a source for the new settings
        (``sources.make_source``) and cleans up the old one."""
        self.settings = settings
        self.counter = TokenCounter(settings.profile.overheads)
        self.journal = Journal()
        self.faults = FaultBook()
        self.reload_hooks = {}
        self.served = 0
        self.__post_init__()

    def reset_cache(self) -> int:
        """Forget the prompt-cache simulation's state; returns the entries dropped."""
        return self.prompt_cache.reset()

    def reload(self) -> Mapping[str, int]:
        """Re-read the fault config and rule files and whatever the reload hooks cover; counts
        by name (``ConfigError`` when a file is bad: the old configuration stays)."""
        counts: dict[str, int] = {}
        if self.settings.fault_config is not None:
            counts["fault_rules"] = self.faults.load_config(self.settings.fault_config)
        if self.settings.rule_files:
            counts["rules"] = self.rules.load_files()
        counts.update(self.reload_files())
        return counts

    def reload_files(self) -> Mapping[str, int]:
        """Re-read what the reload hooks cover (the cassettes); counts by name."""
        return {name: hook() for name, hook in self.reload_hooks.items()}

    @property
    def profile(self) -> Profile:
        return self.settings.profile

    def new_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):08d}"

    async def cache_lookup(self, checked: CheckedRequest) -> CacheLookup:
        """The prompt cache's split of a request's input tokens; ``.acommit()`` it once the
        reply exists (a 400 ``ApiError`` for bad ``cache_control`` under ``breakpoints``)."""
        return await self.prompt_cache.alookup(checked.body, checked.model)


STATE: web.AppKey[State] = web.AppKey("mockserver_state", State)
