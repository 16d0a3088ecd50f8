"""Deterministic composer: (request, seed) -> message.

The rules (also in README "Synthesized replies"):

- The reply depends only on the request body and ``--seed``: same input, same bytes.
- Tools are called when ``tool_choice`` is ``any`` or ``tool``, and under ``auto`` (the default
  when tools are offered) when the last user turn names one or more offered tools in its text.
  Every named tool is called, in the order offered, in one reply (parallel calls) unless
  ``disable_parallel_tool_use`` is set; ``any`` with no tool named calls the first tool;
  ``tool`` calls exactly that tool.  A turn that only carries ``tool_result`` blocks gets a
  text answer that ends the loop. Text blocks starting with ``<system-reminder>`` (context
  that Claude Code adds to user turns) are not part of "the last user turn".
- Tool ``input`` is generated from the tool's ``input_schema`` and validates against it.
  A top-level string property named like a path (``path``, ``file``, ``filename``, ``*_path``,
  ``*_file``) gets the first absolute path written in the last user turn, if there is one
  (so "Use Read on /tmp/x/hello.txt" makes a ``Read`` call a real client can execute).
- With ``stop_sequences`` the text stops at the first sequence, which is put half-way into
  the text (``stop_reason: stop_sequence``, the sequence echoed).
- A ``max_tokens`` budget smaller than the reply cuts it (``stop_reason: max_tokens``).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections.abc import Callable
from typing import Any

import jsonschema
from referencing.exceptions import Unresolvable

from ..wire import protocol as p

Json = dict[str, Any]

_WORDS = [
    "the",
    "mock",
    "answers",
    "deterministically",
    "so",
    "tests",
    "can",
    "rely",
    "on",
    "every",
    "byte",
    "of",
    "this",
    "reply",
    "while",
    "your",
    "application",
    "exercises",
    "its",
    "parsing",
    "streaming",
    "tool",
    "loops",
    "and",
    "error",
    "handling",
    "against",
    "a",
    "local",
    "endpoint",
    "that",
    "speaks",
    "the",
    "messages",
    "protocol",
    "with",
    "realistic",
    "usage",
    "numbers",
    "and",
    "ids",
]
_B62 = string.digits + string.ascii_letters


def request_digest(body: Json, seed: int) -> bytes:
    """Stable digest of a request; the ``stream`` flag is left out so that a streamed and a
    non-streamed request get the same message."""
    body = {k: v for k, v in body.items() if k != "stream"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{seed}\x00{canon}".encode()).digest()


def make_id(prefix: str, rng: random.Random, length: int = 24) -> str:
    return prefix + "01" + "".join(rng.choice(_B62) for _ in range(length - 2))


_REMINDER = "<system-reminder>"


def _last_user_text(messages: list[Any]) -> tuple[str, bool]:
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


def _tools_to_call(body: Json, tools: list[Json], text: str, only_results: bool) -> list[Json]:
    if not tools:
        return []
    choice = body.get("tool_choice") or {"type": "auto"}
    ctype = choice.get("type", "auto")
    parallel = not choice.get("disable_parallel_tool_use", False)
    if ctype == "none":
        return []
    if ctype == "tool":
        named = [t for t in tools if t.get("name") == choice.get("name")]
        return named[:1]
    if only_results and ctype == "auto":
        return []
    mentioned = [
        t
        for t in tools
        if re.search(rf"(?<![\w-]){re.escape(str(t.get('name', '')))}(?![\w-])", text)
    ]
    if not mentioned and ctype == "any":
        mentioned = tools[:1]
    return mentioned if parallel else mentioned[:1]


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def compose_text(rng: random.Random, prompt: str, only_results: bool) -> str:
    if only_results:
        lead = "Thanks, I have the tool results."
    else:
        snippet = " ".join(prompt.split()[:8])
        lead = f"Mock reply to: {snippet}" if snippet else "Mock reply."
    body = " ".join(_sentence(rng, rng.randint(6, 14)) for _ in range(rng.randint(1, 3)))
    return f"{lead} {body}"


# --- values from JSON Schema ------------------------------------------------------------


def value_for_schema(schema: Any, rng: random.Random, root: Any = None, depth: int = 0) -> Any:
    """A deterministic value that validates against ``schema`` (the common subset)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 8:
        return "value"
    if "$ref" in schema and isinstance(schema["$ref"], str):
        target = _resolve(schema["$ref"], root)
        return value_for_schema(target, rng, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return value_for_schema(schema[key][0], rng, root, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged: Json = {}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged.update(part)
        return value_for_schema(merged, rng, root, depth + 1)
    stype = schema.get("type")
    if isinstance(stype, list):
        stype = next((t for t in stype if t != "null"), "null")
    if stype is None:
        stype = "object" if "properties" in schema else "string"
    maker = _MAKERS.get(str(stype))
    return maker(schema, rng, root, depth) if maker else None


def _resolve(ref: str, root: Any) -> Any:
    if not ref.startswith("#"):
        return {}
    node = root
    for part in ref.lstrip("#/").split("/"):
        if not part:
            continue
        if not isinstance(node, dict):
            return {}
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
    return node


def _object(schema: Json, rng: random.Random, root: Any, depth: int) -> Json:
    props = schema.get("properties") or {}
    required = [r for r in schema.get("required") or [] if isinstance(r, str)]
    out: Json = {}
    for name, sub in props.items():
        if name in required:
            out[name] = value_for_schema(sub, rng, root, depth + 1)
    for name in required:
        if name not in out:
            out[name] = "value"
    min_props = int(schema.get("minProperties", 0) or 0)
    for name, sub in props.items():
        if len(out) >= min_props:
            break
        out.setdefault(name, value_for_schema(sub, rng, root, depth + 1))
    return out


def _string(schema: Json, rng: random.Random, root: Any, depth: int) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2025-01-01T00:00:00Z"
    if fmt == "date":
        return "2025-01-01"
    if fmt in ("uri", "url"):
        return "https://example.com/"
    if fmt == "email":
        return "user@example.com"
    lo = int(schema.get("minLength", 1) or 0)
    hi = int(schema.get("maxLength", max(lo, 12)) or 0)
    word = rng.choice(_WORDS)
    while len(word) < lo:
        word += "x"
    return word[: max(hi, lo)] if hi >= lo else word


def _number(schema: Json, rng: random.Random, root: Any, depth: int) -> float:
    return float(_integer(schema, rng, root, depth))


def _integer(schema: Json, rng: random.Random, root: Any, depth: int) -> int:
    lo = schema.get("minimum")
    if lo is None and schema.get("exclusiveMinimum") is not None:
        lo = int(schema["exclusiveMinimum"]) + 1
    hi = schema.get("maximum")
    if hi is None and schema.get("exclusiveMaximum") is not None:
        hi = int(schema["exclusiveMaximum"]) - 1
    low = int(lo) if lo is not None else 1
    high = int(hi) if hi is not None else low + 9
    high = min(high, low + 1000) if high >= low else low
    return rng.randint(low, high)


def _array(schema: Json, rng: random.Random, root: Any, depth: int) -> list[Any]:
    n = max(int(schema.get("minItems", 1) or 0), 1 if schema.get("maxItems", 1) else 0)
    items = schema.get("items") or {}
    out = [value_for_schema(items, rng, root, depth + 1) for _ in range(n)]
    if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in out}) < len(out):
        out = out[:1]
    return out


