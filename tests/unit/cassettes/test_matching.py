"""Request matching: canonical form, ignore paths, the hashed index, sequences, near misses."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from mockserver.cassettes.matching import (
    ABSENT,
    STAR,
    Exhausted,
    Hit,
    Index,
    canonical_body,
    drop_path,
    parse_path,
    request_key,
)
from mockserver.cassettes.near_miss import differences, rank_near_misses

BASE: dict[str, Any] = {
    "model": "deepseek-v3-anthropic",
    "max_tokens": 100,
    "system": "Be brief.",
    "tools": [{"name": "t", "input_schema": {"type": "object", "properties": {}}}],
    "messages": [
        {"role": "user", "content": "Hello"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "x", "name": "t", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "ok"}]},
    ],
}


def key(body: Any, ignore: tuple[str, ...] = ()) -> str:
    return request_key("POST", "/v1/messages", body, ignore)


def variant(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "other",
    [
        variant(stream=True),
        variant(stream=False),
        variant(system=[{"type": "text", "text": "Be brief."}]),
        variant(
            system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
        ),
        variant(cache_control={"type": "ephemeral", "ttl": "5m"}),
        variant(max_tokens=100.0),
        dict(reversed(list(BASE.items()))),  # key order
    ],
)
def test_equivalent_forms_match(other: dict[str, Any]) -> None:
    assert key(other) == key(BASE)


def test_content_string_and_single_text_block_match_everywhere() -> None:
    blocks = copy.deepcopy(BASE)
    blocks["messages"][0]["content"] = [
        {"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}
    ]
    blocks["messages"][2]["content"][0]["content"] = [{"type": "text", "text": "ok"}]
    blocks["messages"][2]["content"][0]["cache_control"] = {"type": "ephemeral"}
    blocks["tools"][0]["cache_control"] = {"type": "ephemeral"}
    assert key(blocks) == key(BASE)
    assert canonical_body(BASE)["messages"][0]["content"] == [{"type": "text", "text": "Hello"}]
    assert BASE["messages"][0]["content"] == "Hello", "the input must not be changed"


@pytest.mark.parametrize(
    "other",
    [
        variant(model="other"),
        variant(max_tokens=101),
        variant(system="Be verbose."),
        variant(messages=[{"role": "user", "content": "Hello!"}]),
        variant(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "x"}],
                }
            ]
        ),
        variant(temperature=0.5),
    ],
)
def test_different_requests_do_not_match(other: dict[str, Any]) -> None:
    assert key(other) != key(BASE)


def test_cache_control_inside_a_tool_schema_is_data_not_a_marker() -> None:
    a = variant(
        tools=[
            {
                "name": "t",
                "input_schema": {
                    "type": "object",
                    "properties": {"cache_control": {"type": "string"}},
                },
            }
        ]
    )
    b = variant(tools=[{"name": "t", "input_schema": {"type": "object", "properties": {}}}])
    assert key(a) != key(b)


def test_method_and_path_are_part_of_the_key_the_query_is_not() -> None:
    assert request_key("POST", "/v1/messages", BASE) != request_key(
        "POST", "/v1/messages/count_tokens", BASE
    )
    assert request_key("post", "/v1/messages", BASE) == request_key("POST", "/v1/messages", BASE)


def test_parse_path_forms_and_errors() -> None:
    assert parse_path("$.messages[0].content[*].text") == ("messages", 0, "content", STAR, "text")
    assert parse_path("$['odd key'][\"x\"].a.*") == ("odd key", "x", "a", STAR)
    assert parse_path("$.metadata") == ("metadata",)
    for bad in ("metadata", "$", "$.a[", "$..a", "$.a b"):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_drop_path() -> None:
    body = canonical_body(BASE)
    drop_path(body, parse_path("$.messages[*].content[*].id"))
    assert "id" not in body["messages"][1]["content"][0]
    drop_path(body, parse_path("$.nothing.here[3]"))  # missing: a no-op
    drop_path(body, parse_path("$.messages[0]"))
    assert body["messages"][0] == ABSENT and len(body["messages"]) == 3  # later indexes stable


def test_ignore_paths_from_the_cli_and_from_a_cassette() -> None:
    index = Index(ignore=("$.metadata",))
    index.add("plain", "POST", "/v1/messages", {**BASE, "metadata": {"user_id": "a"}})
    index.add(
        "own",
        "POST",
        "/v1/messages",
        {**BASE, "max_tokens": 5, "temperature": 0.1},
        ["$.temperature"],
    )
    hit = index.lookup("POST", "/v1/messages", {**BASE, "metadata": {"user_id": "b"}})
    assert isinstance(hit, Hit) and hit.ref == "plain"
    hit = index.lookup(
        "POST", "/v1/messages", {**BASE, "max_tokens": 5, "temperature": 0.9, "metadata": 1}
    )
    assert isinstance(hit, Hit) and hit.ref == "own"
    # the cassette's own ignore list does not apply to the other cassette's entries
    assert index.lookup("POST", "/v1/messages", {**BASE, "temperature": 0.3}) is None
    with pytest.raises(ValueError):
        Index(ignore=("nope",))


def test_repeated_requests_walk_the_sequence_then_repeat_the_last() -> None:
    index = Index()
    for ref in ("first", "second", "third"):
        index.add(ref, "POST", "/v1/messages", BASE)
    served = [index.lookup("POST", "/v1/messages", BASE) for _ in range(5)]
    assert [h.ref for h in served if isinstance(h, Hit)] == [
        "first",
        "second",
        "third",
        "third",
        "third",
    ]
    assert [h.repeated for h in served if isinstance(h, Hit)] == [False, False, False, True, True]
    index.reset()
    assert [index.lookup("POST", "/v1/messages", BASE, strict=True) for _ in range(4)][
        3
    ] == Exhausted("third", 3)


def test_scopes_walk_their_own_sequences() -> None:
    index = Index()
    for ref in (("a", 0), ("a", 1), ("b", 0)):
        index.add(ref, "POST", "/v1/messages", BASE)

    def only(name: str) -> Any:
        return lambda ref: ref[0] == name

    def get(scope: str) -> Any:
        hit = index.lookup("POST", "/v1/messages", BASE, scope=scope, accept=only(scope))
        assert isinstance(hit, Hit)
        return hit.ref

    assert [get("a"), get("b"), get("a"), get("b")] == [("a", 0), ("b", 0), ("a", 1), ("b", 0)]


def test_differences_name_the_first_differing_path_with_both_values() -> None:
    recorded = canonical_body(BASE)
    requested = canonical_body(variant(max_tokens=7, messages=[{"role": "user", "content": "Bye"}]))
    diffs = differences(recorded, requested)
    assert diffs[0].path == "$.messages[0].content[0].text"  # messages come before max_tokens
    assert (diffs[0].recorded, diffs[0].requested) == ("Hello", "Bye")
    assert any(
        d.path == "$.messages[1]" and d.describe().endswith("requested <absent>") for d in diffs
    )
    assert diffs[-1].path == "$.max_tokens"
    assert differences(recorded, canonical_body(BASE)) == []
    assert differences({"a": 1}, {"a": True}) != []  # 1 and true differ


def test_near_misses_are_ranked_by_closeness() -> None:
    want = canonical_body(variant(max_tokens=7))
    far = canonical_body(variant(model="x", max_tokens=1, system="other"))
    near = canonical_body(BASE)
    ranked = rank_near_misses([("far", 0, far, want), ("near", 3, near, want)], n=2)
    assert [(m.cassette, m.interaction) for m in ranked] == [("near", 3), ("far", 0)]
    assert ranked[0].describe() == "near#3 differs at $.max_tokens: recorded 100, requested 7"
    d = ranked[0].to_dict()
    assert (d["path"], d["recorded"], d["requested"], d["differences"]) == (
        "$.max_tokens",
        100,
        7,
        1,
    )


def test_lookup_cost_does_not_grow_with_the_library() -> None:
    def timed(size: int) -> float:
        index = Index()
        for i in range(size):
            index.add(i, "POST", "/v1/messages", variant(max_tokens=i + 1))
        probe = variant(max_tokens=size)
        t0 = time.perf_counter()
        for _ in range(300):
            assert isinstance(index.lookup("POST", "/v1/messages", probe), Hit)
        return time.perf_counter() - t0

    small, large = timed(10), timed(10_000)
    assert large < small * 10, (small, large)  # a linear scan would be ~1000x slower
