"""Usage a client can trust, seen through the official SDK: cache reads, counts, output, cost."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import anthropic
import pytest

from mockserver.accounting.tokens import TokenCounter
from mockserver.profile import CachePolicy, Prices, load_profile
from mockserver.server.running import ServerThread
from mockserver.wire import protocol as p

MODEL = "deepseek-v3-anthropic"
SYSTEM = (
    "You are the assistant of a small bookshop. Answer questions about opening hours, "
    "orders, deliveries and returns politely and briefly. "
) * 12
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"],
    },
}
QUESTIONS = [
    "When do you open on Saturdays?",
    "Can I return a book I bought last week without the receipt?",
    "How long does a delivery to Bergen take?",
    "Do you sell gift cards, and can they be used online?",
    "Thanks! One more: can I reserve a book by phone?",
]


def client(server: ServerThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0)


def admin(server: ServerThread, method: str, name: str) -> Any:
    parts = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request(method, f"{p.ADMIN_PREFIX}/{name}", headers={p.H_CONTENT_TYPE: p.CT_JSON})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    assert resp.status == 200, data
    return data


def total(usage: Any) -> int:
    return int(
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )


def test_multi_turn_cache_reads_grow_and_add_up_to_count_tokens(server: ServerThread) -> None:
    c = client(server)
    messages: list[dict[str, Any]] = []
    reads: list[int] = []
    counts: list[int] = []
    for q in QUESTIONS:
        messages.append({"role": "user", "content": q})
        request: dict[str, Any] = {"model": MODEL, "system": SYSTEM, "messages": messages}
        counts.append(c.messages.count_tokens(**request).input_tokens)
        msg = c.messages.create(max_tokens=200, **request)
        assert total(msg.usage) == counts[-1]
        assert msg.usage.cache_creation_input_tokens == 0
        reads.append(msg.usage.cache_read_input_tokens or 0)
        answer = msg.content[0]
        assert answer.type == "text"
        messages.append({"role": "assistant", "content": answer.text})
    assert reads[0] == 0
    for turn in range(1, len(QUESTIONS)):
        assert reads[turn] % 64 == 0
        assert reads[turn] > reads[turn - 1]
        # the previous prompt is shared up to its generation prompt (the per-request overhead):
        # every complete 64-token unit of that is read
        shared = counts[turn - 1] - load_profile().overheads.per_request
        assert reads[turn] == shared // 64 * 64
    usage = admin(server, "GET", "usage")
    assert usage["cache_read_input_tokens"] == sum(reads)
    assert usage["requests"] == len(QUESTIONS)  # count_tokens calls are free and not counted


def test_count_tokens_never_touches_the_cache(server: ServerThread) -> None:
    c = client(server)
    request: dict[str, Any] = {
        "model": MODEL,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "hello"}],
    }
    for _ in range(3):
        n = c.messages.count_tokens(**request).input_tokens
    msg = c.messages.create(max_tokens=50, **request)
    assert msg.usage.cache_read_input_tokens == 0
    assert msg.usage.input_tokens == n


@pytest.mark.parametrize(("tools", "max_tokens"), [(False, 300), (True, 300), (False, 7)])
def test_streamed_output_tokens_equal_the_non_streamed(
    server: ServerThread, tools: bool, max_tokens: int
) -> None:
    c = client(server)
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Tell me about the weather in Oslo and Bergen."}],
    }
    if tools:
        request["tools"] = [WEATHER]
        request["tool_choice"] = {"type": "any"}
    plain = c.messages.create(**request)
    with c.messages.stream(**request) as stream:
        deltas = [e.usage.output_tokens for e in stream if e.type == "message_delta"]
        streamed = stream.get_final_message()
    blocks = [b.model_dump(exclude_none=True) for b in plain.content]
    assert ("tool_use" in [b["type"] for b in blocks]) is tools
    produced = TokenCounter().output(blocks)  # counted on the text and tool input produced
    assert max_tokens >= plain.usage.output_tokens == produced > 1
    assert plain.stop_reason == (
        "max_tokens" if max_tokens < 10 else "tool_use" if tools else "end_turn"
    )
    assert deltas == [produced]
    assert streamed.usage.output_tokens == produced
    assert [b.model_dump(exclude_none=True) for b in streamed.content] == blocks


def test_delete_cache_resets_the_reads(server: ServerThread) -> None:
    c = client(server)
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 50,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "hi"}],
    }
    c.messages.create(**request)
    assert (c.messages.create(**request).usage.cache_read_input_tokens or 0) > 0
    deleted = admin(server, "DELETE", "cache")["deleted"]
    assert deleted > 0
    assert c.messages.create(**request).usage.cache_read_input_tokens == 0
    assert server.state is not None and server.state.reset_cache() > 0  # the same, in Python


def test_cost_header_charges_cache_reads_at_the_read_price(server: ServerThread) -> None:
    c = client(server)
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 50,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "hi"}],
    }
    c.messages.create(**request)
    raw = c.messages.with_raw_response.create(**request)
    u = raw.parse().usage
    assert (u.cache_read_input_tokens or 0) > 0
    prices = load_profile().prices
    expected = (
        u.input_tokens * Decimal(str(prices.input))
        + u.output_tokens * Decimal(str(prices.output))
        + (u.cache_read_input_tokens or 0) * Decimal(str(prices.cache_read))
    ) / 1_000_000
    assert Decimal(raw.headers[p.H_COST]) == expected


# --- an Anthropic-style profile: cache_control breakpoints ---------------------------------------


@pytest.fixture
def anthropic_like(make_server: Callable[..., ServerThread]) -> ServerThread:
    base = load_profile()
    profile = replace(
        base,
        cache=CachePolicy(policy="breakpoints", min_cacheable_tokens=128),
        prices=Prices(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75, cache_write_1h=6.0),
    )
    return make_server(profile=profile)


def test_breakpoints_write_then_read_through_the_sdk(anthropic_like: ServerThread) -> None:
    c = client(anthropic_like)
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    request: dict[str, Any] = {
        "model": MODEL,
        "system": system,
        "messages": [{"role": "user", "content": "When do you open?"}],
    }
    n = c.messages.count_tokens(**request).input_tokens
    raw = c.messages.with_raw_response.create(max_tokens=50, **request)
    first = raw.parse().usage
    written = first.cache_creation_input_tokens or 0
    assert written > 128 and first.cache_read_input_tokens == 0
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_1h_input_tokens == written
    assert first.cache_creation.ephemeral_5m_input_tokens == 0
    assert total(first) == n
    expected = (
        first.input_tokens * Decimal("3")
        + first.output_tokens * Decimal("15")
        + written * Decimal("6")  # 1-hour writes at their own price
    ) / 1_000_000
    assert Decimal(raw.headers[p.H_COST]) == expected
    with c.messages.stream(max_tokens=50, **request) as stream:
        second = stream.get_final_message().usage
    assert second.cache_read_input_tokens == written
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens == first.input_tokens
    assert total(second) == n


def test_five_breakpoints_are_refused(anthropic_like: ServerThread) -> None:
    c = client(anthropic_like)
    cc = {"type": "ephemeral"}
    content = [{"type": "text", "text": f"part {i}", "cache_control": cc} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as err:
        c.messages.create(
            model=MODEL,
            max_tokens=20,
            messages=[{"role": "user", "content": content}],  # type: ignore[misc]
        )
    assert err.value.status_code == 400
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in err.value.message
