"""Would a faster JSON library pay for itself?  The JSON work of one request, timed with the
standard library and, where installed, orjson and msgspec (neither is a dependency: this
step is how we decide).  Also lists where their output or acceptance differs from the
standard library's on values the wire can carry: a difference there is a fidelity change.

``python -m bench --only json``; without orjson/msgspec the rows say "not installed".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .fixtures import message, request_body

#: a request like Claude Code's: a long system prompt, tools, a few turns
BIG_REQUEST: dict[str, Any] = {
    **request_body("json", 1),
    "system": [{"type": "text", "text": "You are a careful assistant. " * 200}],
    "tools": [
        {
            "name": f"tool_{i}",
            "description": "Does one thing well. " * 10,
            "input_schema": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["path"],
            },
        }
        for i in range(20)
    ],
    "messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}: " + "words " * 80}
        for i in range(12)
    ],
}

#: values the standard library reads and writes one way and a faster library may not
EDGE_TEXTS = {
    "integer beyond 64 bits": b'{"max_tokens": 123456789012345678901234567890}',
    "NaN": b'{"temperature": NaN}',
    "float 1e16": b'{"temperature": 1e16}',
    "lone surrogate escape": b'{"content": "\\ud800"}',
    "duplicate keys": b'{"a": 1, "a": 2}',
}


def _time(fn: Callable[[], object], n: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def _libs() -> dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes], Any]]:
    """name -> (decode, compact encode, sorted-keys encode or None)."""
    compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    keyed = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    out: dict[str, Any] = {
        "json (stdlib)": (
            json.loads,
            lambda v: compact.encode(v).encode(),
            lambda v: keyed.encode(v).encode(),
        )
    }
    try:
        import orjson

        out["orjson"] = (
            orjson.loads,
            orjson.dumps,
            lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS),
        )
    except ImportError:
        out["orjson"] = None
    try:
        import msgspec

        enc = msgspec.json.Encoder()
        keyed_enc = msgspec.json.Encoder(order="sorted")
        out["msgspec"] = (msgspec.json.decode, enc.encode, keyed_enc.encode)
    except ImportError:
        out["msgspec"] = None
    return out


def measure(quick: bool) -> list[dict[str, Any]]:
    n = 2_000 if quick else 20_000
    small = json.dumps(request_body("json", 7)).encode()
    big = json.dumps(BIG_REQUEST).encode()
    reply = message("json", 7)
    rows = []
    for name, lib in _libs().items():
        if lib is None:
            rows.append({"library": name, "installed": False})
            continue
        decode, encode, keyed = lib
        row: dict[str, Any] = {
            "library": name,
            "installed": True,
            "decode_small_us": round(_time(lambda d=decode: d(small), n), 2),
            "decode_big_us": round(_time(lambda d=decode: d(big), n // 10), 2),
            "encode_reply_us": round(_time(lambda e=encode: e(reply), n), 2),
            "sorted_key_us": round(_time(lambda k=keyed: k(BIG_REQUEST), n // 10), 2),
            "differs_from_stdlib": _differences(decode, encode) if name != "json (stdlib)" else [],
        }
        rows.append(row)
    return rows


def _differences(decode: Callable[[bytes], Any], encode: Callable[[Any], bytes]) -> list[str]:
    out = []
    for what, text in EDGE_TEXTS.items():
        mine: Any
        try:
            theirs = json.loads(text)
        except ValueError:
            theirs = "rejected"
        try:
            mine = decode(text)
        except Exception:
            mine = "rejected"
        if repr(mine) != repr(theirs):
            out.append(f"reads {what}: {'rejects it' if mine == 'rejected' else repr(mine)}")
        if theirs != "rejected":
            try:
                written = encode(theirs)
            except Exception:
                written = b"<refuses>"
            std = json.dumps(theirs, ensure_ascii=False, separators=(",", ":"))
            if written != std.encode("utf-8", "surrogatepass"):
                out.append(f"writes {what} as {written[:60]!r}")
    return out
