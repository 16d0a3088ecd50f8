"""The performance shortcuts give exactly what the plain code gives.

- the parse cache's wire-text form of cassette data loads into the same cassettes;
- a replayed reply prepared once (frames' bytes precomputed) writes the same bytes;
- ``Reply.with_`` is ``dataclasses.replace``;
- the request-key memo of ``Index.lookup`` never changes which interaction is served;
- usage totals summed lazily equal the totals summed one reply at a time.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mockserver.accounting.usage import FIELDS, UsageMeter, cost, format_usd
from mockserver.cassettes import cassette as cas
from mockserver.cassettes.matching import Hit, Index
from mockserver.cassettes.parse_cache import as_wire_text
from mockserver.config import default_cassettes_dir
from mockserver.profile import Prices
from mockserver.sources.replay import replay_reply, with_frames
from mockserver.wire import sse
from mockserver.wire.reply import Reply


def _odd_cassette() -> dict[str, Any]:
    """Bodies and events in every stored form: JSON, a JSON string, null, text, base64, raw."""
    request = {"method": "POST", "path": "/v1/messages", "headers": {}, "body": {"a": 1}}
    return {
        "version": 1,
        "interactions": [
            {"request": request, "response": {"status": 200, "headers": {}, "body": {"x": [1.5]}}},
            {
                "request": request,
                "response": {"status": 200, "headers": {}, "body": "just a string"},
            },
            {"request": request, "response": {"status": 200, "headers": {}, "body": None}},
            {"request": request, "response": {"status": 502, "headers": {}, "body_text": "<html>"}},
            {"request": request, "response": {"status": 200, "headers": {}, "body_b64": "/w=="}},
            {
                "request": request,
                "response": {
                    "status": 200,
                    "headers": {},
                    "events": [
                        {"event": "ping", "data": {"type": "ping"}, "at_ms": 1.0},
                        {"event": "x", "data": "not json"},
                        {
                            "event": "y",
                            "data": {"type": "y"},
                            "raw": 'event: y\ndata: {"type":"y"}\n\n',
                        },
                    ],
                    "tail": "\n",
                },
            },
        ],
    }


def _shipped() -> list[dict[str, Any]]:
    return [cas.parse(p.read_bytes(), str(p)) for p in cas.discover(default_cassettes_dir())]


@pytest.mark.parametrize("data", [_odd_cassette(), *_shipped()])
def test_wire_text_form_loads_the_same_cassette(data: dict[str, Any]) -> None:
    plain = cas.cassette_from_dict(data)
    text = as_wire_text(data)
    # it survives the parse cache's JSON round trip and gives the same cassette
    cached = cas.cassette_from_dict(json.loads(json.dumps(text)))
    assert cached == plain
    assert [i.response.wire() for i in cached.interactions] == [
        i.response.wire() for i in plain.interactions
    ]
    assert text is not data and data == json.loads(json.dumps(data))  # input left as it was


def test_prepared_frames_write_the_same_bytes() -> None:
    for path in cas.discover(default_cassettes_dir()):
        for inter in cas.load(path).interactions:
            for stream in (True, False):
                plain = replay_reply(inter, stream=stream)
                fast = with_frames(plain)
                assert [e.wire() for e in fast.events or ()] == [
                    e.wire() for e in plain.events or ()
                ]
                assert all(e.raw for e in fast.events or ())
                assert dataclasses.replace(fast, events=plain.events) == plain


def test_with_is_replace() -> None:
    reply = Reply(status=200, headers={"a": "b"}, body=b"{}", source="replay", fault="x")
    for changes in ({}, {"headers": {"c": "d"}}, {"status": 500, "events": (sse.Event("e", "1"),)}):
        assert reply.with_(**changes) == dataclasses.replace(reply, **changes)
        assert reply.with_(**changes) is not reply
    with pytest.raises(TypeError, match="nope"):
        reply.with_(nope=1)


def _body(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def test_key_memo_serves_the_same_interactions() -> None:
    bodies = [_body("a"), _body("b"), _body("a")]
    plain, memo = Index(), Index()
    for ref, body in enumerate(bodies):
        plain.add(ref, "POST", "/v1/messages", body)
        memo.add(ref, "POST", "/v1/messages", body)
    # the same bytes, a spelling with the same canonical form, and a different request
    asks = [_body("a"), _body("a"), {**_body("a"), "stream": True}, _body("b"), _body("c")]
    for _ in range(2):
        for body in asks:
            raw = json.dumps(body).encode()
            want = plain.lookup("POST", "/v1/messages", body)
            got = memo.lookup("POST", "/v1/messages", body, raw=raw)
            assert got == want
    # a group added later (a cassette with its own ignore list) is seen by the memo, also for
    # a request whose keys it remembered before
    q = json.dumps(_body("q")).encode()
    assert memo.lookup("POST", "/v1/messages", _body("q"), raw=q) is None
    memo.add(9, "POST", "/v1/messages", _body("z"), ignore=("$.messages",))
    found = memo.lookup("POST", "/v1/messages", _body("q"), raw=q)
    assert isinstance(found, Hit) and found.ref == 9


def test_lazy_usage_totals_match_eager_sums() -> None:
    prices = Prices(input=0.14, output=0.28, cache_read=0.003, cache_write=0.14)
    usages = [
        {"input_tokens": 10, "output_tokens": 6},
        {"input_tokens": 10, "output_tokens": 6},
        {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 64},
        {"input_tokens": 0, "output_tokens": 2, "cache_creation_input_tokens": 128},
    ]
    meter = UsageMeter(prices)
    for i in range(30):
        usage = usages[i % len(usages)]
        charged = meter.record(usage, "m" if i % 3 else "n", f"k{i % 2}")
        assert charged == format_usd(cost(usage, prices))
    snap = meter.snapshot()
    chosen = [usages[i % len(usages)] for i in range(30)]
    assert snap["requests"] == 30
    for key in FIELDS:
        assert snap[key] == sum(u.get(key, 0) for u in chosen)
    assert Decimal(snap["cost_usd"]) == sum((cost(u, prices) for u in chosen), Decimal(0))
    assert snap["by_model"]["n"]["requests"] == 10 and snap["by_api_key"]["k1"]["requests"] == 15
    meter.reset()
    assert meter.snapshot()["requests"] == 0


def test_parse_cache_holds_the_wire_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mockserver.cassettes import library, parse_cache

    monkeypatch.setenv(library.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(parse_cache, "CACHE_MIN_BYTES", 0)
    lib_dir = tmp_path / "lib"
    lib_dir.mkdir()
    (lib_dir / "odd.yaml").write_text(cas.dump_yaml(_odd_cassette()), encoding="utf-8")
    direct = cas.load(lib_dir / "odd.yaml")
    first = library.Library(lib_dir)
    first.load()
    second = library.Library(lib_dir)  # from the cache
    second.load()
    made = [list(c.interactions) for c in second.cassettes]  # each made from its text
    assert made == [list(c.interactions) for c in first.cassettes] == [direct.interactions]
    files = parse_cache._read(next((tmp_path / "cache").glob("*.cache")).read_bytes())
    events = json.loads(files["odd"]["texts"][5])["response"]["events"]
    assert events[0]["data"] == '{"type":"ping"}'


# --- checks without counting ------------------------------------------------------------


def _rules_fixtures() -> tuple[Any, Any]:
    from mockserver.accounting.tokens import TokenCounter
    from mockserver.profile import load_profile

    profile = load_profile()
    return profile, TokenCounter(profile.overheads)


BOUND_BODIES = [
    {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "Hello, world"}]},
    {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "日本語のテキスト 🎉"}]}
        ],
        "system": "Be brief. " * 20,
        "tools": [{"name": "get", "description": "d", "input_schema": {"type": "object"}}],
    },
    {"messages": [{"role": "user", "content": "<｜begin▁of▁sentence｜> 12345678901234567890"}]},
]


@pytest.mark.parametrize("body", BOUND_BODIES)
def test_request_bound_is_an_upper_bound(body: dict[str, Any]) -> None:
    _, counter = _rules_fixtures()
    assert counter.request(body) <= counter.request_bound(body)


def test_unchecked_count_keeps_every_error_and_skips_only_the_count() -> None:
    from mockserver.server.checks import body as rules
    from mockserver.wire.errors import ApiError
    from mockserver.wire.request import ApiRequest

    profile, counter = _rules_fixtures()
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}

    def req(body: dict[str, Any]) -> ApiRequest:
        return ApiRequest("POST", "/v1/messages", "", headers, body)

    model = profile.models[0].id
    small = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}
    lazy = rules.check(req(small), profile, counter, exact_tokens=False)
    exact = rules.check(req(small), profile, counter)
    assert lazy.input_tokens == rules.NOT_COUNTED
    assert dataclasses.replace(lazy, input_tokens=exact.input_tokens) == exact
    # a prompt past the window: counted, and the same 400 either way
    huge = {**small, "messages": [{"role": "user", "content": "word " * profile.context_window}]}
    errors = []
    for exact_tokens in (True, False):
        with pytest.raises(ApiError) as info:
            rules.check(req(huge), profile, counter, exact_tokens=exact_tokens)
        errors.append((info.value.status, str(info.value)))
    assert errors[0] == errors[1] and errors[0][0] == 400


def test_ratelimit_headers_made_once_a_second_follow_each_servers_profile() -> None:
    from dataclasses import replace

    from mockserver.accounting.tokens import TokenCounter
    from mockserver.config import Settings
    from mockserver.server.headers import ratelimit_headers
    from mockserver.server.state import State

    def state_with(limit: int) -> State:
        base = Settings(mode="synth")
        profile = replace(base.profile, ratelimit={"requests_limit": limit})
        settings = replace(base, profile=profile)
        return State(settings=settings, counter=TokenCounter(profile.overheads))

    one, two = state_with(11), state_with(22)
    for _ in range(3):  # alternating servers never get each other's cached headers
        assert ratelimit_headers(one)["anthropic-ratelimit-requests-limit"] == "11"
        assert ratelimit_headers(two)["anthropic-ratelimit-requests-limit"] == "22"
