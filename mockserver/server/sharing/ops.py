"""``SharedOps``: the admin API on state shared by processes (``--workers N``, ``--state``).

Every call answers the same from any process: a read first makes every live process write
what it holds (``Coordinator.barrier``), a change returns once every process sees it.  A
store that is down makes an admin call a 503 saying so (``StoreDown``); the API requests
are answered meanwhile.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from ...accounting.usage import snapshot_of
from ...sources.replay import SEQUENCE
from ...sources.rules.book import ANSWERED
from ...sources.rules.spec import Rule, RuleError
from ..fault_rules import DRAWS, HITS, TIMES, FaultRule
from ..journal import EVERY, Exchange, Wanted
from ..ops import Held, rules_listing
from .coordinator import ALIVE_S, FAULT_ITEMS, RULE_ITEMS, Coordinator
from .records import SERVED, exchange_of

log = logging.getLogger("mockserver.shared")


class SharedOps:
    def __init__(self, state: Held, coordinator: Coordinator) -> None:
        self.state = state
        self.co = coordinator
        self.store = coordinator.store

    async def exchanges(self, wanted: Wanted = EVERY) -> list[Exchange]:
        await self.co.barrier(journal=True)
        out = []
        for text in await self.store.journal(wanted.since_id or 0):
            try:
                ex = exchange_of(text)
            except ValueError as exc:
                log.error("shared journal record skipped: %s", exc)
                continue
            if wanted.keeps(ex):
                out.append(ex)
        out.sort(key=lambda ex: (ex.time, ex.id))  # arrival order (ids are given as they end)
        return out

    async def journal_span(self) -> tuple[int | None, int]:
        return await self.store.journal_span()

    async def clear_journal(self) -> int:
        await self.co.barrier(journal=True)
        return await self.store.journal_clear()

    async def usage(self) -> dict[str, Any]:
        await self.co.barrier()
        return snapshot_of(await self.store.usage(), self.state.usage.prices)

    async def reset_usage(self) -> dict[str, Any]:
        await self.co.barrier()
        return snapshot_of(await self.store.usage_reset(), self.state.usage.prices)

    async def reset_cache(self) -> int:
        return await self.store.cache_clear()

    async def fault_rules(self) -> list[dict[str, Any]]:
        await self.co.barrier()
        hits = await self.store.counts(HITS)
        out = []
        for rule in self.state.faults.rules():
            rule.hits = hits.get(rule.key, 0)
            if rule.times is not None:
                rule.hits = min(rule.hits, rule.times)
            out.append(rule.to_json())
        return out

    async def add_fault_rules(self, rules: list[FaultRule]) -> list[dict[str, Any]]:
        keys = [f"api:{os.urandom(8).hex()}" for _ in rules]
        await self.co.add_items(
            FAULT_ITEMS,
            [(k, {"origin": "api", "rule": r.spec()}) for k, r in zip(keys, rules, strict=True)],
        )
        added = {r.key: r for r in self.state.faults.rules()}
        return [added[k].to_json() for k in keys if k in added]

    async def clear_fault_rules(self) -> int:
        n = await self.store.clear_items(FAULT_ITEMS)
        await self.store.clear_counts(HITS, DRAWS, TIMES)
        await self.co.barrier(config=True)
        return n

    async def rules(self) -> list[dict[str, Any]]:
        await self.co.barrier()
        return rules_listing(self.state.rules.rules(), await self.store.counts(ANSWERED))

    async def add_rules(self, rules: list[Rule]) -> None:
        taken = await self.co.add_items(
            RULE_ITEMS, [(r.name, {"origin": r.origin, "rule": r.data}) for r in rules]
        )
        if taken:
            first = next(r for r in rules if r.name in taken)
            raise RuleError(
                first.origin, first.name, "name", "a rule of this name exists: delete it first"
            )

    async def remove_rule(self, name: str) -> bool:
        if not await self.store.remove_item(RULE_ITEMS, name):
            return False
        answered = (await self.store.counts(ANSWERED)).get(name, 0)
        if answered:
            await self.store.incr(ANSWERED, name, -answered)
        await self.co.barrier(config=True)
        return True

    async def clear_rules(self) -> int:
        n = await self.store.clear_items(RULE_ITEMS)
        await self.store.clear_counts(ANSWERED)
        await self.co.barrier(config=True)
        return n

    async def reload(self) -> Mapping[str, int]:
        counts = dict(self.co.member.reload_files())
        counts.update(await self.co.seed())
        await self.store.clear_counts(SEQUENCE)  # (sequences start over, as on one server)
        await self.co.barrier(config=True, reload=True)
        return counts

    async def health(self) -> dict[str, Any]:
        breaker = self.co.breaker
        state: dict[str, Any] = {"kind": self.store.kind, "where": self.store.where}
        served = self.co.outbox.counted(*SERVED)
        if breaker.open:
            state.update(ok=False, reason=breaker.reason, since=round(breaker.since, 3))
            return {"requests": served, "state": state}
        try:
            served += (await self.store.counts(SERVED[0])).get(SERVED[1], 0)
            state.update(ok=True, processes=len(await self.store.acks(ALIVE_S)))
        except Exception as exc:  # (StoreDown: the tick notices and opens the breaker)
            state.update(ok=False, reason=str(exc), since=round(time.time(), 3))
        return {"requests": served, "state": state}
