"""Tool search, as Claude Code does it: deferred tools are loaded with a ``ToolSearch`` call
before they are called.

With tool search on (``ENABLE_TOOL_SEARCH=true``; for a non-Anthropic base URL it is off by
default and every tool is sent in full), Claude Code sends a few tools in full plus a client
tool ``ToolSearch``; the others, built-in ones and MCP servers' ``mcp__<server>__<tool>``, are
only named in a ``role: "system"`` message.  A model loads one by calling ``ToolSearch`` with
``{"query": "select:<name>[,<name>...]"}``; Claude Code answers with a ``tool_result`` holding
``tool_reference`` blocks (plus a text "Tool loaded."), and from then on sends the loaded tool
in ``tools`` (marked ``defer_loading: true``).

Synth plays the model's part:

- the last user turn names a tool that cannot be called yet (named in no ``tools`` entry, or
  deferred and never loaded) and a search tool is offered: call the search tool to load it;
- the last user turn returns ``tool_reference`` blocks: call the tools they loaded, with the
  inputs the user's own words (the turn before the search) give.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..wire import protocol as p

Json = dict[str, Any]

#: the search tool's name in Claude Code
SEARCH_TOOL = "ToolSearch"
#: what the system message that lists deferred tools says
_LISTED = "deferred tools"
_MCP_NAME = re.compile(r"(?<![\w-])mcp__[A-Za-z0-9_-]+__[A-Za-z0-9_-]+")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def search_tool(tools: list[Json]) -> Json | None:
    """The offered tool that loads deferred tools, if any."""
    for tool in tools:
        if tool.get("name") == SEARCH_TOOL:
            return tool
    return None


def _tool_results(message: Any) -> Iterator[Json]:
    content = message.get("content") if isinstance(message, dict) else None
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == p.BLOCK_TOOL_RESULT:
            yield block


def _references(result: Json) -> list[str]:
    content = result.get("content")
    blocks = content if isinstance(content, list) else []
    return [
        str(b.get("tool_name"))
        for b in blocks
        if isinstance(b, dict) and b.get("type") == p.BLOCK_TOOL_REFERENCE
    ]


def _last_user(messages: list[Any]) -> Any:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == p.ROLE_USER:
            return message
    return None


def loaded_now(messages: list[Any], tools: list[Json]) -> list[Json]:
    """The offered tools that the last user turn's tool results just loaded."""
    names = [n for r in _tool_results(_last_user(messages)) for n in _references(r)]
    by_name = {str(t.get("name")): t for t in tools}
    return [by_name[n] for n in dict.fromkeys(names) if n in by_name]


def _loaded_ever(messages: list[Any]) -> set[str]:
    return {n for m in messages for r in _tool_results(m) for n in _references(r)}


def _listed(messages: list[Any]) -> list[str]:
    """Tool names the ``role: system`` messages list as deferred."""
    out: list[str] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != p.ROLE_SYSTEM:
            continue
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        if _LISTED in text:
            out += [line.strip() for line in text.splitlines() if _NAME.match(line.strip())]
    return out


def to_load(prompt: str, tools: list[Json], messages: list[Any]) -> list[str]:
    """The tools ``prompt`` names that must be loaded before they can be called."""
    loaded = _loaded_ever(messages)
    callable_now = {
        str(t.get("name"))
        for t in tools
        if not t.get("defer_loading") or str(t.get("name")) in loaded
    }
    known = _listed(messages) + [str(t.get("name")) for t in tools if t.get("defer_loading")]
    named = [m.group(0) for m in _MCP_NAME.finditer(prompt)]
    named += [n for n in known if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", prompt)]
    return [n for n in dict.fromkeys(named) if n not in callable_now]


def search_input(value: Json, names: list[str]) -> Json:
    """The search tool's input (as generated from its schema) asking for exactly ``names``."""
    return {**value, "query": "select:" + ",".join(names)}


def asking_turn(messages: list[Any]) -> list[Any]:
    """``messages`` up to the user turn that asked for the tools (before the search call and
    the turn that answered it), so the loaded tools' inputs come from the user's words."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if not isinstance(message, dict) or message.get("role") != p.ROLE_USER:
            continue
        if not any(_references(r) for r in _tool_results(message)):
            return messages[: i + 1]
    return messages
