"""``Coordinator``: one process's part in the state it shares with the others (``--workers N``
on an embedded SQLite store, replicas on ``--state redis://``).

- Behind the requests, every ``TICK_S`` it reads the versions and, when they say so,
  re-reads the shared rules or the files or writes its finished exchanges; every ``BEAT_S``
  it checks in (a heartbeat) and writes its counts and usage sums as one batch.  Nothing is
  written on the request path of a plain replay: the journal is written when someone reads it.
- ``barrier()`` makes every live process catch up now: an admin call that changed something
  returns once every process sees it, and one that reads the journal or the usage totals
  reads them with every finished exchange of every process in.
- While the store is down (``breaker`` open) requests are answered from this process's own
  view; the tick probes the store and, when it answers again, writes what waited (a batch is
  applied once, however often it is sent) and re-reads what changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Final, Protocol

from ...accounting.usage import UsageMeter, usage_sums
from ...config import Settings
from ...shared.counters import Breaker, SharedCounters
from ...shared.outbox import Outbox
from ...shared.seam import SharedState, StoreDown, Versions
from ...sources.rules.book import API, PYTEST, RuleBook
from ...sources.rules.spec import Rule, RuleError, parse_rule
from ...wire.errors import ConfigError
from ..fault_rules import FaultBook, FaultRule, load_rules
from .records import SharedJournal

log = logging.getLogger("mockserver.shared")

#: seconds between a process's looks at the versions (how soon it catches up)
TICK_S: Final = 0.005
#: seconds between a process's check-ins (it is alive) and the batches of its counts
BEAT_S: Final = 0.5
#: a process not seen for this long is gone (a barrier stops waiting for it)
ALIVE_S: Final = 3.0
#: the longest a barrier waits for the other processes
BARRIER_TIMEOUT_S: Final = 2.0
#: seconds between probes of a store that is down
PROBE_S: Final = 0.5
#: the kinds of shared items and counters the coordinator keeps
FAULT_ITEMS, RULE_ITEMS, IDS, SERVED = "fault-rules", "rules", "ids", "served"


class Member(Protocol):
    """What the coordinator keeps in step (the server's ``State``)."""

    settings: Settings
    usage: UsageMeter
    faults: FaultBook
    rules: RuleBook

    def reload_files(self) -> Mapping[str, int]:
        """Re-read what this process reads from files itself (the cassettes)."""
        ...


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class Coordinator:
    def __init__(self, member: Member, store: SharedState) -> None:
        self.member = member
        self.store = store
        self.proc = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.outbox = Outbox(self.proc)
        self.breaker = Breaker()
        self.counters = SharedCounters(store, self.outbox, self.breaker)
        #: the versions this process has caught up with, and the epoch it says it has
        self.seen = Versions()
        self.acked = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._probed = 0.0
        self._beat = 0.0
        #: the journal whose finished exchanges this process writes when asked
        self.journal: SharedJournal | None = None

    # --- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join: the store must answer (``ConfigError`` saying where and why otherwise)."""
        try:
            await self.store.ping()
            await self.seed()
            await self.refresh()
            self.seen = await self.store.check_in(self.proc, 0)
            self.acked = self.seen.epoch
            await self.store.check_in(self.proc, self.acked)
        except StoreDown as exc:
            raise ConfigError(
                f"{exc}; start it, or fix --state (the shared state must answer at startup)"
            ) from None
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Leave: write what is left (briefly: a store that is down is not waited for)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if not self.breaker.open:
            try:
                async with asyncio.timeout(2.0):
                    async with self._lock:
                        if self.journal is not None:
                            self.journal.publish()
                        await self.flush()
                    await self.store.leave(self.proc)
            except (StoreDown, TimeoutError) as exc:
                log.warning("shared state: leaving without writing the last batch: %s", exc)
        await self.store.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # (the loop must go on: log it and tick again)
                log.exception("shared state: tick failed")

    async def tick(self) -> None:
        if self.breaker.open:
            now = time.monotonic()
            if now - self._probed < PROBE_S:
                return
            self._probed = now
            try:
                await self.store.ping()
            except StoreDown:
                return
            log.warning("shared state %s answers again: writing what waited", self.store.where)
            self.breaker.close()
            # (re-read the rules, they may have changed; write the journal that waited)
            self.seen = replace(self.seen, config=-1, journal=-1)
            self._beat = 0.0
        async with self._lock:
            try:
                now = time.monotonic()
                if now - self._beat >= BEAT_S:  # say it is alive, write its counts
                    self._beat = now
                    await self._catch_up(await self.store.check_in(self.proc, self.acked), True)
                else:
                    versions = await self.store.versions()
                    if versions != self.seen:
                        await self._catch_up(versions, False)
            except StoreDown as exc:
                if not self.breaker.open:
                    log.warning(
                        "shared state down (%s): answering from this process's own state", exc
                    )
                self.breaker.trip(exc)

    async def _catch_up(self, versions: Versions, flush: bool) -> None:
        """Re-read what changed, write what is asked for, say so (with the lock held)."""
        if versions.config != self.seen.config:
            await self.refresh()
        if versions.reload != self.seen.reload:
            self.member.reload_files()
        if versions.journal != self.seen.journal and self.journal is not None:
            self.journal.publish()
        if flush or versions.epoch != self.seen.epoch:
            await self.flush()
        self.seen = versions
        if versions.epoch != self.acked:
            self.acked = versions.epoch
            await self.store.check_in(self.proc, self.acked)

    async def flush(self) -> None:
        """Write the outbox (with the lock held)."""
        pending = self.member.usage.drain()
        if pending:
            self.outbox.usage(usage_sums(pending))
        while (batch := self.outbox.take()) is not None:
            await self.store.apply(batch)
            self.outbox.done()

    async def barrier(
        self, *, config: bool = False, reload: bool = False, journal: bool = False
    ) -> None:
        """Every live process catches up and writes what it holds (``StoreDown`` when the
        store is down): ``config``: the shared rules changed; ``reload``: every process
        re-reads its files (this one has: the caller did it); ``journal``: every process
        writes its finished exchanges."""
        async with self._lock:
            versions = await self.store.bump(config=config, reload=reload, journal=journal)
            if reload:
                self.seen = replace(self.seen, reload=versions.reload)
            await self._catch_up(versions, True)
        deadline = time.monotonic() + BARRIER_TIMEOUT_S
        while True:
            acks = await self.store.acks(ALIVE_S)
            behind = sorted(p for p, acked in acks.items() if acked < versions.epoch)
            if not behind:
                return
            if time.monotonic() > deadline:
                log.warning("shared state: %s did not catch up in time", ", ".join(behind))
                return
            await asyncio.sleep(0.002)

    # --- the shared rules ------------------------------------------------------------------

    async def seed(self) -> dict[str, int]:
        """Put this process's ``--faults`` and ``--rules`` files' rules in the store (once
        for every process reading the same files; changed files replace them)."""
        settings = self.member.settings
        counts: dict[str, int] = {}
        if settings.fault_config is not None:
            faults = load_rules(settings.fault_config)
            items = [
                (f"config:{i}", {"origin": "config", "rule": r.spec()})
                for i, r in enumerate(faults)
            ]
            await self._seed(FAULT_ITEMS, "config", items)
            counts["fault_rules"] = len(faults)
        if settings.rule_files:
            rules = self.member.rules.read_files()
            items = [(r.name, {"origin": r.origin, "rule": r.data}) for r in rules]
            await self._seed(RULE_ITEMS, "file", items)
            counts["rules"] = len(rules)
        return counts

    async def _seed(self, kind: str, origin: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        def mine(data: Mapping[str, Any]) -> bool:
            return (data.get("origin") == "config") if origin == "config" else _is_file(data)

        want = {key: _dumps(data) for key, data in items}
        have = {key: text for key, text in await self.store.items(kind) if mine(json.loads(text))}
        if {k: _strip_id(v) for k, v in have.items()} == want:
            return  # (another process of this run seeded the same)
        for key in have:
            await self.store.remove_item(kind, key)
        numbered = []
        for key, text in want.items():
            data = json.loads(text)
            if kind == FAULT_ITEMS:
                data["id"] = await self.store.incr(IDS, kind)
            numbered.append((key, _dumps(data)))
        taken = await self.store.add_items(kind, numbered)
        if taken:
            raise RuleError(
                "--rules", taken[0], "name", "a rule of this name was added through the admin API"
            )

    async def refresh(self) -> None:
        """Install the store's rules in this process's books."""
        faults: list[FaultRule] = []
        for key, text in await self.store.items(FAULT_ITEMS):
            try:
                data = json.loads(text)
                fault = FaultRule.from_json(data["rule"], data.get("origin", "api"))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("shared fault rule %s skipped: %s", key, exc)
                continue
            fault.id, fault.key = int(data.get("id", 0)), key
            faults.append(fault)
        self.member.faults.replace(faults)
        files: list[Rule] = []
        others: list[Rule] = []
        for key, text in await self.store.items(RULE_ITEMS):
            try:
                data = json.loads(text)
                origin = str(data.get("origin", API))
                rule = parse_rule(data["rule"], origin, origin)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("shared rule %s skipped: %s", key, exc)
                continue
            (files if _is_file(data) else others).append(rule)
        self.member.rules.replace(files + others)

    async def add_items(self, kind: str, items: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
        """Add admin rules (all or, when a key is taken, none: the taken keys)."""
        numbered = []
        for key, data in items:
            if kind == FAULT_ITEMS:
                data = {**data, "id": await self.store.incr(IDS, kind)}
            numbered.append((key, _dumps(data)))
        taken = await self.store.add_items(kind, numbered)
        if not taken:
            await self.barrier(config=True)
        return taken


def _is_file(data: Mapping[str, Any]) -> bool:
    return data.get("origin") not in (API, PYTEST, "config")


def _strip_id(text: str) -> str:
    data = json.loads(text)
    data.pop("id", None)
    return _dumps(data)
