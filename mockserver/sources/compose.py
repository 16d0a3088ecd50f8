"""Deterministic composer: (request, seed) -> message.

The rules (also in README "Synthesized replies"):

- The reply depends only on the request body and ``--seed``: same input, same bytes.
- Tools are called when ``tool_choice`` is ``any`` or ``tool``, and under ``auto`` (the default
  when tools are offered) when the last user turn names one or more offered tools in its text.
  Every named tool is called, in the order offered, in one reply (parallel calls) unless
  ``disable_parallel_tool_use`` is set; ``any`` with no tool named calls the first tool;
  ``tool`` calls exactly that tool.  A forced call (``any``, ``tool``) is the reply's first
  block, with no text before it; under ``auto`` a short text precedes the calls.  A turn that
  only carries ``tool_result`` blocks gets a text answer that ends the loop.  Text blocks
  starting with ``<system-reminder>`` (context Claude Code adds) are not the user's words.
- Tool ``input`` is generated from the tool's ``input_schema`` (``instances``) and validates
  against it; a tool whose schema no value satisfies is a 400 when the call was forced and is
  not called otherwise.  A top-level string property named like a path gets the first
  absolute path written in the last user turn.
- Structured output (``output_schema``): the text is JSON that validates against the schema.
- ``stop_sequences``: the text stops where it would contain a sequence (the earliest), which
  is then the ``stop_sequence``; the text never contains one.
- ``max_tokens`` smaller than the reply cuts it at a token boundary: ``output_tokens`` is then
  ``max_tokens`` exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from ..accounting.tokens import SplitText
from ..wire import protocol as p
from ..wire.errors import ApiError
from . import tool_search
from .instances import instance
from .scalars import WORDS, Unsatisfiable

log = logging.getLogger("mockserver.synth")

Json = dict[str, Any]
#: text -> the longest prefix of it that fits in a token budget, cut at a token boundary
Cut = Callable[[str, int], str]

_B62 = string.digits + string.ascii_letters
_REMINDER = "<system-reminder>"
FORCED = ("any", "tool")


def request_digest(body: Json, seed: int) -> bytes:
    """Stable digest of a request; the ``stream`` flag is left out so that a streamed and a
    non-streamed request get the same message."""
    body = {k: v for k, v in body.items() if k != "stream"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{seed}\x00{canon}".encode()).digest()


def make_id(prefix: str, rng: random.Random, length: int = 24) -> str:
    """``prefix`` + ``01`` + base-62 characters from ``rng`` (one draw of random bits)."""
    n = rng.getrandbits(6 * (length - 2))
    chars = []
    for _ in range(length - 2):
        n, digit = divmod(n, 62)
        chars.append(_B62[digit])
    return prefix + "01" + "".join(chars)


def last_user_text(messages: list[Any]) -> tuple[str, bool]:
    """Text of the last user turn, and whether that turn is only tool results.

    Text blocks that start with ``<system-reminder>`` are left out."""
    for msg in reversed(messages):
        if not isinstance(msg, dict) or msg.get("role") != p.ROLE_USER:
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return content, False
        texts: list[str] = []
        only_results = bool(content)
        for block in content or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == p.BLOCK_TEXT:
                text = str(block.get("text", ""))
                if text.lstrip().startswith(_REMINDER):
                    continue  # context a client injects (Claude Code), not what the user asked
                texts.append(text)
                only_results = False
            elif block.get("type") != p.BLOCK_TOOL_RESULT:
                only_results = False
        return " ".join(texts), only_results
    return "", False


def names_in(text: str, tools: list[Json]) -> list[Json]:
    """The tools whose names ``text`` mentions as words, in the order offered."""
    return [
        t
        for t in tools
        if re.search(rf"(?<![\w-]){re.escape(str(t.get('name', '')))}(?![\w-])", text)
    ]


def tools_to_call(
    choice: Mapping[str, Any], tools: list[Json], text: str, only_results: bool
) -> list[Json]:
    if not tools:
        return []
    ctype = choice.get("type", "auto")
    parallel = not choice.get("disable_parallel_tool_use", False)
    if ctype == "none":
        return []
    if ctype == "tool":
        return [t for t in tools if t.get("name") == choice.get("name")][:1]
    if only_results and ctype == "auto":
        return []
    mentioned = names_in(text, tools)
    if not mentioned and ctype == "any":
        mentioned = tools[:1]
    return mentioned if parallel else mentioned[:1]


def _sentence(rng: random.Random, n: int) -> list[str]:
    """A sentence of ``n`` words as it follows a space: ``[" Word", " word", ..., "."]``."""
    words = rng.choices(WORDS, k=n)
    return [" " + words[0].capitalize(), *[" " + w for w in words[1:]], "."]


def compose_text(rng: random.Random, prompt: str, only_results: bool) -> str:
    """A lead (echoing the prompt's first words) and one to three sentences of ``WORDS``.

    A ``SplitText`` cut before each word and each full stop: the tokenizer splits there in any
    case (a word of ASCII letters after a space is one pre-token, a full stop after letters
    another, and the lead, whatever the prompt, never ends in whitespace), so its tokens are
    counted from the cached encodings of the words and only the lead is tokenized."""
    if only_results:
        lead = "Thanks, I have the tool results."
    else:
        snippet = " ".join(prompt.split()[:8])
        lead = f"Mock reply to: {snippet}" if snippet else "Mock reply."
    pieces = [lead]
    for _ in range(rng.randint(1, 3)):
        pieces += _sentence(rng, rng.randint(6, 14))
    return SplitText(pieces)


def cut_words(text: str, budget: int) -> str:
    """``Cut`` that counts a word as a token (for callers without a tokenizer)."""
    return " ".join(text.split(" ")[:budget])


# --- the parts of a reply ------------------------------------------------------------------


def _inputs(
    calls: list[Json],
    tools: list[Json],
    forced: bool,
    rng: random.Random,
    prompt: str,
    load: list[str] | None = None,
) -> list[tuple[Json, Json]]:
    """``(tool, input)`` for each call; a schema no value satisfies is a 400 when the call was
    forced, and drops that call otherwise.  ``load``: the call is the tool search, loading
    these tools."""
    out = []
    for tool in calls:
        schema = tool.get("input_schema") or {"type": "object"}
        try:
            value = instance(schema, rng, prompt)
            if load:
                value = tool_search.search_input(value, load)
        except Unsatisfiable as exc:
            i = tools.index(tool)
            where = f"tools.{i}.custom.input_schema"
            if forced:
                raise ApiError.invalid(
                    f"{where}{exc.path.removeprefix('$')}: no input for tool "
                    f"{tool.get('name')!r} satisfies the schema: {exc.reason}"
                ) from None
            log.warning("not calling tool %r: %s: %s", tool.get("name"), exc.path, exc.reason)
            continue
        if not isinstance(value, dict):  # (the checks insist on type: object)
            continue
        out.append((tool, value))
    return out


def _choose(
    choice: Mapping[str, Any],
    tools: list[Json],
    messages: list[Any],
    prompt: str,
    only_results: bool,
) -> tuple[list[Json], list[str] | None]:
    """The tools to call, and (when the call is a tool search) the tools it loads."""
    if choice.get("type", "auto") == "auto":
        loaded = tool_search.loaded_now(messages, tools)
        if loaded:  # a tool search just answered: call what it loaded
            return loaded, None
        search = tool_search.search_tool(tools)
        if search is not None and (names := tool_search.to_load(prompt, tools, messages)):
            return [search], names
    return tools_to_call(choice, tools, prompt, only_results), None


def _structured_text(schema: Any, rng: random.Random, prompt: str) -> str:
    try:
        value = instance(schema, rng, prompt)
    except Unsatisfiable as exc:
        raise ApiError.invalid(
            f"output_config.format.json_schema.schema{exc.path.removeprefix('$')}: no value "
            f"satisfies the schema: {exc.reason}"
        ) from None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def stop_at(text: str, stops: list[str]) -> tuple[str, str | None]:
    """``text`` up to the earliest stop sequence in it, and that sequence (None: none found)."""
    found = [(i, s) for s in stops if (i := text.find(s)) >= 0]
    if not found:
        return text, None
    at, seq = min(found, key=lambda pair: (pair[0], -len(pair[1])))
    return text[:at], seq


def compose_message(
    body: Json,
    *,
    model: str,
    max_tokens: int,
    seed: int,
    count_output: Callable[[list[Json]], int],
    cut: Cut = cut_words,
    output_schema: Any = None,
    message_id_prefix: str = p.MESSAGE_ID_PREFIX,
    tool_use_id_prefix: str = p.TOOL_USE_ID_PREFIX,
) -> Json:
    """The message a request gets: content, stop reason, ids and ``output_tokens``.

    ``usage`` carries only ``output_tokens`` here; the caller fills in the input side."""
    rng = random.Random(request_digest(body, seed))
    messages = body.get("messages") or []
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t]
    given = body.get("tool_choice")
    choice: Mapping[str, Any] = given if isinstance(given, dict) else {}
    forced = choice.get("type") in FORCED and bool(tools)
    prompt, only_results = last_user_text(messages)
    msg_id = make_id(message_id_prefix, rng)
    chosen, load = _choose(choice, tools, messages, prompt, only_results)
    if load is None and chosen and not forced and tool_search.loaded_now(messages, tools):
        prompt, _ = last_user_text(tool_search.asking_turn(messages))  # the user's own words
    calls = _inputs(chosen, tools, forced, rng, prompt, load)

    text: str | None
    if calls:  # forced: the call comes first, nothing before it
        names = ", ".join(str(tool["name"]) for tool, _ in calls)
        text = None if forced or output_schema is not None else f"I'll call {names}."
    elif output_schema is not None:
        text = _structured_text(output_schema, rng, prompt)
    else:
        text = compose_text(rng, prompt, only_results)
    content: list[Json] = [] if text is None else [{"type": p.BLOCK_TEXT, "text": text}]
    for tool, value in calls:
        content.append(
            {
                "type": p.BLOCK_TOOL_USE,
                "id": make_id(tool_use_id_prefix, rng),
                "name": tool["name"],
                "input": value,
            }
        )
    default = p.STOP_TOOL_USE if calls else p.STOP_END_TURN
    content, stop_reason, stop_sequence, output_tokens = limit(
        content, default, body, max_tokens, count_output, cut
    )
    for block in content:  # counted: plain text from here on (a SplitText is only for that)
        if isinstance(block.get("text"), SplitText):
            block["text"] = str(block["text"])
    return message_of(msg_id, model, content, stop_reason, stop_sequence, output_tokens)


def limit(
    content: list[Json],
    stop_reason: str,
    body: Json,
    max_tokens: int,
    count_output: Callable[[list[Json]], int],
    cut: Cut,
) -> tuple[list[Json], str, str | None, int]:
    """``content`` as the endpoint would end it: at the first text holding one of the request's
    ``stop_sequences`` (nothing after it), then within ``max_tokens`` (cut at a token
    boundary); with the stop reason, the sequence met and the output tokens."""
    stops = [s for s in body.get("stop_sequences") or [] if isinstance(s, str) and s]
    stop_sequence: str | None = None
    for i, block in enumerate(content):
        if stops and block.get("type") == p.BLOCK_TEXT:
            text, stop_sequence = stop_at(str(block.get("text", "")), stops)
            if stop_sequence is not None:  # generation ends at the sequence
                content = [*content[:i], {**block, "text": text}]
                stop_reason = p.STOP_SEQUENCE
                break
    output_tokens = count_output(content)
    if output_tokens > max_tokens:
        content = _truncate(content, max_tokens, count_output, cut)
        stop_reason, stop_sequence, output_tokens = p.STOP_MAX_TOKENS, None, max_tokens
    return content, stop_reason, stop_sequence, output_tokens


def message_of(
    msg_id: str,
    model: str,
    content: list[Json],
    stop_reason: str,
    stop_sequence: str | None,
    output_tokens: int,
) -> Json:
    """A message as the endpoint sends it (``usage`` with ``output_tokens`` only: the caller
    fills in the input side)."""
    return {
        "id": msg_id,
        "type": "message",
        "role": p.ROLE_ASSISTANT,
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "stop_details": None,
        "usage": {"output_tokens": max(output_tokens, 1)},
    }


def _truncate(
    content: list[Json], budget: int, count_output: Callable[[list[Json]], int], cut: Cut
) -> list[Json]:
    """The blocks that fit in ``budget`` tokens: a text block cut at a token boundary, a tool
    call whole or not at all (its input would not parse)."""
    kept: list[Json] = []
    for block in content:
        if count_output([*kept, block]) <= budget:
            kept.append(block)
            continue
        if block["type"] == p.BLOCK_TEXT:
            left = budget - (count_output(kept) if kept else 0)
            if left > 0:
                kept.append({"type": p.BLOCK_TEXT, "text": cut(block["text"], left)})
        break
    return kept
