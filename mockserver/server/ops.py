"""What the admin API does to the server's state, in one place: ``LocalOps`` for a process
that is the only one (its state in memory), ``SharedOps`` (``shared_ops``) for processes
that share theirs.  ``State`` picks one (``state.ops``); the admin handlers only call it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..accounting.cache import PromptCache
from ..accounting.usage import UsageMeter
from ..sources.rules.book import RuleBook
from ..sources.rules.spec import Rule
from .fault_rules import FaultBook, FaultRule
from .journal import EVERY, Exchange, Journal, Wanted


class Ops(Protocol):
    async def exchanges(self, wanted: Wanted = EVERY) -> list[Exchange]: ...
    async def journal_span(self) -> tuple[int | None, int]:
        """The oldest entry's id (``None``: the journal is empty) and how many there are."""
        ...

    async def clear_journal(self) -> int: ...
    async def usage(self) -> dict[str, Any]: ...
    async def reset_usage(self) -> dict[str, Any]:
        """The totals, and zero them."""
        ...

    async def reset_cache(self) -> int: ...
    async def fault_rules(self) -> list[dict[str, Any]]: ...
    async def add_fault_rules(self, rules: list[FaultRule]) -> list[dict[str, Any]]: ...
    async def clear_fault_rules(self) -> int: ...
    async def rules(self) -> list[dict[str, Any]]: ...
    async def add_rules(self, rules: list[Rule]) -> None:
        """Add them all, or (``RuleError``: a name is taken) none."""
        ...

    async def remove_rule(self, name: str) -> bool: ...
    async def clear_rules(self) -> int: ...
    async def reload(self) -> Mapping[str, int]: ...
    async def health(self) -> dict[str, Any]:
        """``requests`` served and ``state``: where the state is kept and how it is."""
        ...


def rules_listing(rules: list[Rule], answered: Mapping[str, int]) -> list[dict[str, Any]]:
    out = []
    for rule in rules:
        n = answered.get(rule.name, 0)
        if rule.times is not None:
            n = min(n, rule.times)  # (a spent rule's later matches are counted, not answered)
        out.append({**rule.to_json(), "answered": n})
    return out


class Held(Protocol):
    """The state ``LocalOps`` works on (the server's ``State``)."""

    journal: Journal
    usage: UsageMeter
    prompt_cache: PromptCache
    faults: FaultBook
    rules: RuleBook
    served: int

    def reload(self) -> Mapping[str, int]: ...


class LocalOps:
    """The state of a process that is the only one."""

    def __init__(self, state: Held) -> None:
        self.state = state

    async def exchanges(self, wanted: Wanted = EVERY) -> list[Exchange]:
        return self.state.journal.filter(wanted)

    async def journal_span(self) -> tuple[int | None, int]:
        everything = self.state.journal.all()
        return (everything[0].id if everything else None), len(everything)

    async def clear_journal(self) -> int:
        return self.state.journal.clear()

    async def usage(self) -> dict[str, Any]:
        return self.state.usage.snapshot()

    async def reset_usage(self) -> dict[str, Any]:
        snapshot = self.state.usage.snapshot()
        self.state.usage.reset()
        return snapshot

    async def reset_cache(self) -> int:
        return self.state.prompt_cache.reset()

    async def fault_rules(self) -> list[dict[str, Any]]:
        return [rule.to_json() for rule in self.state.faults.rules()]

    async def add_fault_rules(self, rules: list[FaultRule]) -> list[dict[str, Any]]:
        return [self.state.faults.add(rule).to_json() for rule in rules]

    async def clear_fault_rules(self) -> int:
        return self.state.faults.clear()

    async def rules(self) -> list[dict[str, Any]]:
        book = self.state.rules
        return rules_listing(book.rules(), book.state())

    async def add_rules(self, rules: list[Rule]) -> None:
        self.state.rules.add(rules)

    async def remove_rule(self, name: str) -> bool:
        return self.state.rules.remove(name)

    async def clear_rules(self) -> int:
        return self.state.rules.clear()

    async def reload(self) -> Mapping[str, int]:
        return self.state.reload()

    async def health(self) -> dict[str, Any]:
        return {"requests": self.state.served, "state": {"kind": "memory", "ok": True}}
