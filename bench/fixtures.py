"""Benchmark data: cassette libraries written with the cassette API, and request sets.

Every interaction is distinct (its prompt carries its number), so a workload cycling
through them exercises the matcher on every request.  JSON replies are ~400 bytes; stream
replies are 9 events (message_start, content_block_start, ping, three text deltas,
content_block_stop, message_delta, message_stop), the same shape the stream ceiling writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mockserver.cassettes.cassette import (
    Cassette,
    Interaction,
    RecordedRequest,
    RecordedResponse,
)
from mockserver.cassettes.store import save
from mockserver.profile import load_profile
from mockserver.wire import protocol as p, sse
from mockserver.wire.streaming import UnfoldPlan, unfold

MODEL = load_profile().models[0].id
API_KEY = "sk-bench-0000"
VERSION = "2023-06-01"
#: request headers every load generator sends
HEADERS = {
    p.H_CONTENT_TYPE: p.CT_JSON,
    p.H_API_KEY: API_KEY,
    p.H_VERSION: VERSION,
}
#: offsets of the 9 events of a paced stream (recorded timing), shaped like a short real
#: reply: ~0.9 s to the first event, three text deltas ~0.6 s apart, done after ~2.8 s
PACED_AT_MS = (900.0, 905.0, 906.0, 1400.0, 2000.0, 2600.0, 2700.0, 2800.0, 2805.0)
#: JSON interactions per cassette file (a library is split into files of this size)
PER_FILE = 250


def prompt(kind: str, i: int) -> str:
    return f"Benchmark {kind} question number {i}: what is {i} plus {i}?"


def request_body(kind: str, i: int, *, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": prompt(kind, i)}],
    }
    if stream:
        body["stream"] = True
    return body


def message(kind: str, i: int) -> dict[str, Any]:
    """A ~400-byte assistant message whose text unfolds into exactly three deltas."""
    text = f"The answer to #{i:06d} is {2 * i:08d}."[:36].ljust(36, ".")
    return {
        "id": f"msg_bench{kind[:1]}{i:020d}",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 24,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 18,
            "service_tier": "standard",
        },
    }


def stream_events(msg: dict[str, Any]) -> tuple[sse.Event, ...]:
    return tuple(
        sse.Event(name, sse.dumps(data)) for name, data in unfold(msg, UnfoldPlan(text_chunk=12))
    )


def interaction(kind: str, i: int, *, stream: bool, at_ms: tuple[float, ...] | None) -> Interaction:
    msg = message(kind, i)
    headers = {p.H_VERSION: VERSION, p.H_CONTENT_TYPE: p.CT_JSON}
    req = RecordedRequest("POST", p.PATH_MESSAGES, headers, request_body(kind, i, stream=stream))
    rid = {p.H_REQUEST_ID: f"req_bench{kind[:1]}{i:016d}"}
    if stream:
        events = stream_events(msg)
        resp = RecordedResponse(
            200, {p.H_CONTENT_TYPE: p.CT_SSE, **rid}, events=events, at_ms=at_ms or None
        )
    else:
        resp = RecordedResponse(
            200, {p.H_CONTENT_TYPE: p.CT_JSON, **rid}, body=sse.dumps(msg).encode()
        )
    return Interaction(req, resp, name=f"{kind}-{i}")


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def write_library(
    directory: Path,
    *,
    json_n: int = 0,
    stream_n: int = 0,
    paced_n: int = 0,
    per_file: int = PER_FILE,
) -> Path:
    """Write a cassette library: ``json_n`` JSON replies, ``stream_n`` instant streams and
    ``paced_n`` streams timed by ``PACED_AT_MS``, in files of ``per_file`` interactions."""
    directory.mkdir(parents=True, exist_ok=True)
    at_instant = tuple(0.0 for _ in range(9))
    for kind, n, stream, at in (
        ("json", json_n, False, None),
        ("stream", stream_n, True, at_instant),
        ("paced", paced_n, True, PACED_AT_MS),
    ):
        for part, rng in enumerate(_chunks(n, per_file)):
            c = Cassette(
                interactions=[interaction(kind, i, stream=stream, at_ms=at) for i in rng],
                name=f"{kind}-{part:03d}",
            )
            save(c, directory / f"{kind}-{part:03d}.yaml")
    return directory


def write_requests(path: Path, kind: str, n: int, *, stream: bool) -> Path:
    """One compact JSON request body per line (what the load generators cycle through)."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(request_body(kind, i, stream=stream), separators=(",", ":")))
            f.write("\n")
    return path


def reply_sizes(kind: str = "json") -> tuple[bytes, list[bytes]]:
    """The JSON body and the 9 stream frames of interaction 0 (the ceilings write these)."""
    msg = message(kind, 0)
    return sse.dumps(msg).encode(), [e.wire() for e in stream_events(msg)]
