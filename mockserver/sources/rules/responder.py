"""``Rules``: the scripted-reply step of the sources (README "Scripted replies").

``answer`` gives the reply of the first rule that holds, or None.  A content or ``json`` reply
is rendered and finished exactly as synth's; an ``error`` reply is the fault it names (an
error before the body, or a delivery fault applied to the reply synth would give).  The
journal entry names the rule, and lists what the reply breaks of the request's contract
(a tool not offered, an input its schema rejects): a rule may make the model misbehave on
purpose, and the test should see it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ...contract.conformance import check_reply_for
from ...wire.faults import FaultPlan, parse_faults
from ...wire.reply import Reply
from ...wire.request import ApiRequest, CheckedRequest
from ..host import Host, Notes, on_exchange
from ..synth import finish
from . import render
from .conditions import Facts

#: what an ``error`` reply with only delivery faults (``error_event``, ``stall``, ...) delivers
Base = Callable[[ApiRequest, CheckedRequest], Awaitable[Reply]]


class Rules:
    def __init__(self, host: Host, base: Base) -> None:
        self.host = host
        self.base = base

    async def answer(self, req: ApiRequest, checked: CheckedRequest | None) -> Reply | None:
        book = self.host.rules
        if not len(book):  # (the usual server has none: nothing to read)
            return None
        facts = Facts.of(req.body)
        pick = book.pick(facts) if book.counters is None else await book.apick(facts)
        if pick is None:
            return None
        rule, spec = pick.rule, pick.reply
        full = render.checked_for(facts, checked)
        if spec.error is not None:
            plan = FaultPlan(parse_faults(spec.error, "error"))
            base = None if plan.error is not None else await self.base(req, full)
            reply = plan.reply(
                base,
                dialect=self.host.profile.dialect,
                request_id=req.request_id,
                ratelimit=self.host.profile.ratelimit,
            )
            return reply.with_(source="rule", extras=_notes(rule.name, []))
        message = render.message(spec, rule, facts, pick.verdict, self.host, full.max_tokens)
        broken = [v.to_dict() for v in check_reply_for(facts.body, message)]
        reply = await finish(self.host, full, message, "rule")
        return reply.with_(extras=_notes(rule.name, broken))

    def near(self, req: ApiRequest) -> list[str]:
        """For a miss: the rules that came closest, each with the first condition it failed."""
        book = self.host.rules
        if not len(book):
            return []
        return [f"rule {rule.name!r}: {why}" for rule, why in book.closest(Facts.of(req.body))]


def _notes(name: str, violations: list[dict[str, object]]) -> dict[str, object]:
    def note(ex: Notes) -> None:
        ex.rule = name
        ex.violations.extend(violations)

    return on_exchange(note)