_MAKERS: dict[str, Callable[[Json, random.Random, Any, int], Any]] = {
    "object": _object,
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": lambda s, r, root, d: True,
    "array": _array,
    "null": lambda s, r, root, d: None,
}


_PATH_PROP = re.compile(r"^(?:path|file|filename|\w+_(?:path|file))$", re.IGNORECASE)
_ABS_PATH = re.compile(r"(?<![\w/.~:<])/[^\s\"'`<>()\[\]{},;]+")


def _path_in(prompt: str) -> str | None:
    """The first absolute path written in ``prompt`` (trailing punctuation dropped)."""
    for m in _ABS_PATH.finditer(prompt):
        path = m.group(0).rstrip(".:!?")
        if len(path) > 1:
            return path
    return None


def _with_prompt_path(value: Json, schema: Json, prompt: str) -> Json:
    path = _path_in(prompt)
    props = schema.get("properties")
    if path is None or not isinstance(props, dict):
        return value
    out = dict(value)
    for name, sub in props.items():
        plain = isinstance(sub, dict) and not {"enum", "const", "format", "pattern"} & set(sub)
        if plain and _PATH_PROP.match(name) and sub.get("type") == "string":
            out[name] = path
    return out


def tool_input(tool: Json, rng: random.Random, prompt: str = "") -> Json:
    schema = tool.get("input_schema") or {"type": "object"}
    try:
        value = value_for_schema(schema, rng)
    except (TypeError, ValueError, AttributeError, RecursionError):
        # a malformed schema (e.g. "properties": true): the rules let it through, so the
        # composer must not fail on it (a 500); the tool is called without arguments
        return {}
    if not isinstance(value, dict):
        value = {}
    try:
        jsonschema.validate(value, schema)
    except (jsonschema.ValidationError, jsonschema.SchemaError, Unresolvable):
        return {}  # (Unresolvable: a "$ref" to nowhere)
    filled = _with_prompt_path(value, schema, prompt) if isinstance(schema, dict) else value
    if filled != value and jsonschema.validators.validator_for(schema)(schema).is_valid(filled):
        return filled
    return value


