"""Folding stream events into a message and unfolding a message into stream events.

Pure functions over plain JSON values (``dict``), the same way the official SDK
accumulates a stream: ``fold(unfold(m)) == m`` for every message ``m`` the protocol allows.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import protocol as p

Json = dict[str, Any]


class FoldError(ValueError):
    """The events cannot be folded (no ``message_start``, or an ``error`` event)."""

    def __init__(self, message: str, error: Json | None = None) -> None:
        super().__init__(message)
        self.error = error


def fold(events: Iterable[tuple[str | None, Json]]) -> Json:
    """Accumulate ``(event name, data)`` pairs into the final message.

    Unknown events and delta types are skipped, as the SDK does; tool input is parsed
    from the concatenated ``input_json_delta`` fragments when they form valid JSON.
    """
    message: Json | None = None
    partial: dict[int, str] = {}
    for name, data in events:
        kind = name if name is not None else data.get("type")
        if kind == p.ERROR:
            raise FoldError("stream carries an error event", data.get("error"))
        if kind == p.MESSAGE_START:
            message = copy.deepcopy(data.get("message", {}))
            message.setdefault("content", [])
            continue
        if message is None:
            if kind in (p.PING, None):
                continue
            raise FoldError(f"{kind} before message_start")
        content: list[Json] = message["content"]
        if kind == p.CONTENT_BLOCK_START:
            block = copy.deepcopy(data.get("content_block", {}))
            content.append(block)
        elif kind == p.CONTENT_BLOCK_DELTA:
            idx = data.get("index", len(content) - 1)
            if not isinstance(idx, int) or not 0 <= idx < len(content):
                continue
            _apply_delta(content[idx], data.get("delta", {}), partial, idx)
        elif kind == p.CONTENT_BLOCK_STOP:
            idx = data.get("index")
            if isinstance(idx, int):
                _finish_input(content, partial, idx)
        elif kind == p.MESSAGE_DELTA:
            for key, value in (data.get("delta") or {}).items():
                message[key] = value
            usage = data.get("usage")
            if isinstance(usage, dict):
                target = message.setdefault("usage", {})
                for key, value in usage.items():
                    if value is not None:
                        target[key] = value
    if message is None:
        raise FoldError("stream has no message_start")
    for idx in list(partial):
        _finish_input(message["content"], partial, idx)
    return message


def _apply_delta(block: Json, delta: Json, partial: dict[int, str], idx: int) -> None:
    dtype = delta.get("type")
    if dtype == p.DELTA_TEXT:
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif dtype == p.DELTA_INPUT_JSON:
        partial[idx] = partial.get(idx, "") + delta.get("partial_json", "")
    elif dtype == p.DELTA_THINKING:
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif dtype == p.DELTA_SIGNATURE:
        block["signature"] = delta.get("signature", "")
    elif dtype == p.DELTA_CITATIONS:
        block.setdefault("citations", []).append(delta.get("citation"))


def _finish_input(content: list[Json], partial: dict[int, str], idx: int) -> None:
    text = partial.pop(idx, None)
    if text is None or not 0 <= idx < len(content) or not text.strip():
        return
    try:
        content[idx]["input"] = json.loads(text)
    except ValueError:
        content[idx]["input"] = {}


@dataclass(frozen=True, slots=True)
class UnfoldPlan:
    """How a message is cut into events (all deterministic)."""

    text_chunk: int = 12
    json_chunk: int = 24
    ping: bool = True
    start_output_tokens: int = 1


def _chunks(text: str, size: int) -> Iterator[str]:
    if size <= 0:
        yield text
        return
    for i in range(0, len(text), size):
        yield text[i : i + size]


def unfold(message: Json, plan: UnfoldPlan | None = None) -> list[tuple[str, Json]]:
    """The event sequence that folds back into ``message``."""
    plan = plan or UnfoldPlan()
    usage = dict(message.get("usage") or {})
    start_usage = dict(usage)
    out_tokens = usage.get("output_tokens", 0)
    start_usage["output_tokens"] = min(plan.start_output_tokens, out_tokens or 0)
    head: Json = {}
    for key, value in message.items():
        if key == "content":
            head[key] = []
        elif key in ("stop_reason", "stop_sequence"):
            head[key] = None
        elif key == "usage":
            head[key] = start_usage
        elif key not in ("stop_details",):
            head[key] = copy.deepcopy(value)
    events: list[tuple[str, Json]] = [(p.MESSAGE_START, {"type": p.MESSAGE_START, "message": head})]
    for idx, block in enumerate(message.get("content") or []):
        events.extend(_unfold_block(idx, block, plan))
        if idx == 0 and plan.ping:
            events.insert(2, (p.PING, {"type": p.PING}))
    if not message.get("content") and plan.ping:
        events.append((p.PING, {"type": p.PING}))
    delta: Json = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    if "stop_details" in message:
        delta["stop_details"] = copy.deepcopy(message["stop_details"])
    message_delta: Json = {"type": p.MESSAGE_DELTA, "delta": delta}
    if "usage" in message:  # a message without usage folds back without usage
        message_delta["usage"] = {"output_tokens": out_tokens}
    events.append((p.MESSAGE_DELTA, message_delta))
    events.append((p.MESSAGE_STOP, {"type": p.MESSAGE_STOP}))
    return events


def _unfold_block(idx: int, block: Json, plan: UnfoldPlan) -> list[tuple[str, Json]]:
    btype = block.get("type")
    start = copy.deepcopy(block)
    deltas: list[Json] = []
    if btype == p.BLOCK_TEXT:
        start["text"] = ""
        citations = start.pop("citations", None)
        deltas = [
            {"type": p.DELTA_TEXT, "text": c}
            for c in _chunks(block.get("text", ""), plan.text_chunk)
        ]
        for cit in citations or []:
            deltas.append({"type": p.DELTA_CITATIONS, "citation": copy.deepcopy(cit)})
        if citations is not None and not citations:
            start["citations"] = []
    elif btype in (p.BLOCK_TOOL_USE, p.BLOCK_SERVER_TOOL_USE):
        start["input"] = {}
        raw = json.dumps(block.get("input", {}), separators=(",", ":"), ensure_ascii=False)
        deltas = [{"type": p.DELTA_INPUT_JSON, "partial_json": ""}]
        if raw != "{}":
            deltas += [
                {"type": p.DELTA_INPUT_JSON, "partial_json": c}
                for c in _chunks(raw, plan.json_chunk)
            ]
    elif btype == p.BLOCK_THINKING:
        start["thinking"] = ""
        start["signature"] = ""
        deltas = [
            {"type": p.DELTA_THINKING, "thinking": c}
            for c in _chunks(block.get("thinking", ""), plan.text_chunk)
        ]
        deltas.append({"type": p.DELTA_SIGNATURE, "signature": block.get("signature", "")})
    events: list[tuple[str, Json]] = [
        (
            p.CONTENT_BLOCK_START,
            {"type": p.CONTENT_BLOCK_START, "index": idx, "content_block": start},
        )
    ]
    events += [
        (p.CONTENT_BLOCK_DELTA, {"type": p.CONTENT_BLOCK_DELTA, "index": idx, "delta": d})
        for d in deltas
    ]
    events.append((p.CONTENT_BLOCK_STOP, {"type": p.CONTENT_BLOCK_STOP, "index": idx}))
    return events
