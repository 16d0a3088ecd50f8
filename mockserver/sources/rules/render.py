"""A rule's reply as the message the endpoint would send: templates filled in (sandboxed), tool
calls with ids and inputs (``auto``: generated from the offered tool's schema), the request's
``stop_sequences`` and ``max_tokens`` applied to what the rule says, usage counted by the
tokenizer.  Then it is finished exactly as synth's (cache simulation, JSON or SSE)."""

from __future__ import annotations

import json
import random
from typing import Any

from ...wire import protocol as p
from ...wire.errors import ApiError
from ...wire.request import CheckedRequest
from ..compose import limit, make_id, message_of, request_digest
from ..host import Host
from ..instances import instance
from ..scalars import Unsatisfiable
from .conditions import Facts, Verdict
from .spec import ReplySpec, Rule, template

Json = dict[str, Any]


def context(facts: Facts, verdict: Verdict) -> dict[str, Any]:
    """What templates see: plain values only (the sandbox keeps them from anything else)."""
    return {
        "last_user": facts.last_user,
        "match": list(verdict.groups),
        "tool_result": verdict.tool_result,
        "model": facts.model,
        "turn": facts.turn,
    }


def fill(value: Any, ctx: dict[str, Any], rule: Rule) -> Any:
    """``value`` with every string template rendered (recursively)."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            return template(value).render(ctx)
        except Exception as exc:  # (a template error is the rule's fault: say whose)
            raise ApiError(
                500, p.API_ERROR, f"mockserver: rule {rule.name!r}: template failed: {exc}"
            ) from None
    if isinstance(value, dict):
        return {k: fill(v, ctx, rule) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ctx, rule) for v in value]
    return value


def content_of(
    spec: ReplySpec, rule: Rule, facts: Facts, verdict: Verdict, rng: random.Random, prefix: str
) -> list[Json]:
    ctx = context(facts, verdict)
    if spec.has_json:
        value = fill(spec.json, ctx, rule)
        return [
            {
                "type": p.BLOCK_TEXT,
                "text": json.dumps(value, ensure_ascii=False, separators=(",", ":")),
            }
        ]
    out: list[Json] = []
    for block in spec.content:
        if "text" in block:
            out.append({"type": p.BLOCK_TEXT, "text": fill(block["text"], ctx, rule)})
            continue
        call = block["tool_use"]
        name = str(call["name"])
        given = call.get("input", "auto")
        value = _auto_input(name, facts, rng) if given == "auto" else fill(given, ctx, rule)
        out.append(
            {"type": p.BLOCK_TOOL_USE, "id": make_id(prefix, rng), "name": name, "input": value}
        )
    return out


def _auto_input(name: str, facts: Facts, rng: random.Random) -> Json:
    """An input the offered tool's schema accepts (``{}`` for a tool not offered: a rule may
    call one on purpose, and the journal lists what that breaks)."""
    for tool in facts.body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("name") == name:
            try:
                value = instance(
                    tool.get("input_schema") or {"type": "object"}, rng, facts.last_user
                )
            except Unsatisfiable:
                return {}
            return value if isinstance(value, dict) else {}
    return {}


def message(
    spec: ReplySpec, rule: Rule, facts: Facts, verdict: Verdict, host: Host, max_tokens: int
) -> Json:
    """The message a content or json reply makes, before usage's input side."""
    rng = random.Random(request_digest({**facts.body, "rule": rule.name}, host.settings.seed))
    msg_id = make_id(host.profile.message_id_prefix, rng)
    content = content_of(spec, rule, facts, verdict, rng, host.profile.tool_use_id_prefix)
    calls = any(b["type"] == p.BLOCK_TOOL_USE for b in content)
    stop = spec.stop_reason or (p.STOP_TOOL_USE if calls else p.STOP_END_TURN)
    counter = host.counter
    return message_of(
        msg_id,
        facts.model,
        *limit(content, stop, facts.body, max_tokens, counter.output, counter.cut),
    )


def checked_for(facts: Facts, checked: CheckedRequest | None) -> CheckedRequest:
    """The checked request, or (a record-new miss is not checked) one made from the body."""
    if checked is not None:
        return checked
    max_tokens = facts.body.get("max_tokens")
    return CheckedRequest(
        body=facts.body,
        model=facts.model,
        max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 4096,
        input_tokens=-1,
        stream=facts.stream,
        tools=(),
        tool_choice=None,
        requested_model=facts.model,
    )
