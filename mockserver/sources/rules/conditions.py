"""Does a rule's ``when`` hold for a request?  The facts of a request a rule can look at, and
the verdict: the match (with the regex groups and the template variables), or the first
condition that failed and how many held before it (for a miss that names the closest rules)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from ...wire import protocol as p
from ...wire.json_path import MISSING, json_equal, json_path_get
from ..compose import last_user_text
from .spec import Conditions, TextCondition

Json = dict[str, Any]


@dataclass(frozen=True)
class Facts:
    """What rules look at, read once per request."""

    body: Json
    model: str
    last_user: str
    system: str
    tools: frozenset[str]
    #: the last user turn's tool results: ``(tool name, result text)``
    results: tuple[tuple[str, str], ...]
    turn: int
    stream: bool

    @classmethod
    def of(cls, body: Any) -> Facts:
        body = body if isinstance(body, dict) else {}
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        text, _ = last_user_text(messages)
        tools = frozenset(
            str(t.get("name"))
            for t in body.get("tools") or []
            if isinstance(t, dict) and t.get("name")
        )
        return cls(
            body=body,
            model=str(body.get("model", "")),
            last_user=text,
            system=_block_text(body.get("system")),
            tools=tools,
            results=_last_results(messages),
            turn=sum(1 for m in messages if m.get("role") == p.ROLE_USER),
            stream=body.get("stream") is True,
        )


@dataclass(frozen=True)
class Verdict:
    """A rule against a request: ``ok``, or ``failed`` (the first condition that did not hold)
    after ``held`` conditions that did; ``groups``: the regex's groups (``match`` in templates)."""

    ok: bool
    held: int = 0
    failed: str = ""
    groups: tuple[str, ...] = ()
    named: dict[str, str] = field(default_factory=dict)
    tool_result: str = ""


def _block_text(content: Any) -> str:
    """A system prompt's or a tool result's text: the string, or its text blocks' lines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == p.BLOCK_TEXT
        )
    return ""


def _last_results(messages: list[Json]) -> tuple[tuple[str, str], ...]:
    """``(tool name, result text)`` of the last user turn's tool results (the names from the
    assistant turn's ``tool_use`` blocks they answer)."""
    names: dict[str, str] = {}
    for message in messages:
        content = message.get("content")
        if message.get("role") == p.ROLE_ASSISTANT and isinstance(content, list):
            for b in content:
                if isinstance(b, dict) and b.get("type") == p.BLOCK_TOOL_USE:
                    names[str(b.get("id"))] = str(b.get("name"))
    users = [m for m in messages if m.get("role") == p.ROLE_USER]
    content = users[-1].get("content") if users else None
    blocks = content if isinstance(content, list) else []
    return tuple(
        (names.get(str(b.get("tool_use_id")), ""), _block_text(b.get("content")))
        for b in blocks
        if isinstance(b, dict) and b.get("type") == p.BLOCK_TOOL_RESULT
    )


_NOT = {"contains": "does not contain", "equals": "is not", "regex": "does not match"}


def _text(cond: TextCondition, text: str) -> Any:
    """The regex match, True, or None (no match)."""
    if cond.form == "contains":
        return True if cond.value in text else None
    if cond.form == "equals":
        return True if text == cond.value else None
    assert cond.pattern is not None
    return cond.pattern.search(text)


def judge(when: Conditions, facts: Facts) -> Verdict:
    """Every condition given, in the order of the README; the first that fails ends it."""
    held = 0
    groups: tuple[str, ...] = ()
    named: dict[str, str] = {}
    result_text = facts.results[-1][1] if facts.results else ""

    def fail(what: str) -> Verdict:
        return Verdict(False, held, what)

    if when.model is not None:
        if not fnmatch.fnmatchcase(facts.model, when.model):
            return fail(f"model {facts.model!r} is not {when.model!r}")
        held += 1
    for label, cond, text in (
        ("last_user", when.last_user, facts.last_user),
        ("system", when.system, facts.system),
    ):
        if cond is None:
            continue
        found = _text(cond, text)
        if found is None:
            return fail(f"{label} {_NOT[cond.form]} {cond.value!r}")
        if found is not True and not groups:
            groups = (found.group(0), *(g or "" for g in found.groups()))
            named = {k: v or "" for k, v in found.groupdict().items()}
        held += 1
    missing = [t for t in when.tools if t not in facts.tools]
    if missing:
        return fail(f"tool {missing[0]!r} is not offered")
    held += bool(when.tools)
    if when.tool_result is not None:
        mine = [text for name, text in facts.results if name == when.tool_result]
        if not mine:
            return fail(f"the last user turn returns no result of {when.tool_result!r}")
        result_text = mine[-1]
        if when.tool_result_content is not None:
            found = _text(when.tool_result_content, result_text)
            if found is None:
                return fail(
                    f"the {when.tool_result} result does not match {when.tool_result_content.describe()}"
                )
            if found is not True and not groups:
                groups = (found.group(0), *(g or "" for g in found.groups()))
        held += 1
    if when.turn is not None:
        if facts.turn != when.turn:
            return fail(f"turn is {facts.turn}, not {when.turn}")
        held += 1
    if when.stream is not None:
        if facts.stream != when.stream:
            return fail(f"stream is {str(facts.stream).lower()}")
        held += 1
    for path, steps, value in when.body:
        got = json_path_get(facts.body, steps)
        if got is MISSING or not json_equal(got, value):
            return fail(f"{path} is not {value!r}")
        held += 1
    return Verdict(True, held, "", groups, named, result_text)
