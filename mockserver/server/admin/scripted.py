"""The admin API's scripted-reply rules: ``GET|POST|DELETE /_mockserver/rules`` and
``DELETE /_mockserver/rules/{name}``.  A POST takes one rule or ``{"rules": [...]}`` (the
shape of a rules file's items); every rule is checked before any is added."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...sources.rules.book import API
from ...sources.rules.spec import RuleError, parse_rule
from ...wire.errors import ApiError
from ..parse import parse_json, read_body
from ..state import State


async def rules_list(state: State, request: web.Request) -> Any:
    return {"rules": await state.ops.rules()}


async def rules_add(state: State, request: web.Request) -> Any:
    raw = await read_body(request, state.profile.max_request_bytes, state.settings.read_timeout)
    data = parse_json(raw) if raw.strip() else None
    if isinstance(data, dict) and isinstance(data.get("rules"), list) and "name" not in data:
        items = data["rules"]
    elif isinstance(data, dict):
        items = [data]
    else:
        raise ApiError.invalid(
            'Send a rule: {"name": "hello", "when": {...}, "reply": {...}}, or {"rules": [...]}'
        )
    try:
        rules = [parse_rule(item, "rules", API) for item in items]
        await state.ops.add_rules(rules)
    except RuleError as exc:
        raise ApiError.invalid(str(exc)) from None
    return {"rules": [rule.to_json() for rule in rules]}


async def rules_clear(state: State, request: web.Request) -> Any:
    return {"deleted": await state.ops.clear_rules()}


async def rule_delete(state: State, request: web.Request) -> Any:
    name = request.match_info["rule"]
    if not await state.ops.remove_rule(name):
        raise ApiError.not_found(f"no rule named {name!r}")
    return {"deleted": 1}
