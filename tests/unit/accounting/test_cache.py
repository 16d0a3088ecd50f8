"""Prompt-cache simulation: automatic-prefix, breakpoints and none policies."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from mockserver.accounting.cache import (
    MARK_REQUEST,
    PromptCache,
    count_markers,
    layout,
    max_breakpoints_message,
)
from mockserver.accounting.tokens import TokenCounter, get_tokenizer
from mockserver.profile import CachePolicy, Overheads
from mockserver.wire import protocol as p
from mockserver.wire.errors import ApiError

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "fox", "golf", "hotel", "india", "kilo")
PREFIX = CachePolicy(policy="automatic-prefix", unit_tokens=64)
MODEL = "deepseek-v3-anthropic"
#: the overhead placeholder ids start here (above the tokenizer's vocabulary)
PLACEHOLDERS = MARK_REQUEST & ~0xFF


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randint(0, 99)) for _ in range(n))


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    get_tokenizer()
    return TokenCounter(Overheads())


def usage_sum(u: dict[str, Any]) -> int:
    return int(u[p.USAGE_INPUT] + u[p.USAGE_CACHE_READ] + u[p.USAGE_CACHE_CREATION])


def run(cache: PromptCache, body: dict[str, Any], model: str = MODEL) -> dict[str, Any]:
    """One completed request: lookup, then commit (as SynthSource does)."""
    found = cache.lookup(body, model)
    found.commit()
    return found.usage()


TOOL = {
    "name": "get_weather",
    "description": "Get the weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def rich_body(rng: random.Random) -> dict[str, Any]:
    """A body with every kind of block the renderer knows."""
    return {
        "tools": [TOOL, {"type": "bash_20250124", "name": "bash"}],
        "system": [{"type": "text", "text": text(rng, 30)}, {"type": "text", "text": ""}],
        "messages": [
            {"role": "user", "content": text(rng, 12)},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": text(rng, 5), "signature": "s"},
                    {"type": "text", "text": text(rng, 8)},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "rain"}, {"type": "image"}],
                    },
                    {"type": "image", "source": {}},
                    {"type": "text", "text": text(rng, 4)},
                ],
            },
        ],
    }


# --- the prompt as the cache sees it ------------------------------------------------------------


@pytest.mark.parametrize(
    "overheads",
    [
        Overheads(),
        Overheads(0, 0, 0, 0),
        Overheads(per_request=7, per_message=1, per_tool=0, per_system=5),
    ],
)
def test_layout_total_is_the_count_tokens_figure(overheads: Overheads) -> None:
    counter = TokenCounter(overheads)
    rng = random.Random(1)
    bodies = [
        rich_body(rng),
        {"messages": [{"role": "user", "content": "hi"}]},
        {"system": "", "messages": [{"role": "user", "content": "hi"}]},
        {"system": [], "messages": [{"role": "user", "content": []}]},
        {"system": "be brief", "tools": [], "messages": [{"role": "user", "content": "x " * 300}]},
    ]
    for body in bodies:
        lay = layout(body, counter)
        assert lay.total == counter.request(body)
        assert [i for i in lay.ids if i < PLACEHOLDERS] == list(counter.prompt_ids(body))
        assert lay.ends == sorted(lay.ends)
        assert not lay.ends or lay.ends[-1] == lay.total - overheads.per_request
        assert (
            list(lay.ids[lay.total - overheads.per_request :])
            == [MARK_REQUEST] * overheads.per_request
        )


def test_layout_places_breakpoints_after_their_blocks(counter: TokenCounter) -> None:
    body = {
        "tools": [dict(TOOL, cache_control={"type": "ephemeral"})],
        "system": [
            {"type": "text", "text": "sys", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}],
        "cache_control": {"type": "ephemeral"},
    }
    lay = layout(body, counter)
    assert [(bp.block, bp.ttl, bp.loc) for bp in lay.breakpoints] == [
        (0, "5m", "tools.0"),
        (1, "1h", "system.0"),
        (2, "5m", "cache_control"),
    ]
    assert count_markers(body) == 3


# --- automatic-prefix (the default profile) -----------------------------------------------------


def test_first_request_reads_nothing_and_a_repeat_reads_whole_units(counter: TokenCounter) -> None:
    cache = PromptCache(PREFIX, counter)
    body = {"system": text(random.Random(2), 120), "messages": [{"role": "user", "content": "hi"}]}
    total = counter.request(body)
    first = run(cache, body)
    assert first == {
        p.USAGE_INPUT: total,
        p.USAGE_CACHE_CREATION: 0,
        p.USAGE_CACHE_READ: 0,
    }
    second = run(cache, body)
    assert second[p.USAGE_CACHE_READ] == total // 64 * 64 > 0
    assert second[p.USAGE_INPUT] == total % 64
    assert second[p.USAGE_CACHE_CREATION] == 0
    assert p.USAGE_CACHE_BREAKDOWN not in second


def test_multi_turn_reads_grow_with_the_shared_prefix(counter: TokenCounter) -> None:
    rng = random.Random(3)
    cache = PromptCache(PREFIX, counter)
    body: dict[str, Any] = {"tools": [TOOL], "system": text(rng, 60), "messages": []}
    reads, totals = [], []
    for turn in range(6):
        body["messages"].append({"role": "user", "content": text(rng, 20 + turn)})
        u = run(cache, body)
        reads.append(u[p.USAGE_CACHE_READ])
        totals.append(counter.request(body))
        assert usage_sum(u) == totals[-1]
        body["messages"].append({"role": "assistant", "content": text(rng, 30)})
    assert reads[0] == 0
    for turn in range(1, 6):
        # the previous prompt up to its generation prompt (the per-request overhead, last) is
        # a prefix of this one: read it in whole 64-token units
        shared = totals[turn - 1] - counter.overheads.per_request
        assert reads[turn] == shared // 64 * 64
        assert reads[turn] > reads[turn - 1]
        assert reads[turn] % 64 == 0


def test_only_completed_requests_count(counter: TokenCounter) -> None:
    cache = PromptCache(PREFIX, counter)
    body = {"messages": [{"role": "user", "content": text(random.Random(4), 200)}]}
    a, b = cache.lookup(body, MODEL), cache.lookup(body, MODEL)  # in flight together
    assert a.read == b.read == 0
    a.commit()
    assert cache.lookup(body, MODEL).read > 0
    a.commit()  # committing twice changes nothing
    assert len(cache) == counter.request(body) // 64


def test_prefix_cache_is_per_model_and_stops_at_the_first_change(counter: TokenCounter) -> None:
    rng = random.Random(5)
    cache = PromptCache(PREFIX, counter)
    tools = [dict(TOOL, description=text(rng, 80))]
    body = {
        "tools": tools,
        "system": text(rng, 100),
        "messages": [{"role": "user", "content": "q"}],
    }
    run(cache, body)
    assert cache.lookup(body, "other-model").read == 0
    changed = dict(body, system="a different system prompt " + text(rng, 100))
    tools_tokens = layout({"tools": tools}, TokenCounter(counter.overheads)).total
    read = cache.lookup(changed, MODEL).read
    assert 0 < read <= tools_tokens + counter.overheads.per_system  # only the tools are shared


def test_cache_control_is_ignored_by_automatic_prefix(counter: TokenCounter) -> None:
    cache = PromptCache(PREFIX, counter)
    marked = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": f"part {i}",
                        "cache_control": {"type": "ephemeral", "ttl": "9y"},
                    }
                    for i in range(8)
                ],
            }
        ],
        "cache_control": {"type": "ephemeral"},
    }
    u = run(cache, marked)  # 9 markers and a bad ttl: accepted silently
    assert u[p.USAGE_INPUT] == counter.request(marked)


def test_none_policy_never_reads(counter: TokenCounter) -> None:
    cache = PromptCache(CachePolicy(policy="none"), counter)
    body = {"messages": [{"role": "user", "content": text(random.Random(6), 300)}]}
    for _ in range(3):
        assert run(cache, body) == {
            p.USAGE_INPUT: counter.request(body),
            p.USAGE_CACHE_CREATION: 0,
            p.USAGE_CACHE_READ: 0,
        }
    assert len(cache) == 0


def test_reset_forgets_everything(counter: TokenCounter) -> None:
    cache = PromptCache(PREFIX, counter)
    body = {"messages": [{"role": "user", "content": text(random.Random(7), 300)}]}
    run(cache, body)
    assert cache.lookup(body, MODEL).read > 0
    assert cache.reset() == counter.request(body) // 64
    assert cache.lookup(body, MODEL).read == 0
    assert cache.reset() == 0


def test_prefix_ttl_uses_the_injected_clock(counter: TokenCounter) -> None:
    clock = Clock()
    cache = PromptCache(CachePolicy(ttl_seconds=10), counter, clock=clock)
    body = {"messages": [{"role": "user", "content": text(random.Random(8), 300)}]}
    run(cache, body)
    clock.now += 9
    assert run(cache, body)[p.USAGE_CACHE_READ] > 0  # a hit refreshes the entries
    clock.now += 9
    assert cache.lookup(body, MODEL).read > 0
    clock.now += 10.5
    assert cache.lookup(body, MODEL).read == 0


def test_without_ttl_nothing_expires(counter: TokenCounter) -> None:
    clock = Clock()
    cache = PromptCache(PREFIX, counter, clock=clock)
    body = {"messages": [{"role": "user", "content": text(random.Random(9), 300)}]}
    run(cache, body)
    clock.now += 10**9
    assert cache.lookup(body, MODEL).read > 0


def test_store_is_bounded(counter: TokenCounter) -> None:
    cache = PromptCache(PREFIX, counter, max_entries=10)
    rng = random.Random(10)
    for _ in range(5):
        run(cache, {"messages": [{"role": "user", "content": text(rng, 400)}]})
    assert len(cache) == 10


# --- breakpoints (Anthropic's rules) ------------------------------------------------------------


def bp_cache(
    counter: TokenCounter,
    min_tokens: int = 256,
    ttl: float | None = None,
    clock: Clock | None = None,
) -> PromptCache:
    policy = CachePolicy(policy="breakpoints", min_cacheable_tokens=min_tokens, ttl_seconds=ttl)
    return PromptCache(policy, counter, clock=clock or Clock())


def system_body(
    rng: random.Random, question: str, ttl: str | None = None, words: int = 400
) -> dict[str, Any]:
    cc: dict[str, Any] = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    return {
        "system": [{"type": "text", "text": text(rng, words), "cache_control": cc}],
        "messages": [{"role": "user", "content": question}],
    }


def test_breakpoint_write_then_read(counter: TokenCounter) -> None:
    cache = bp_cache(counter)
    body = system_body(random.Random(11), "What is in the book?")
    lay = layout(body, counter)
    prefix = lay.ends[0]  # up to and including the marked system block
    first = run(cache, body)
    assert first == {
        p.USAGE_INPUT: lay.total - prefix,
        p.USAGE_CACHE_CREATION: prefix,
        p.USAGE_CACHE_READ: 0,
        p.USAGE_CACHE_BREAKDOWN: {p.USAGE_EPHEMERAL_5M: prefix, p.USAGE_EPHEMERAL_1H: 0},
    }
    second = run(cache, body)
    assert second == {
        p.USAGE_INPUT: lay.total - prefix,
        p.USAGE_CACHE_CREATION: 0,
        p.USAGE_CACHE_READ: prefix,
        p.USAGE_CACHE_BREAKDOWN: {p.USAGE_EPHEMERAL_5M: 0, p.USAGE_EPHEMERAL_1H: 0},
    }
    other_question = dict(body, messages=[{"role": "user", "content": "Who wrote it?"}])
    assert run(cache, other_question)[p.USAGE_CACHE_READ] == prefix


def test_no_breakpoint_no_caching(counter: TokenCounter) -> None:
    cache = bp_cache(counter)
    body = {"system": text(random.Random(12), 500), "messages": [{"role": "user", "content": "q"}]}
    for _ in range(2):
        u = run(cache, body)
        assert u[p.USAGE_INPUT] == counter.request(body)
        assert u[p.USAGE_CACHE_READ] == u[p.USAGE_CACHE_CREATION] == 0


def test_prefix_below_the_minimum_is_not_cached(counter: TokenCounter) -> None:
    body = system_body(random.Random(13), "q", words=40)
    prefix = layout(body, counter).ends[0]
    cache = bp_cache(counter, min_tokens=prefix + 1)
    for _ in range(2):
        u = run(cache, body)
        assert u[p.USAGE_CACHE_CREATION] == u[p.USAGE_CACHE_READ] == 0
        assert u[p.USAGE_INPUT] == counter.request(body)
    exact = bp_cache(counter, min_tokens=prefix)
    assert run(exact, body)[p.USAGE_CACHE_CREATION] == prefix


def test_one_hour_ttl_and_mixed_breakdown(counter: TokenCounter) -> None:
    rng = random.Random(14)
    body = system_body(rng, "", ttl="1h")
    body["messages"] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text(rng, 300), "cache_control": {"type": "ephemeral"}}
            ],
        }
    ]
    lay = layout(body, counter)
    sys_end, msg_end = lay.ends[0], lay.ends[1]
    u = run(bp_cache(counter), body)
    assert u[p.USAGE_CACHE_BREAKDOWN] == {
        p.USAGE_EPHEMERAL_5M: msg_end - sys_end,
        p.USAGE_EPHEMERAL_1H: sys_end,
    }
    assert u[p.USAGE_CACHE_CREATION] == msg_end
    assert u[p.USAGE_INPUT] == lay.total - msg_end


def test_conversation_with_a_moving_breakpoint_reads_through_lookback(
    counter: TokenCounter,
) -> None:
    rng = random.Random(15)
    cache = bp_cache(counter)
    history: list[dict[str, Any]] = []
    system = [{"type": "text", "text": text(rng, 300), "cache_control": {"type": "ephemeral"}}]
    previous_end = 0
    for turn in range(4):
        history.append({"role": "user", "content": [{"type": "text", "text": text(rng, 40)}]})
        marked = [dict(m) for m in history]
        last = dict(marked[-1]["content"][0], cache_control={"type": "ephemeral"})
        marked[-1] = dict(marked[-1], content=[last])
        body = {"system": system, "messages": marked}
        lay = layout(body, counter)
        u = run(cache, body)
        assert usage_sum(u) == counter.request(body)
        end = lay.ends[-1]  # the marked last block
        assert u[p.USAGE_INPUT] == lay.total - end == counter.overheads.per_request
        if turn == 0:
            assert u[p.USAGE_CACHE_READ] == 0
            assert u[p.USAGE_CACHE_CREATION] == end
        else:  # last turn's breakpoint is a few blocks back: read it, write the increment
            assert u[p.USAGE_CACHE_READ] == previous_end
            assert u[p.USAGE_CACHE_CREATION] == end - previous_end
        previous_end = end
        history.append({"role": "assistant", "content": [{"type": "text", "text": text(rng, 10)}]})


@pytest.mark.parametrize(("added", "hit"), [(10, True), (25, False)])
def test_lookback_reaches_twenty_blocks(counter: TokenCounter, added: int, hit: bool) -> None:
    rng = random.Random(16)
    cache = bp_cache(counter)
    head = {
        "role": "user",
        "content": [
            {"type": "text", "text": text(rng, 300), "cache_control": {"type": "ephemeral"}}
        ],
    }
    run(cache, {"messages": [head]})
    cached = layout({"messages": [head]}, counter).ends[-1]
    plain_head = {"role": "user", "content": [{"type": "text", "text": head["content"][0]["text"]}]}
    tail = [{"type": "text", "text": f"note {i}"} for i in range(added)]
    tail[-1]["cache_control"] = {"type": "ephemeral"}
    body = {
        "messages": [
            plain_head,
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": tail},
        ]
    }
    u = cache.lookup(body, MODEL).usage()
    assert u[p.USAGE_CACHE_READ] == (cached if hit else 0)


def test_more_than_four_breakpoints_is_a_400(counter: TokenCounter) -> None:
    cache = bp_cache(counter)
    cc = {"type": "ephemeral"}
    body = {
        "tools": [dict(TOOL, cache_control=cc)],
        "system": [{"type": "text", "text": "s", "cache_control": cc}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a", "cache_control": cc},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": "r", "cache_control": cc}],
                    },
                ],
            }
        ],
    }
    run(cache, body)  # four: fine
    body["cache_control"] = cc
    with pytest.raises(ApiError) as err:
        cache.lookup(body, MODEL)
    assert err.value.status == 400
    assert err.value.error_type == p.INVALID_REQUEST
    assert err.value.message == "A maximum of 4 blocks with cache_control may be provided. Found 5."
    assert max_breakpoints_message(7).endswith("Found 7.")


def test_bad_ttl_is_a_400_under_breakpoints(counter: TokenCounter) -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "a",
                        "cache_control": {"type": "ephemeral", "ttl": "2h"},
                    }
                ],
            }
        ]
    }
    with pytest.raises(ApiError) as err:
        bp_cache(counter).lookup(body, MODEL)
    assert err.value.status == 400
    assert "messages.0.content.0.cache_control.ttl" in err.value.message


def test_breakpoint_ttls_with_an_injected_clock(counter: TokenCounter) -> None:
    clock = Clock()
    cache = bp_cache(counter, ttl=300, clock=clock)  # ttl_seconds 300: Anthropic's real TTLs
    short = system_body(random.Random(17), "q")
    long = system_body(random.Random(18), "q", ttl="1h")
    run(cache, short)
    run(cache, long)
    clock.now += 299
    assert run(cache, short)[p.USAGE_CACHE_READ] > 0  # refreshed on the hit
    clock.now += 299
    assert cache.lookup(short, MODEL).read > 0  # lookups alone refresh nothing
    clock.now += 2
    assert cache.lookup(short, MODEL).read == 0  # 5 minutes after the last hit
    assert cache.lookup(long, MODEL).read > 0  # the 1h entry is still there after 600 s
    clock.now += 3600 - 600 - 1
    assert cache.lookup(long, MODEL).read > 0
    clock.now += 2
    assert cache.lookup(long, MODEL).read == 0


# --- invariants ---------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["automatic-prefix", "breakpoints", "none"])
def test_usage_always_adds_up_to_count_tokens(counter: TokenCounter, policy: str) -> None:
    rng = random.Random(policy)
    cache = PromptCache(CachePolicy(policy=policy, min_cacheable_tokens=64), counter)
    messages: list[dict[str, Any]] = []
    for _ in range(30):
        if rng.random() < 0.2:
            messages = []  # a new conversation
        content: list[dict[str, Any]] = [{"type": "text", "text": text(rng, rng.randint(1, 80))}]
        if rng.random() < 0.5:
            content[0]["cache_control"] = {"type": "ephemeral", "ttl": rng.choice(["5m", "1h"])}
        messages.append({"role": "user", "content": content})
        body = {"system": rng.choice(["", "sys " * 50]), "messages": messages[-8:]}
        if count_markers(body) > 4:
            body["messages"] = body["messages"][-3:]
        u = run(cache, body)
        assert usage_sum(u) == counter.request(body)
        assert min(u[p.USAGE_INPUT], u[p.USAGE_CACHE_READ], u[p.USAGE_CACHE_CREATION]) >= 0
        if p.USAGE_CACHE_BREAKDOWN in u:
            parts = u[p.USAGE_CACHE_BREAKDOWN]
            assert (
                parts[p.USAGE_EPHEMERAL_5M] + parts[p.USAGE_EPHEMERAL_1H]
                == u[p.USAGE_CACHE_CREATION]
            )
        messages.append({"role": "assistant", "content": text(rng, 10)})


def test_concurrent_use_is_safe(counter: TokenCounter) -> None:
    cache = PromptCache(PREFIX, counter)
    bodies = [
        {"messages": [{"role": "user", "content": text(random.Random(100 + i), 150)}]}
        for i in range(8)
    ]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for j in range(40):
                run(cache, bodies[(k + j) % len(bodies)])
                if j % 17 == 0:
                    cache.reset()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for body in bodies:
        run(cache, body)
        total = counter.request(body)
        assert cache.lookup(body, MODEL).read == total // 64 * 64
