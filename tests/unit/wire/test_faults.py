"""Faults: the header grammar, clear errors for bad specs, the pure transforms, rules, cost."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mockserver.accounting.usage import UsageMeter, cost, format_usd
from mockserver.profile import load_profile
from mockserver.server.fault_rules import (
    FaultBook,
    FaultRule,
    json_equal,
    json_path_get,
    load_rules,
    parse_json_path,
    request_key,
)
from mockserver.server.writer import _pieces
from mockserver.wire import protocol as p
from mockserver.wire.errors import ConfigError
from mockserver.wire.faults import (
    AT_HEADERS,
    Fault,
    FaultPlan,
    FaultSpecError,
    inject_error_event,
    parse_fault,
    parse_faults,
)
from mockserver.wire.reply import Reply
from mockserver.wire.request import ApiRequest
from mockserver.wire.sse import Event, decode_all

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def req(body: Any = None, fault: str | None = None, path: str = p.PATH_MESSAGES) -> ApiRequest:
    headers = {p.H_FAULT: fault} if fault is not None else {}
    return ApiRequest("POST", path, "", headers, BODY if body is None else body)


def stream_reply(n: int = 5) -> Reply:
    events = tuple(Event("content_block_delta", json.dumps({"i": i})) for i in range(n))
    return Reply(
        status=200, events=events, at_ms=tuple(float(i * 10) for i in range(n)), tail=b"\n"
    )


JSON_REPLY = Reply(status=200, body=b'{"ok":true}')


# --- grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("overloaded", Fault("overloaded")),
        ("rate_limit;retry_after_ms=5", Fault("rate_limit", retry_after_ms=5.0)),
        ("rate_limit;retry_after=120", Fault("rate_limit", retry_after=120.0)),
        ("unavailable;should_retry=false", Fault("unavailable", should_retry=False)),
        ("status;code=400;should_retry=true", Fault("status", code=400, should_retry=True)),
        ("error_event;at=3", Fault("error_event", at=3)),
        ("error_event;at=0;type=api_error", Fault("error_event", at=0, error_type="api_error")),
        ("disconnect;at=headers", Fault("disconnect", at=AT_HEADERS)),
        ("disconnect;at=4", Fault("disconnect", at=4)),
        ("stall;ms=250", Fault("stall", ms=250.0)),
        ("stall;at=2;ms=5", Fault("stall", at=2, ms=5.0)),
        ("keepalive;n=3", Fault("keepalive", n=3)),
        ("keepalive", Fault("keepalive", n=1)),
        ("rechunk", Fault("rechunk", seed=0)),
        ("rechunk;seed=9", Fault("rechunk", seed=9)),
        ("overloaded;times=2", Fault("overloaded", times=2)),
        (" Overloaded ; TIMES = 2 ", Fault("overloaded", times=2)),
    ],
)
def test_parse_each_kind(spec: str, expected: Fault) -> None:
    assert parse_fault(spec) == expected


def test_list_and_canonical_text() -> None:
    faults = parse_faults("overloaded;times=2, stall;ms=5;at=1 ,keepalive;n=2")
    assert [f.kind for f in faults] == ["overloaded", "stall", "keepalive"]
    assert [f.text for f in faults] == ["overloaded;times=2", "stall;at=1;ms=5", "keepalive;n=2"]
    assert parse_fault("disconnect;at=headers").text == "disconnect;at=headers"
    assert parse_fault("rate_limit;retry_after=0.5").text == "rate_limit;retry_after=0.5"
    # the text parses back to the same fault
    for fault in faults:
        assert parse_fault(fault.text) == fault


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("", "empty fault spec"),
        (" , ", "empty fault spec"),
        ("explode", "unknown fault kind 'explode'"),
        ("overloaded;at=3", "unknown parameter 'at' for overloaded"),
        ("error_event", "error_event needs at="),
        ("disconnect", "disconnect needs at="),
        ("stall;at=1", "stall needs ms="),
        ("status", "status needs code="),
        ("status;code=200", "code=200 must be between 400 and 599"),
        ("error_event;at=x", "at=x is not an integer"),
        ("error_event;at=-1", "at=-1 must be between 0"),
        ("stall;at=headers;ms=3", "at=headers is only valid for disconnect"),
        ("stall;ms=fast", "ms=fast is not a number"),
        ("stall;ms=nan", "ms=nan must be between"),
        ("rate_limit;should_retry=maybe", "should_retry=maybe must be true or false"),
        ("error_event;at=1;type=oops_error", "type=oops_error is not an error type"),
        ("overloaded;times=0", "times=0 must be between 1"),
        ("overloaded;times=1;times=2", "parameter 'times' given twice"),
        ("overloaded;times", "parameter 'times' is not name=value"),
        ("overloaded;times=", "parameter 'times=' is not name=value"),
        ("keepalive;n=0", "n=0 must be between 1"),
    ],
)
def test_bad_specs_name_the_bad_part(spec: str, names: str) -> None:
    with pytest.raises(FaultSpecError) as info:
        parse_faults(spec)
    assert names in str(info.value)
    assert str(info.value).startswith(p.H_FAULT)


def test_bad_part_of_a_list_is_quoted() -> None:
    with pytest.raises(FaultSpecError, match=r"in fault 'stall;ms=-4'"):
        parse_faults("overloaded, stall;ms=-4")


# --- errors before the body -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "status", "etype"),
    [
        ("rate_limit", 429, p.RATE_LIMIT),
        ("overloaded", 529, p.OVERLOADED),
        ("api_error", 500, p.API_ERROR),
        ("unavailable", 503, p.ERROR_TYPE_FOR_STATUS[503]),
        ("timeout", 504, p.TIMEOUT),
        ("too_large", 413, p.REQUEST_TOO_LARGE),
        ("unauthorized", 401, p.AUTHENTICATION),
        ("status;code=403", 403, p.PERMISSION),
        ("status;code=422", 422, p.INVALID_REQUEST),
        ("status;code=400;type=not_found_error", 400, p.NOT_FOUND),
    ],
)
def test_error_replies(spec: str, status: int, etype: str) -> None:
    reply = parse_fault(spec).error_reply("anthropic", "req_1")
    body = json.loads(reply.body or b"")
    assert reply.status == status
    assert body == {"type": "error", "error": body["error"], "request_id": "req_1"}
    assert body["error"]["type"] == etype and body["error"]["message"]
    assert reply.fault == parse_fault(spec).text and reply.source == "error"


def test_overloaded_is_the_real_message() -> None:
    body = json.loads(parse_fault("overloaded").error_reply("anthropic", "r").body or b"")
    assert body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


def test_retry_headers() -> None:
    h = parse_fault("rate_limit;retry_after_ms=5").error_reply("anthropic", "r").headers
    assert h[p.H_RETRY_AFTER_MS] == "5" and p.H_RETRY_AFTER not in h
    h = parse_fault("rate_limit").error_reply("anthropic", "r", {"requests_limit": 50}).headers
    assert h[p.H_RETRY_AFTER] == "1"  # a real 429 always says when
    assert h["anthropic-ratelimit-requests-limit"] == "50"
    assert h["anthropic-ratelimit-requests-remaining"] == "0"
    h = parse_fault("overloaded;retry_after=120;should_retry=false").error_reply("x", "r").headers
    assert h[p.H_RETRY_AFTER] == "120" and h[p.H_SHOULD_RETRY] == "false"
    assert "anthropic-ratelimit-requests-remaining" not in h
    assert p.H_SHOULD_RETRY not in parse_fault("overloaded").error_reply("x", "r").headers


def test_deepseek_dialect_envelope() -> None:
    body = json.loads(parse_fault("rate_limit").error_reply("deepseek", "r").body or b"")
    assert body["error"]["type"] == p.RATE_LIMIT and "request_id" not in body


# --- delivery transforms --------------------------------------------------------------------


def test_error_event_cuts_the_stream() -> None:
    out = inject_error_event(stream_reply(5), 2, p.API_ERROR)
    assert out.events is not None and out.at_ms is not None
    assert [e.name for e in out.events] == ["content_block_delta"] * 2 + ["error"]
    assert out.events[-1].json() == {
        "type": "error",
        "error": {"type": "api_error", "message": "Internal server error"},
    }
    assert len(out.at_ms) == 3 and out.tail == b""
    # past the end: the error comes after the last event
    late = inject_error_event(stream_reply(2), 7)
    assert late.events is not None and [e.name for e in late.events][-1] == "error"
    assert len(late.events) == 3
    assert inject_error_event(JSON_REPLY, 0) is JSON_REPLY  # no error after a 200 JSON body


def test_error_event_bytes_decode() -> None:
    out = parse_fault("error_event;at=1;type=overloaded_error").apply(stream_reply(3))
    wire = b"".join(e.wire() for e in out.events or ())
    events, _ = decode_all(wire)
    assert events[-1].name == "error" and events[-1].json()["error"]["type"] == p.OVERLOADED


def test_delivery_fields() -> None:
    plan = FaultPlan(parse_faults("disconnect;at=4, disconnect;at=2, stall;at=1;ms=5, stall;ms=3"))
    out = plan.apply(stream_reply())
    assert out.disconnect_at == 2  # the earliest drop wins
    assert out.stall_ms == {1: 5.0} and out.stall_all_ms == 3.0
    assert out.fault == "disconnect;at=4, disconnect;at=2, stall;at=1;ms=5, stall;ms=3"
    two = FaultPlan(parse_faults("stall;at=1;ms=5, stall;at=1;ms=7")).apply(stream_reply())
    assert two.stall_ms == {1: 12.0}
    assert parse_fault("disconnect;at=headers").apply(JSON_REPLY).disconnect_at == -1


def test_keepalive_lines() -> None:
    assert parse_fault("keepalive;n=2").apply(stream_reply()).preamble == b": keep-alive\n\n" * 2
    assert parse_fault("keepalive;n=3").apply(JSON_REPLY).preamble == b"\n\n\n"
    assert parse_fault("rechunk;seed=4").apply(JSON_REPLY).rechunk_seed == 4


def test_plan_error_replaces_and_keeps_delivery() -> None:
    plan = FaultPlan(parse_faults("keepalive;n=1, overloaded, api_error"))
    assert plan.error is not None and plan.error.kind == "overloaded"
    out = plan.reply(None, dialect="anthropic", request_id="r")
    assert out.status == 529 and out.preamble == b"\n"
    assert out.fault == "overloaded, keepalive;n=1"
    assert FaultPlan().reply(JSON_REPLY, dialect="anthropic", request_id="r") is JSON_REPLY
    assert not FaultPlan() and FaultPlan().text is None


def test_rechunk_pieces_cut_inside_utf8() -> None:
    data = 'event: x\ndata: {"t":"日本語のテキスト"}\n\n'.encode()
    inside = 0
    for seed in range(50):
        pieces = _pieces(data, random.Random(seed))
        assert b"".join(pieces) == data and len(pieces) >= 2
        for piece in pieces[:-1]:
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError:
                inside += 1
    assert inside > 0  # some cuts land inside a multi-byte character
    assert _pieces(data, random.Random(3)) == _pieces(data, random.Random(3))  # reproducible


# --- rules and counters ---------------------------------------------------------------------


def test_times_counts_per_request_key() -> None:
    book = FaultBook()
    spec = "overloaded;times=2"
    kinds = [bool(book.plan(req(fault=spec)).error) for _ in range(4)]
    assert kinds == [True, True, False, False]
    other = {**BODY, "messages": [{"role": "user", "content": "other"}]}
    assert book.plan(req(other, fault=spec)).error is not None  # another request, own count
    # the stream flag is not part of the key: a streamed retry counts with the rest
    book.clear()
    assert book.plan(req({**BODY, "stream": True}, fault=spec)).error is not None
    assert book.plan(req(BODY, fault=spec)).error is not None
    assert book.plan(req(BODY, fault=spec)).error is None
    assert request_key(req({**BODY, "stream": True})) == request_key(req(BODY))


def test_bad_header_raises() -> None:
    with pytest.raises(FaultSpecError, match="unknown fault kind"):
        FaultBook().plan(req(fault="nope"))


def test_rule_matching() -> None:
    rule = FaultRule.from_json(
        {
            "fault": "overloaded",
            "match": {"path": "/v1/*", "model": "m", "body": {"$.messages[0].content": "hi"}},
        }
    )
    assert rule.matches(req())
    assert not rule.matches(req({**BODY, "model": "x"}))
    assert not rule.matches(req(path="/other"))
    assert not rule.matches(req({**BODY, "messages": [{"role": "user", "content": "yo"}]}))
    assert not rule.matches(req({"model": "m"}))  # the path leads nowhere


def test_rule_times_and_listing() -> None:
    book = FaultBook()
    rule = book.add({"fault": "api_error", "times": 2, "match": {"model": "m"}})
    assert [bool(book.plan(req()).error) for _ in range(3)] == [True, True, False]
    listed = rule.to_json()
    assert listed["remaining"] == 0 and listed["hits"] == 2 and listed["fault"] == "api_error"
    assert listed["match"] == {"model": "m"} and listed["id"] == 1
    assert book.plan(req({**BODY, "model": "z"})).error is None
    assert book.clear() == 1 and book.rules() == []


def test_rule_probability_is_reproducible() -> None:
    def run() -> list[bool]:
        book = FaultBook()
        book.add({"fault": "overloaded", "probability": 0.3, "seed": 11})
        return [book.plan(req()).error is not None for _ in range(200)]

    first = run()
    assert first == run()
    assert 30 <= sum(first) <= 90  # about 30% of 200
    never = FaultBook()
    never.add({"fault": "overloaded", "probability": 0})
    assert all(never.plan(req()).error is None for _ in range(20))


def test_string_rule_matches_everything() -> None:
    book = FaultBook()
    book.add("keepalive;n=2")
    assert book.plan(req(path="/v1/models")).faults == (Fault("keepalive", n=2),)


def test_header_before_rules() -> None:
    book = FaultBook()
    book.add({"fault": "api_error"})
    plan = book.plan(req(fault="overloaded"))
    assert plan.error is not None and plan.error.kind == "overloaded"
    assert [f.kind for f in plan.faults] == ["overloaded", "api_error"]


@pytest.mark.parametrize(
    ("rule", "names"),
    [
        (42, "must be an object"),
        ({"match": {}}, "'fault' must be a spec string"),
        ({"fault": "boom"}, "unknown fault kind 'boom'"),
        ({"fault": "overloaded", "when": 1}, "unknown rule field(s) ['when']"),
        ({"fault": "overloaded", "match": {"url": "/"}}, "'match' must be an object with keys"),
        ({"fault": "overloaded", "match": {"path": 3}}, "match.path must be a string"),
        ({"fault": "overloaded", "match": {"body": {"a.b": 1}}}, "must start with '$'"),
        ({"fault": "overloaded", "match": {"body": {"$.a[x]": 1}}}, "cannot read '[x]'"),
        ({"fault": "overloaded", "times": 0}, "'times' must be an integer >= 1"),
        ({"fault": "overloaded", "probability": 2}, "'probability' must be between 0 and 1"),
        ({"fault": "overloaded", "seed": "x"}, "'seed' must be an integer"),
    ],
)
def test_bad_rules(rule: Any, names: str) -> None:
    with pytest.raises(FaultSpecError) as info:
        FaultRule.from_json(rule)
    assert names in str(info.value)


def test_json_paths() -> None:
    doc = {"a": {"b": [10, {"c d": True}]}}
    assert parse_json_path("$.a.b[1]['c d']") == ("a", "b", 1, "c d")
    assert json_path_get(doc, parse_json_path("$.a.b[0]")) == 10
    assert json_path_get(doc, parse_json_path("$.a.b[1]['c d']")) is True
    assert json_path_get(doc, parse_json_path("$")) == doc
    assert not json_equal(json_path_get(doc, ("a", "b", 5)), None)
    assert not json_equal(True, 1) and json_equal(1, 1.0) and json_equal({"x": [1]}, {"x": [1]})


def test_config_file(tmp_path: Path) -> None:
    good = tmp_path / "faults.yaml"
    good.write_text(
        "- fault: overloaded;times=1\n  match: {model: m}\n- fault: keepalive;n=2\n  times: 3\n"
    )
    rules = load_rules(good)
    assert [r.origin for r in rules] == ["config", "config"] and rules[1].times == 3
    book = FaultBook()
    book.add("api_error")
    assert book.load_config(good) == 2
    assert book.load_config(good) == 2  # reloading replaces the config rules
    assert [r.origin for r in book.rules()] == ["api", "config", "config"]
    (tmp_path / "empty.yaml").write_text("")
    assert load_rules(tmp_path / "empty.yaml") == []


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("fault: overloaded\n", "top level must be a list"),
        ("- fault: overloaded\n- fault: nope\n", "rule 1: fault: unknown fault kind 'nope'"),
        ("- [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_file(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert names in str(info.value) and str(path) in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "absent.yaml")


# --- cost -------------------------------------------------------------------------------------


def test_cost_is_exact() -> None:
    prices = load_profile().prices
    assert format_usd(cost({"input_tokens": 10, "output_tokens": 6}, prices)) == "0.00000308"
    assert cost({"input_tokens": 1_000_000}, prices) == Decimal("0.14")
    assert format_usd(cost({}, prices)) == "0"
    with_cache = {"input_tokens": 2063, "output_tokens": 0, "cache_read_input_tokens": 112704}
    # 2063 * 0.14 + 112704 * 0.003 = 288.82 + 338.112 = 626.932 per 1M
    assert format_usd(cost(with_cache, prices)) == "0.000626932"
    assert format_usd(cost({"input_tokens": None, "output_tokens": True}, prices)) == "0"


def test_usage_meter() -> None:
    meter = UsageMeter(load_profile().prices)
    meter.record({"input_tokens": 10, "output_tokens": 6}, "m", "key_a")
    meter.record({"input_tokens": 10, "output_tokens": 6}, "m", "key_b")
    snap = meter.snapshot()
    assert snap["requests"] == 2 and snap["input_tokens"] == 20 and snap["cost_usd"] == "0.00000616"
    assert snap["by_model"]["m"]["requests"] == 2
    assert snap["by_api_key"]["key_b"]["cost_usd"] == "0.00000308"
    meter.reset()
    assert meter.snapshot()["requests"] == 0 and meter.snapshot()["by_model"] == {}