# --- the whole message ------------------------------------------------------------------


def _cut_to_tokens(text: str, budget: int, count: Callable[[str], int]) -> str:
    """Longest word-boundary prefix of ``text`` that fits in ``budget`` tokens."""
    words = text.split(" ")
    lo, hi = 0, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def compose_message(
    body: Json,
    *,
    model: str,
    max_tokens: int,
    seed: int,
    count_text: Callable[[str], int],
    count_output: Callable[[list[Json]], int],
    message_id_prefix: str = p.MESSAGE_ID_PREFIX,
    tool_use_id_prefix: str = p.TOOL_USE_ID_PREFIX,
) -> Json:
    """The message a request gets: content, stop reason, ids and ``output_tokens``.

    ``usage`` carries only ``output_tokens`` here; the caller fills in the input side.
    """
    rng = random.Random(request_digest(body, seed))
    messages = body.get("messages") or []
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t]
    prompt, only_results = _last_user_text(messages)
    calls = _tools_to_call(body, tools, prompt, only_results)
    msg_id = make_id(message_id_prefix, rng)

    text = compose_text(rng, prompt, only_results)
    stop_reason: str = p.STOP_TOOL_USE if calls else p.STOP_END_TURN
    stop_sequence: str | None = None
    stops = [s for s in body.get("stop_sequences") or [] if isinstance(s, str) and s]
    if stops and not calls:
        half = text.rfind(" ", 0, len(text) // 2)
        text = text[: max(half, 1)]
        stop_reason, stop_sequence = p.STOP_SEQUENCE, stops[0]
    if calls:
        text = f"I'll call {', '.join(str(t['name']) for t in calls)}."
    content: list[Json] = [{"type": p.BLOCK_TEXT, "text": text}]
    for tool in calls:
        content.append(
            {
                "type": p.BLOCK_TOOL_USE,
                "id": make_id(tool_use_id_prefix, rng),
                "name": tool["name"],
                "input": tool_input(tool, rng, prompt),
            }
        )
    if count_output(content) > max_tokens:
        content, stop_reason, stop_sequence = _truncate(
            content, max_tokens, count_text, count_output
        )
    return {
        "id": msg_id,
        "type": "message",
        "role": p.ROLE_ASSISTANT,
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "stop_details": None,
        "usage": {"output_tokens": max(count_output(content), 1)},
    }


def _truncate(
    content: list[Json],
    budget: int,
    count_text: Callable[[str], int],
    count_output: Callable[[list[Json]], int],
) -> tuple[list[Json], str, None]:
    kept: list[Json] = []
    for block in content:
        if count_output([*kept, block]) <= budget:
            kept.append(block)
            continue
        if block["type"] == p.BLOCK_TEXT:
            used = count_output(kept) if kept else 0
            cut = _cut_to_tokens(block["text"], max(budget - used, 0), count_text)
            kept.append({"type": p.BLOCK_TEXT, "text": cut})
        break
    return kept, p.STOP_MAX_TOKENS, None
