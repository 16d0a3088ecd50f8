"""Checks of ``messages``: roles, content blocks by their ``type`` tag (media blocks as the
profile allows), and the pairing of ``tool_use`` with ``tool_result`` across turns."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...profile import Profile
from ...wire import protocol as p
from .wording import (
    NOT_BOOL,
    NOT_DICT,
    NOT_LIST,
    NOT_UNION_DICT,
    invalid as _invalid,
    required as _required,
    str_field as _str_field,
    union_tag as _union_tag,
)

TOOL_USE_ID_PATTERN = "^[a-zA-Z0-9_-]+$"
_TOOL_USE_ID = re.compile(TOOL_USE_ID_PATTERN[1:-1])
MAX_MESSAGES = 100_000

#: request content blocks the alias knows (anything else is a tag error)
MESSAGE_BLOCKS = (
    p.BLOCK_TEXT,
    p.BLOCK_IMAGE,
    p.BLOCK_DOCUMENT,
    p.BLOCK_SEARCH_RESULT,
    p.BLOCK_THINKING,
    p.BLOCK_REDACTED_THINKING,
    p.BLOCK_TOOL_USE,
    p.BLOCK_TOOL_RESULT,
)
TOOL_RESULT_BLOCKS = (
    p.BLOCK_TEXT,
    p.BLOCK_IMAGE,
    p.BLOCK_DOCUMENT,
    p.BLOCK_SEARCH_RESULT,
    p.BLOCK_TOOL_REFERENCE,
)
_MEDIA_WHAT = {
    p.BLOCK_IMAGE: "image input",
    p.BLOCK_DOCUMENT: "document input",
    p.BLOCK_SEARCH_RESULT: "search_result blocks",
}


def _check_media(block: Mapping[str, Any], kind: str, loc: str, profile: Profile) -> None:
    if profile.media_blocks == "reject":
        raise _invalid(loc, f"this model does not support {_MEDIA_WHAT[kind]}")
    floc = f"{loc}.{kind}"
    if kind == p.BLOCK_SEARCH_RESULT:
        _str_field(block, "source", floc)
        _str_field(block, "title", floc)
        if not isinstance(_required(block, "content", floc), list):
            raise _invalid(f"{floc}.content", NOT_LIST)
    elif not isinstance(_required(block, "source", floc), dict):
        raise _invalid(f"{floc}.source", NOT_UNION_DICT)


def _check_tool_result_content(content: Any, loc: str, profile: Profile) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid(loc, NOT_LIST)
    for k, block in enumerate(content):
        _check_block(block, f"{loc}.{k}", profile, TOOL_RESULT_BLOCKS)


def _check_block(
    block: Any, loc: str, profile: Profile, tags: tuple[str, ...] = MESSAGE_BLOCKS
) -> None:
    kind = _union_tag(block, loc, tags)
    floc = f"{loc}.{kind}"
    if kind == p.BLOCK_TEXT:
        _str_field(block, "text", floc)
    elif kind == p.BLOCK_TOOL_REFERENCE:
        _str_field(block, "tool_name", floc)
    elif kind in _MEDIA_WHAT:
        _check_media(block, kind, loc, profile)
    elif kind == p.BLOCK_THINKING:
        _str_field(block, "thinking", floc)
        _str_field(block, "signature", floc)
    elif kind == p.BLOCK_REDACTED_THINKING:
        _str_field(block, "data", floc)
    elif kind == p.BLOCK_TOOL_USE:
        _str_field(block, "id", floc)
        if not _TOOL_USE_ID.fullmatch(block["id"]):
            raise _invalid(f"{floc}.id", f"String should match pattern '{TOOL_USE_ID_PATTERN}'")
        _str_field(block, "name", floc)
        if not isinstance(_required(block, "input", floc), dict):
            raise _invalid(f"{floc}.input", NOT_DICT)
    elif kind == p.BLOCK_TOOL_RESULT:
        _str_field(block, "tool_use_id", floc)
        _check_tool_result_content(block.get("content"), f"{floc}.content", profile)
        if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
            raise _invalid(f"{floc}.is_error", NOT_BOOL)


def check_messages(body: Mapping[str, Any], profile: Profile) -> list[dict[str, Any]]:
    """``messages``: a non-empty list of ``{role, content}``; roles user/assistant, and
    ``system`` turns as current clients send them; content a string or a list of blocks."""
    messages = _required(body, "messages", "")
    if not isinstance(messages, list):
        raise _invalid("messages", NOT_LIST)
    if not messages:
        raise _invalid("messages", "at least one message is required")
    if len(messages) > MAX_MESSAGES:
        raise _invalid(
            "messages",
            f"List should have at most {MAX_MESSAGES} items after validation, not {len(messages)}",
        )
    for i, m in enumerate(messages):
        loc = f"messages.{i}"
        if not isinstance(m, dict):
            raise _invalid(loc, NOT_DICT)
        if _required(m, "role", loc) not in (p.ROLE_USER, p.ROLE_ASSISTANT, p.ROLE_SYSTEM):
            raise _invalid(f"{loc}.role", "Input should be 'user' or 'assistant'")
        content = _required(m, "content", loc)
        if isinstance(content, list):
            for j, block in enumerate(content):
                _check_block(block, f"{loc}.content.{j}", profile)
        elif not isinstance(content, str):
            raise _invalid(f"{loc}.content", NOT_LIST)
    return messages


def _blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def check_tool_results(messages: list[dict[str, Any]]) -> None:
    """Every ``tool_result`` answers a ``tool_use`` of the previous message, and every
    ``tool_use`` is answered at the start of the next message (``system`` turns skipped)."""
    turns = [(i, m) for i, m in enumerate(messages) if m.get("role") != p.ROLE_SYSTEM]
    for t, (i, m) in enumerate(turns):
        blocks = _blocks(m)
        prev_uses = (
            [b["id"] for b in _blocks(turns[t - 1][1]) if b.get("type") == p.BLOCK_TOOL_USE]
            if t > 0
            else []
        )
        unexpected = [
            (j, str(b["tool_use_id"]))
            for j, b in enumerate(blocks)
            if b.get("type") == p.BLOCK_TOOL_RESULT and b["tool_use_id"] not in prev_uses
        ]
        if unexpected:
            raise _invalid(
                f"messages.{i}.content.{unexpected[0][0]}",
                "unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(u for _, u in unexpected)}. Each `tool_result` block must have a"
                " corresponding `tool_use` block in the previous message.",
            )
        uses = [str(b["id"]) for b in blocks if b.get("type") == p.BLOCK_TOOL_USE]
        if not uses or t + 1 == len(turns):
            continue
        j, nxt = turns[t + 1]
        nblocks = _blocks(nxt)
        leading: set[str] = set()
        for b in nblocks:
            if b.get("type") != p.BLOCK_TOOL_RESULT:
                break
            leading.add(b["tool_use_id"])
        later = {b["tool_use_id"] for b in nblocks if b.get("type") == p.BLOCK_TOOL_RESULT}
        missing = [u for u in uses if u not in leading]
        misplaced = [u for u in missing if u in later]
        if misplaced:
            raise _invalid(
                f"messages.{j}",
                f"Did not find {len(misplaced)} `tool_result` block(s) at the beginning of this"
                " message. Messages following `tool_use` blocks must begin with a matching"
                " number of `tool_result` blocks.",
            )
        if missing:
            raise _invalid(
                f"messages.{i}",
                f"`tool_use` ids were found without `tool_result` blocks immediately after:"
                f" {', '.join(missing)}. Each `tool_use` block must have a corresponding"
                " `tool_result` block in the next message.",
            )
